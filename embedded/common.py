"""Ports, pid files and locks shared by the embedded services."""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

LOOPBACK = "127.0.0.1"
# How long a server may take to accept connections after it was started. Replaying
# a large append-only file or recovering PostgreSQL after a crash can take a while.
STARTUP_TIMEOUT_S = 120.0


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started, reached or stopped."""


def find_free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def port_accepts(port: int, host: str = LOOPBACK, timeout_s: float = 0.5) -> bool:
    """Return whether a TCP connection to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def read_int_file(path: Path) -> int | None:
    """Return the integer stored in path, or None when it is missing or unreadable."""
    try:
        return int(path.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return None


def write_int_file(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(f"{value}\n", encoding="ascii")
    temporary.replace(path)


def choose_port(port_file: Path, is_ours: bool) -> int:
    """Return the port stored in port_file, or a new free one stored there.

    The stored port is kept while our own server listens on it (is_ours) or while it
    is free. If another program took it since the last start, a new port is chosen,
    because every start exports the URL again.
    """
    port = read_int_file(port_file)
    if port is not None and (is_ours or not port_accepts(port)):
        return port
    port = find_free_port()
    write_int_file(port_file, port)
    return port


def process_matches(pid: int | None, name_part: str) -> bool:
    """Return whether pid is a live process whose name or command line contains name_part."""
    if pid is None or pid <= 0:
        return False
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        command_line = " ".join(process.cmdline())
        return name_part in process.name() or name_part in command_line
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def wait_until(check, what: str, timeout_s: float = STARTUP_TIMEOUT_S, log_path: Path | None = None) -> None:
    """Poll check() until it returns True; raise EmbeddedServiceError naming `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            hint = f"; see its log {log_path}" if log_path is not None else ""
            raise EmbeddedServiceError(f"{what} did not become ready within {timeout_s:.0f} s{hint}")
        time.sleep(0.05)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on path, so two launchers do not start one server twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


def _exited(process: psutil.Process) -> bool:
    # A zombie has exited; only its parent (for a daemon, init) can still reap it.
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def terminate_pid(pid: int, timeout_s: float = 30.0) -> None:
    """Send SIGTERM to pid and wait for it to exit; SIGKILL it if it does not within timeout_s."""
    try:
        process = psutil.Process(pid)
        process.terminate()
    except psutil.NoSuchProcess:
        return
    deadline = time.monotonic() + timeout_s
    while not _exited(process):
        if time.monotonic() > deadline:
            process.kill()
            deadline = time.monotonic() + timeout_s
        time.sleep(0.02)
    try:
        os.waitpid(pid, os.WNOHANG)  # reap it when it is our own child
    except ChildProcessError:
        pass

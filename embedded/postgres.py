"""An embedded PostgreSQL cluster built from the binaries in the `pgserver` wheel.

Layout under `<data_dir>/postgres`: `pgdata/` (the cluster, its unix socket and
`server.log`), `port` (the TCP port on 127.0.0.1, reused on every start) and `.lock`.

PostgreSQL refuses to run as root. When the launcher runs as root (containers, CI),
the cluster is owned by and run as the system user `pgserver`, created with `useradd`
when missing (the `pgserver` wheel does the same). That user must be able to enter
every directory above the data directory and the wheel's files.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pwd
import shlex
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from embedded.common import (
    LOOPBACK,
    STARTUP_TIMEOUT_S,
    EmbeddedServiceError,
    choose_port,
    file_lock,
    port_accepts,
    process_matches,
)

SERVICE_USER = "pgserver"
SUPERUSER = "postgres"
# Unix socket paths are limited to 107 bytes; beyond that the server listens on TCP only.
_MAX_SOCKET_PATH = 100

log = logging.getLogger("jangteo.embedded.postgres")


def postgres_bin_dir() -> Path:
    """Return the `bin` directory of the PostgreSQL build bundled in the `pgserver` wheel.

    The package is located without importing it, because importing `pgserver` sets up
    its own lock files and server registry, which the launcher does not use.
    """
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServiceError("the pgserver package is not installed; run `pip install -e .` first")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise EmbeddedServiceError(f"no postgres binary in {bin_dir}; reinstall the pgserver package")
    return bin_dir


@dataclass(frozen=True)
class PostgresServer:
    """A running embedded cluster: superuser `postgres`, trust authentication on loopback."""

    port: int
    pgdata: Path

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{self.port}/{database}"


# -- running commands as the service user ------------------------------------------


def _service_user() -> pwd.struct_passwd | None:
    """Return the account to run PostgreSQL as, or None to run as the current user."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        pass
    log.info("creating system user user=%s reason=postgres does not run as root", SERVICE_USER)
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
        check=True,
        capture_output=True,
    )
    return pwd.getpwnam(SERVICE_USER)


def _check_reachable(path: Path, account: pwd.struct_passwd) -> None:
    """Raise if `account` cannot enter every directory above path (root bypasses this check, the server does not)."""
    for directory in reversed(path.parents):
        mode = directory.stat()
        if mode.st_uid == account.pw_uid or mode.st_mode & stat.S_IXOTH:
            continue
        if mode.st_gid == account.pw_gid and mode.st_mode & stat.S_IXGRP:
            continue
        raise EmbeddedServiceError(
            f"the user {account.pw_name!r} that runs the embedded PostgreSQL cannot enter {directory} "
            f"(mode {stat.filemode(mode.st_mode)}), so it cannot reach {path}; "
            f"allow it with `chmod o+x {directory}`, move the project, or set DATABASE_URL"
        )


def _run(command: list[str], account: pwd.struct_passwd | None, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a PostgreSQL program, as `account` when given, in a session of its own.

    The new session keeps Ctrl-C in the launcher's terminal from reaching the server.
    """
    options: dict = {"cwd": cwd, "start_new_session": True, "stdin": subprocess.DEVNULL}
    if account is not None:
        options.update(user=account.pw_uid, group=account.pw_gid, extra_groups=[])
        options["env"] = {**os.environ, "HOME": str(cwd), "USER": account.pw_name, "LOGNAME": account.pw_name}
    result = subprocess.run(command, capture_output=True, text=True, **options)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        raise EmbeddedServiceError(f"{Path(command[0]).name} failed with exit code {result.returncode}: {output}")
    return result


# -- cluster lifecycle ---------------------------------------------------------------


def _initdb(pgdata: Path, account: pwd.struct_passwd | None) -> None:
    bin_dir = postgres_bin_dir()
    pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
    if account is not None:
        os.chown(pgdata, account.pw_uid, account.pw_gid)
    pgdata.chmod(0o700)
    base = [str(bin_dir / "initdb"), "-D", str(pgdata), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8"]
    try:
        _run([*base, "--locale=C.UTF-8"], account, cwd=pgdata.parent)
    except EmbeddedServiceError as error:
        # macOS and some minimal images have no C.UTF-8 locale; C sorts the same (by code point).
        log.warning("initdb with locale C.UTF-8 failed, retrying with locale C error=%s", error)
        for child in pgdata.iterdir():
            _run(["rm", "-rf", str(child)], account, cwd=pgdata.parent)
        _run([*base, "--locale=C"], account, cwd=pgdata.parent)
    log.info("postgres cluster created pgdata=%s", pgdata)


def _running_port(pgdata: Path) -> int | None:
    """Return the port of a server that is running and ready on pgdata, or None.

    `postmaster.pid` lines: 1 pid, 4 port, 8 status ("ready" once it accepts connections).
    """
    try:
        lines = (pgdata / "postmaster.pid").read_text(encoding="utf-8").splitlines()
        pid, port, status = int(lines[0]), int(lines[3]), lines[7].strip()
    except (OSError, ValueError, IndexError):
        return None
    if status != "ready" or not process_matches(pid, "postgres") or not port_accepts(port):
        return None
    return port


def ensure_postgres(root: Path, *, durable: bool = True) -> PostgresServer:
    """Start the cluster under `root` (normally `<data_dir>/postgres`), or reuse a running one.

    The first start runs initdb. Later starts reuse the stored port unless another
    program took it. With durable=False, fsync is off, which suits throwaway test
    clusters only: a crash of the machine can corrupt them.
    """
    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    pgdata = root / "pgdata"
    with file_lock(root / ".lock"):
        running_port = _running_port(pgdata)
        if running_port is not None:
            log.info("postgres reused port=%s pgdata=%s", running_port, pgdata)
            return PostgresServer(port=running_port, pgdata=pgdata)

        account = _service_user()
        if account is not None:
            _check_reachable(pgdata, account)
            _check_reachable(postgres_bin_dir() / "postgres", account)
        if not (pgdata / "PG_VERSION").exists():
            _initdb(pgdata, account)

        port = choose_port(root / "port", is_ours=False)
        server_options = ["-c", f"listen_addresses={LOOPBACK}", "-p", str(port)]
        if len(str(pgdata / f".s.PGSQL.{port}")) <= _MAX_SOCKET_PATH:
            server_options += ["-k", str(pgdata)]
        else:
            server_options += ["-c", "unix_socket_directories="]
        if not durable:
            server_options += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        # pg_ctl hands -o to a shell, so each option is quoted for it.
        _run(
            [
                str(postgres_bin_dir() / "pg_ctl"),
                "-D", str(pgdata),
                "-l", str(pgdata / "server.log"),
                "-w", "-t", str(int(STARTUP_TIMEOUT_S)),
                "-o", " ".join(shlex.quote(option) for option in server_options),
                "start",
            ],
            account,
            cwd=root,
        )
        log.info("postgres started port=%s pgdata=%s", port, pgdata)
        return PostgresServer(port=port, pgdata=pgdata)


def stop_postgres(root: Path) -> bool:
    """Stop the cluster under `root` with a fast shutdown; return whether one was running."""
    root = root.resolve()
    pgdata = root / "pgdata"
    with file_lock(root / ".lock"):
        if _running_port(pgdata) is None:
            return False
        _run(
            [str(postgres_bin_dir() / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
            _service_user(),
            cwd=root,
        )
    log.info("postgres stopped pgdata=%s", pgdata)
    return True


async def ensure_database(server_dsn: str, name: str) -> bool:
    """Create database `name` on the server of server_dsn unless it exists; return whether it was created."""
    connection = await asyncpg.connect(server_dsn)
    try:
        if await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            # Another launcher created it between the check and the CREATE.
            return False
    finally:
        await connection.close()
    log.info("database created name=%s", name)
    return True

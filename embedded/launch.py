"""The launcher behind `scripts/run`: services, migrations, demo data, then the Procfile."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import inspect
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from embedded.postgres import ensure_database, ensure_postgres, stop_postgres
from embedded.redis import ensure_redis, stop_redis
from embedded.smtp import ensure_smtp_sink, stop_smtp_sink
from engine.config import PROJECT_ROOT, Settings
from engine.db.migrate import apply_migrations
from engine.db.pool import create_pool

DATABASE_NAME = "jangteo"

log = logging.getLogger("jangteo.embedded.launch")


@dataclasses.dataclass(frozen=True)
class ServiceDirs:
    """The directories of the embedded services under the data directory."""

    data_dir: Path

    @property
    def postgres(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def redis(self) -> Path:
        return self.data_dir / "redis"

    @property
    def smtp(self) -> Path:
        return self.data_dir / "smtp"

    @property
    def mail(self) -> Path:
        """The Maildir of captured messages."""
        return self.data_dir / "mail"


def ensure_services(settings: Settings) -> dict[str, str]:
    """Start or reuse an embedded server for each unset (or empty) service URL.

    Returns the environment variables to export, one per embedded service
    (`DATABASE_URL`, `REDIS_URL`, `SMTP_URL`). A URL that the settings already
    contain is left alone, and its server is not touched.
    """
    dirs = ServiceDirs(settings.data_dir)
    exports: dict[str, str] = {}
    if not settings.database_url:
        server = ensure_postgres(dirs.postgres)
        asyncio.run(ensure_database(server.dsn(), DATABASE_NAME))
        exports["DATABASE_URL"] = server.dsn(DATABASE_NAME)
    if not settings.redis_url:
        exports["REDIS_URL"] = ensure_redis(dirs.redis)
    if not settings.smtp_url:
        exports["SMTP_URL"] = ensure_smtp_sink(dirs.smtp, dirs.mail)
    return exports


def stop_services(settings: Settings) -> list[str]:
    """Stop the embedded servers of the settings' data directory; return the names of those that ran."""
    dirs = ServiceDirs(settings.data_dir)
    stopped = []
    if stop_postgres(dirs.postgres):
        stopped.append("postgres")
    if stop_redis(dirs.redis):
        stopped.append("redis")
    if stop_smtp_sink(dirs.smtp):
        stopped.append("smtp")
    return stopped


async def prepare_database(database_url: str, *, load_demo: bool) -> list[Any]:
    """Apply migrations, then load demo data when asked and `engine.demo` exists; return the demo accounts."""
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        applied = await apply_migrations(pool)
        log.info("migrations done applied=%d", len(applied))
        if not load_demo:
            return []
        try:
            demo = importlib.import_module("engine.demo")
        except ModuleNotFoundError as error:
            if error.name != "engine.demo":
                raise
            log.info("demo data skipped reason=engine.demo does not exist yet")
            return []
        result = demo.load_demo_data(pool)
        if inspect.isawaitable(result):
            result = await result
        return list(result or [])
    finally:
        await pool.close()


def format_account(account: Any) -> str:
    """Render one demo account (a mapping, dataclass, tuple or anything printable) on one line."""
    if dataclasses.is_dataclass(account) and not isinstance(account, type):
        account = dataclasses.asdict(account)
    if isinstance(account, Mapping):
        return "  ".join(f"{key}={value}" for key, value in account.items())
    if isinstance(account, tuple | list):
        return "  ".join(str(part) for part in account)
    return str(account)


def run(settings: Settings) -> NoReturn:
    """Prepare services and the database, print where to go, then replace this process with honcho.

    honcho runs the `Procfile` (web and worker) with the exported URLs, so every
    process uses the same servers. Ctrl-C stops honcho and its processes; the
    embedded servers keep running and keep their data under the data directory.
    """
    exports = ensure_services(settings)
    os.environ.update(exports)
    # The Procfile runs `python`, so this interpreter's directory (the venv) goes first on PATH.
    interpreter_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = os.pathsep.join([interpreter_dir, os.environ.get("PATH", "")])
    database_url = exports.get("DATABASE_URL") or settings.database_url
    if database_url is None:
        raise RuntimeError("no database URL after starting the services")  # unreachable: one of the two is set
    accounts = asyncio.run(prepare_database(database_url, load_demo=settings.demo_data))

    print(f"\nJangteo: {settings.base_url}", flush=True)
    if accounts:
        print("Demo accounts:")
        for account in accounts:
            print(f"  {format_account(account)}")
    for name, value in exports.items():
        print(f"  {name}={value}")
    print("Press Ctrl-C to stop (the embedded servers keep running; `python -m embedded stop` stops them).\n", flush=True)

    procfile = PROJECT_ROOT / "Procfile"
    # honcho gives the first process PORT=<port>, so `web` listens where the URL above points.
    command = [sys.executable, "-m", "honcho", "start", "-f", str(procfile), "-d", str(PROJECT_ROOT), "-p", str(settings.port)]
    log.info("starting honcho procfile=%s port=%s", procfile, settings.port)
    logging.shutdown()
    os.execv(sys.executable, command)

"""Session-wide services for the test suite: PostgreSQL, Redis and an SMTP sink.

Each run gets its own PostgreSQL database (`jangteo_test_<random>`, dropped at the
end) and its own Redis key prefix (`jtt<random>`). The prefix's keys are deleted at
the end and the Redis database is never flushed, so runs can share one server.

Where the servers come from, in order:
- `DATABASE_URL` / `REDIS_URL` when set;
- else 127.0.0.1:5432 (user postgres, trust) / 127.0.0.1:6379 when they accept connections;
- else embedded servers under a temporary directory, stopped at the end.
`JANGTEO_TEST_EMBEDDED=1` skips the first two and always uses embedded servers.
"""

from __future__ import annotations

import asyncio
import email.policy
import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
import redis
import redis.asyncio
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from embedded.common import LOOPBACK, find_free_port, port_accepts
from embedded.postgres import ensure_postgres, stop_postgres
from embedded.redis import ensure_redis, stop_redis
from engine.config import Settings
from engine.db.migrate import apply_migrations
from engine.db.pool import create_pool

FORCE_EMBEDDED = os.environ.get("JANGTEO_TEST_EMBEDDED") == "1"
MACHINE_POSTGRES_DSN = f"postgresql://postgres@{LOOPBACK}:5432/postgres"
MACHINE_REDIS_URL = f"redis://{LOOPBACK}:6379/0"

# pytester runs inner pytest sessions, for tests of the fixtures in this file.
pytest_plugins = ["pytester"]


# -- PostgreSQL ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server_dsn() -> Iterator[str]:
    """DSN of a PostgreSQL server on which this run may create and drop its database."""
    if not FORCE_EMBEDDED:
        if os.environ.get("DATABASE_URL"):
            yield os.environ["DATABASE_URL"]
            return
        if port_accepts(5432):
            yield MACHINE_POSTGRES_DSN
            return
    # Not under tmp_path_factory: when the tests run as root, the server runs as the
    # `pgserver` user, who cannot enter pytest's 0700 base directory.
    root = Path(tempfile.mkdtemp(prefix="jangteo-test-pg-"))
    root.chmod(0o755)
    server = ensure_postgres(root / "postgres", durable=False)
    try:
        yield server.dsn()
    finally:
        stop_postgres(root / "postgres")
        shutil.rmtree(root, ignore_errors=True)


def _with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest_asyncio.fixture(scope="session")
async def pg_dsn(pg_server_dsn: str) -> AsyncIterator[str]:
    """DSN of a fresh database with every migration applied, dropped after the run."""
    name = f"jangteo_test_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()

    dsn = _with_database(pg_server_dsn, name)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        await apply_migrations(pool)
    finally:
        await pool.close()

    yield dsn

    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture(scope="session")
async def pg_pool(pg_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """The project's asyncpg pool (with JSON codecs) on the run's database."""
    pool = await create_pool(pg_dsn)
    yield pool
    await pool.close()


# -- Redis -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of the Redis this run uses, which other runs may share, so write only under `redis_prefix`."""
    if not FORCE_EMBEDDED:
        if os.environ.get("REDIS_URL"):
            yield os.environ["REDIS_URL"]
            return
        if port_accepts(6379):
            yield MACHINE_REDIS_URL
            return
    directory = tmp_path_factory.mktemp("redis")
    url = ensure_redis(directory)
    try:
        yield url
    finally:
        stop_redis(directory)


@pytest.fixture(scope="session")
def redis_prefix(redis_url: str) -> Iterator[str]:
    """Key prefix of this run. Its keys are deleted at the end with SCAN MATCH, never FLUSHDB.

    Every prefix has the same length, so no run's prefix starts another's.
    """
    prefix = f"jtt{secrets.token_hex(4)}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
    finally:
        client.close()


@pytest_asyncio.fixture(scope="session")
async def redis_client(redis_url: str, redis_prefix: str) -> AsyncIterator[redis.asyncio.Redis]:
    """An asyncio Redis client returning bytes (decode_responses=False)."""
    client = redis.asyncio.Redis.from_url(redis_url, decode_responses=False)
    yield client
    await client.aclose()


# -- SMTP ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SinkMessage:
    """One message the test SMTP sink received."""

    envelope_from: str
    envelope_to: tuple[str, ...]
    content: bytes
    message: EmailMessage


@dataclass
class SmtpSink:
    """An in-process SMTP server on 127.0.0.1 that keeps every message in `messages`."""

    url: str
    messages: list[SinkMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        # policy.default makes the parser return EmailMessage objects.
        message = cast(EmailMessage, BytesParser(policy=email.policy.default).parsebytes(content))
        self.messages.append(SinkMessage(str(envelope.mail_from), tuple(envelope.rcpt_tos), content, message))
        return "250 Message accepted for delivery"

    def clear(self) -> None:
        self.messages.clear()

    async def wait_for(self, count: int) -> list[SinkMessage]:
        """Wait until at least `count` messages arrived (the per-test timeout bounds the wait)."""
        while len(self.messages) < count:
            await asyncio.sleep(0.01)
        return list(self.messages)


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpSink]:
    """The session's SMTP sink; most tests want `smtp_sink`, which starts each test empty."""
    port = find_free_port()
    sink = SmtpSink(url=f"smtp://{LOOPBACK}:{port}")
    controller = Controller(sink, hostname=LOOPBACK, port=port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@pytest.fixture
def smtp_sink(smtp_server: SmtpSink) -> SmtpSink:
    """The SMTP sink with its message list cleared for this test."""
    smtp_server.clear()
    return smtp_server


# -- settings --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def settings(
    pg_dsn: str,
    redis_url: str,
    redis_prefix: str,
    smtp_server: SmtpSink,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    """Settings pointing at this run's services, ignoring any `.env` file."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=pg_dsn,
        redis_url=redis_url,
        smtp_url=smtp_server.url,
        redis_prefix=redis_prefix,
        data_dir=tmp_path_factory.mktemp("data"),
        secret_key=secrets.token_hex(32),
        demo_data=False,
        # Every test signs in from one address; the per-address limit has its own test.
        login_ip_rate="10000/minute",
    )


# -- exceptions that asyncio would only log --------------------------------------------

_loop_errors: list[dict[str, Any]] = []


@pytest_asyncio.fixture(scope="session", autouse=True)
async def _record_loop_errors() -> AsyncIterator[None]:
    """Record what reaches the session loop's exception handler (for example a failed, unawaited task)."""
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def record(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        _loop_errors.append(context)
        loop.default_exception_handler(context)

    loop.set_exception_handler(record)
    yield
    loop.set_exception_handler(previous)


@pytest.fixture(autouse=True)
def _fail_on_loop_errors(_record_loop_errors: None) -> Iterator[None]:
    """Fail the test during which an exception reached the event loop's handler."""
    yield
    if not _loop_errors:
        return
    errors = list(_loop_errors)
    _loop_errors.clear()
    lines = [f"{context.get('message')}: {context.get('exception')!r}" for context in errors]
    pytest.fail("unhandled exception in the event loop:\n" + "\n".join(lines), pytrace=False)

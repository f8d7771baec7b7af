"""A fresh database and Redis key prefix per test, and a small market to close lots in.

Each test gets its own database, cloned from a migrated template (fast), and its
own Redis key prefix under the run's prefix, so a closer or worker in one test never
sees another test's lots.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest_asyncio
import redis.asyncio

from engine.auction.ledger import LedgerConsumer
from engine.auction.live import AuctionLive
from engine.config import Settings
from engine.db import apply_migrations, create_pool
from engine.keys import Keys
from worker_testkit import Market, make_market


def _with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


@pytest_asyncio.fixture(scope="session")
async def worker_template(pg_server_dsn: str) -> AsyncIterator[str]:
    """Name of a migrated database that each test's database is cloned from."""
    name = f"jangteo_wk_tpl_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    pool = await create_pool(_with_database(pg_server_dsn, name), min_size=1, max_size=1)
    try:
        await apply_migrations(pool)
    finally:
        await pool.close()
    yield name
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture
async def wk_dsn(pg_server_dsn: str, worker_template: str) -> AsyncIterator[str]:
    """DSN of this test's own database `jangteo_wk_<random>`, dropped afterwards."""
    name = f"jangteo_wk_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{worker_template}"')
    finally:
        await admin.close()
    yield _with_database(pg_server_dsn, name)
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest_asyncio.fixture
async def db(wk_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(wk_dsn, min_size=1, max_size=8)
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def wk_settings(settings: Settings, wk_dsn: str) -> Settings:
    """The run's settings with this test's database and key prefix.

    The long gap grace leaves holds to the closer's empty-stream check, which is exact.
    """
    return settings.model_copy(update={
        "database_url": wk_dsn,
        "redis_prefix": f"{settings.redis_prefix}w{secrets.token_hex(4)}",
        "ledger_gap_grace_s": 3600,
    })


@pytest_asyncio.fixture
async def live(redis_client: redis.asyncio.Redis, wk_settings: Settings) -> AuctionLive:
    return AuctionLive(redis_client, Keys(wk_settings.redis_prefix, wk_settings.redis_shards))


@pytest_asyncio.fixture
async def consumer(db: asyncpg.Pool, live: AuctionLive) -> LedgerConsumer:
    """A ledger consumer the test drives itself (`drain()`), with a short claim idle time."""
    return LedgerConsumer(db, live.redis, live.keys, block_ms=50, claim_idle_s=0.2)


@pytest_asyncio.fixture
async def market(db: asyncpg.Pool, live: AuctionLive) -> Market:
    return await make_market(db, live)

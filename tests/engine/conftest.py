"""A throwaway migrated PostgreSQL database per test, for the demo-data tests.

The root conftest's `pg_pool` is one database shared by the whole run, but the demo
loader writes its data set once per database, so each demo test gets a database of its
own on the same server.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest_asyncio

from engine.db import apply_migrations, create_pool


def _with_database(dsn: str, database: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


@pytest_asyncio.fixture
async def demo_pool(pg_server_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """Yield a pool on a fresh database `jangteo_demo_test_<random>` and drop it afterwards."""
    database = f"jangteo_demo_test_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()

    pool = await create_pool(_with_database(pg_server_dsn, database), min_size=1, max_size=4)
    try:
        await apply_migrations(pool)
        yield pool
    finally:
        await pool.close()
        admin = await asyncpg.connect(pg_server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await admin.close()

"""A fresh database and Redis key prefix per test, and a small market to close lots in.

Each test gets its own database, cloned from a migrated template (fast), and its
own Redis key prefix under the run's prefix, so a closer or worker in one test never
sees another test's lots.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest_asyncio
import redis.asyncio

from engine.accounts import mask_name
from engine.actors import MEMBER, STAFF, SUPPLIER, Actor
from engine.auction.ledger import LedgerConsumer
from engine.auction.live import AuctionLive, BidOutcome
from engine.auction.lots import load_lot
from engine.config import Settings
from engine.db import apply_migrations, create_pool
from engine.keys import Keys


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


@dataclass
class Market:
    """Rows for auction tests: one supplier with a product, staff, and members on demand."""

    db: asyncpg.Pool
    live: AuctionLive
    staff: Actor
    supplier: Actor
    supplier_id: int
    product_id: int
    _members: int = 0
    emails: dict[int, str] = field(default_factory=dict)

    async def member(self, name: str = "김민수") -> Actor:
        self._members += 1
        email = f"member{self._members}-{secrets.token_hex(3)}@example.com"
        user_id = await self.db.fetchval(
            "INSERT INTO users (email, password_hash, display_name, role) VALUES ($1, 'x', $2, 'member') RETURNING id",
            email, name,
        )
        self.emails[user_id] = email
        return Actor(user_id=user_id, role=MEMBER, display_name=name)

    async def lot(
        self,
        *,
        duration_s: float = 1.0,
        start_price_won: int = 10_000,
        reserve_won: int | None = None,
        title: str = "광산 유기농 쌀 10kg",
        product_id: int | None = None,
    ) -> int:
        """Insert an open lot ending `duration_s` from now (no soft close) and load it into Redis."""
        now = await self.db.fetchval("SELECT now()")
        lot_id = await self.db.fetchval(
            """INSERT INTO lots (product_id, supplier_id, title, start_price_won, reserve_won, start_at, end_at,
                                 soft_close_window_s, extension_s, increments, status, created_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 0, $8, 'open', $9) RETURNING id""",
            product_id or self.product_id, self.supplier_id, title, start_price_won, reserve_won,
            now - timedelta(seconds=1), now + timedelta(seconds=duration_s),
            [[0, 100], [10_000, 500], [50_000, 1_000], [100_000, 5_000], [500_000, 10_000], [1_000_000, 20_000]],
            self.staff.user_id,
        )
        assert await load_lot(self.db, self.live, lot_id)
        return lot_id

    async def bid(self, lot_id: int, member: Actor, amount_won: int, client_id: str | None = None) -> BidOutcome:
        return await self.live.place_bid(
            lot_id, user_id=member.user_id, client_id=client_id or secrets.token_hex(8),
            amount_won=amount_won, bidder_masked=mask_name(member.display_name),
        )

    async def accepted_bid(self, lot_id: int, member: Actor, amount_won: int) -> BidOutcome:
        outcome = await self.bid(lot_id, member, amount_won)
        assert outcome.accepted, outcome.code
        return outcome

    async def supplier_email(self) -> str:
        return await self.db.fetchval("SELECT email FROM suppliers WHERE id = $1", self.supplier_id)


async def make_market(db: asyncpg.Pool, live: AuctionLive, *, is_local: bool = True, kind: str = "farm") -> Market:
    tag = secrets.token_hex(4)
    supplier_id = await db.fetchval(
        """INSERT INTO suppliers (name, business_no, representative, phone, email, address, kind, is_local, status)
           VALUES ('광산농장', $1, '박대표', '0629400000', $2, '광주광역시 광산구', $3, $4, 'approved') RETURNING id""",
        secrets.token_hex(5), f"supplier-{tag}@example.com", kind, is_local,
    )
    supplier_user = await db.fetchval(
        "INSERT INTO users (email, password_hash, display_name, role, supplier_id)"
        " VALUES ($1, 'x', '박대표', 'supplier', $2) RETURNING id",
        f"supplier-user-{tag}@example.com", supplier_id,
    )
    staff_user = await db.fetchval(
        "INSERT INTO users (email, password_hash, display_name, role) VALUES ($1, 'x', '운영자', 'staff') RETURNING id",
        f"staff-{tag}@example.com",
    )
    category_id = await db.fetchval(
        "INSERT INTO categories (code, name_ko, name_en) VALUES ($1, '특산품', 'Specialties') RETURNING id", f"c{tag}"
    )
    product_id = await db.fetchval(
        """INSERT INTO products (supplier_id, category_id, name, kind, is_local, origin_label, unit, price_won, status)
           VALUES ($1, $2, '유기농 쌀', $3, $4, '국내산(광주광역시 광산구)', '10kg', 30000, 'approved') RETURNING id""",
        supplier_id, category_id, kind, is_local,
    )
    return Market(
        db=db, live=live,
        staff=Actor(user_id=staff_user, role=STAFF, display_name="운영자"),
        supplier=Actor(user_id=supplier_user, role=SUPPLIER, display_name="박대표", supplier_id=supplier_id),
        supplier_id=supplier_id, product_id=product_id,
    )


@pytest_asyncio.fixture
async def market(db: asyncpg.Pool, live: AuctionLive) -> Market:
    return await make_market(db, live)


async def wait_until_due(live: AuctionLive, lot_id: int) -> None:
    """Sleep until Redis time has passed the lot's current end."""
    while True:
        snapshot = await live.snapshot(lot_id)
        assert snapshot is not None
        if snapshot.server_ms >= snapshot.end_ms:
            return
        await asyncio.sleep(max(0.01, (snapshot.end_ms - snapshot.server_ms) / 1000))

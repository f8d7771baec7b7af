"""Helpers shared by the worker tests: a small market of rows, closing and mail loops."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from engine.accounts import mask_name
from engine.actors import MEMBER, STAFF, SUPPLIER, Actor
from engine.auction.closing import close_due_lots
from engine.auction.ledger import LedgerConsumer
from engine.auction.live import AuctionLive, BidOutcome
from engine.auction.lots import load_lot
from engine.config import Settings
from engine.db import create_pool, migrate
from engine.outbox import OutboxSender

FINAL = ("sold", "unsold", "held", "cancelled")


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


async def wait_until_due(live: AuctionLive, lot_id: int) -> None:
    """Sleep until Redis time has passed the lot's current end."""
    while True:
        snapshot = await live.snapshot(lot_id)
        assert snapshot is not None
        if snapshot.server_ms >= snapshot.end_ms:
            return
        await asyncio.sleep(max(0.01, (snapshot.end_ms - snapshot.server_ms) / 1000))


async def close_until_final(
    db: asyncpg.Pool, live: AuctionLive, settings: Settings, consumer: LedgerConsumer, lot_id: int
) -> str:
    """Run closer rounds and drain the ledger between them until the lot is final in both stores."""
    for _ in range(20):
        await close_due_lots(db, live, settings)
        await consumer.drain()
        status = await db.fetchval("SELECT status FROM lots WHERE id = $1", lot_id)
        snapshot = await live.snapshot(lot_id)
        if status in FINAL and snapshot is not None and snapshot.status == status:
            return status
    raise AssertionError(f"lot {lot_id} did not become final: {status}")


async def send_all(db: asyncpg.Pool, settings: Settings) -> int:
    assert settings.smtp_url
    sender = OutboxSender(db, smtp_url=settings.smtp_url, mail_from=settings.mail_from)
    return await sender.send_due()


async def counts(db: asyncpg.Pool, lot_id: int) -> dict[str, int]:
    return {
        "sales": await db.fetchval("SELECT count(*) FROM sales WHERE lot_id = $1", lot_id),
        "orders": await db.fetchval(
            "SELECT count(*) FROM orders o JOIN sales s ON s.id = o.sale_id WHERE s.lot_id = $1", lot_id
        ),
        "commissions": await db.fetchval(
            "SELECT count(*) FROM money_ledger m JOIN orders o ON o.id = m.order_id JOIN sales s ON s.id = o.sale_id"
            " WHERE s.lot_id = $1 AND m.entry = 'commission'", lot_id,
        ),
        "mails": await db.fetchval("SELECT count(*) FROM outbox WHERE event_key LIKE $1", f"lot:{lot_id}:%"),
    }


async def bid_three(market: Market, lot_id: int):  # type: ignore[no-untyped-def]
    """A 12,000, B 15,000, C 13,000: B leads at 13,500 (C's maximum plus one 500 step)."""
    a, b, c = await market.member("김가영"), await market.member("이나래"), await market.member("박다솜")
    await market.accepted_bid(lot_id, a, 12_000)
    await market.accepted_bid(lot_id, b, 15_000)
    await market.accepted_bid(lot_id, c, 13_000)
    return a, b, c


@contextlib.asynccontextmanager
async def database_before_migration(
    pg_server_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, migration: str
) -> AsyncIterator[asyncpg.Pool]:
    """Yield a new database with every migration before `migration` (a file stem) applied; drop it afterwards.

    The test then inserts rows as they stood before `migration`, and applies the rest
    with `migrate.apply_migrations`.
    """
    name = f"jangteo_wk_mig_{secrets.token_hex(5)}"
    admin = await asyncpg.connect(pg_server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    db = await create_pool(urlunsplit(urlsplit(pg_server_dsn)._replace(path=f"/{name}")), min_size=1, max_size=2)
    try:
        earlier = tmp_path / "migrations"
        earlier.mkdir()
        for path in migrate.MIGRATIONS_DIR.glob("*.sql"):
            if path.stem < migration:
                shutil.copy(path, earlier / path.name)
        monkeypatch.setattr(migrate, "MIGRATIONS_DIR", earlier)
        await migrate.apply_migrations(db)
        monkeypatch.undo()
        yield db
    finally:
        await db.close()
        admin = await asyncpg.connect(pg_server_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

"""Per-test Redis key spaces and a small market of rows for the group-buy engine tests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio

from engine.actors import MEMBER, STAFF, SUPPLIER, Actor
from engine.groupbuy.live import CampaignLive
from engine.keys import Keys

SHARDS = 4


@pytest.fixture
def keys(redis_prefix: str) -> Keys:
    """Keys under a prefix of their own, so no two tests share a campaign, stream or channel."""
    return Keys(f"{redis_prefix}:groupbuy{secrets.token_hex(4)}", SHARDS)


@pytest.fixture
def live(redis_client: redis.asyncio.Redis, keys: Keys) -> CampaignLive:
    return CampaignLive(redis_client, keys)


@dataclass
class Market:
    """Rows for campaign tests: an approved supplier with an approved product, staff, and members on demand."""

    db: asyncpg.Pool
    staff: Actor
    supplier: Actor
    supplier_id: int
    product_id: int

    async def member(self, name: str = "김민수") -> Actor:
        email = f"gb-member-{secrets.token_hex(5)}@example.com"
        user_id = await self.db.fetchval(
            "INSERT INTO users (email, password_hash, display_name, role) VALUES ($1, 'x', $2, 'member') RETURNING id",
            email, name,
        )
        return Actor(user_id=user_id, role=MEMBER, display_name=name)


@pytest_asyncio.fixture
async def market(pg_pool: asyncpg.Pool) -> Market:
    db = pg_pool
    tag = secrets.token_hex(4)
    supplier_id = await db.fetchval(
        """INSERT INTO suppliers (name, business_no, representative, phone, email, address, kind, is_local, status)
           VALUES ('광산김농장', $1, '김대표', '0629400000', $2, '광주광역시 광산구', 'farm', true, 'approved')
           RETURNING id""",
        secrets.token_hex(5), f"gb-supplier-{tag}@example.com",
    )
    supplier_user = await db.fetchval(
        "INSERT INTO users (email, password_hash, display_name, role, supplier_id)"
        " VALUES ($1, 'x', '김대표', 'supplier', $2) RETURNING id",
        f"gb-supplier-user-{tag}@example.com", supplier_id,
    )
    staff_user = await db.fetchval(
        "INSERT INTO users (email, password_hash, display_name, role) VALUES ($1, 'x', '운영자', 'staff') RETURNING id",
        f"gb-staff-{tag}@example.com",
    )
    category_id = await db.fetchval(
        "INSERT INTO categories (code, name_ko, name_en) VALUES ($1, '식품류', 'Food') RETURNING id", f"gb{tag}"
    )
    product_id = await db.fetchval(
        """INSERT INTO products (supplier_id, category_id, name, kind, is_local, origin_label, unit, price_won, status)
           VALUES ($1, $2, '곱창김', 'farm', true, '국내산(전라남도)', '1박스', 10000, 'approved') RETURNING id""",
        supplier_id, category_id,
    )
    return Market(
        db=db,
        staff=Actor(user_id=staff_user, role=STAFF, display_name="운영자"),
        supplier=Actor(user_id=supplier_user, role=SUPPLIER, display_name="김대표", supplier_id=supplier_id),
        supplier_id=supplier_id,
        product_id=product_id,
    )

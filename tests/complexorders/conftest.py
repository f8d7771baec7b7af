"""Shared data of the complex-order tests: two suppliers with products, a coordinator,
staff and members, and a factory of open complex orders."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import asyncpg
import pytest_asyncio

from engine.actors import COORDINATOR, MEMBER, STAFF, Actor
from engine.complexorders.model import ComplexOrder
from engine.complexorders.service import ComplexDraft, ItemDraft, create_complex_order
from tests.web.live.conftest import Account, insert_user


@dataclass
class ComplexWorld:
    supplier_ids: list[int]
    product_ids: list[int]  # laver 30,000원 (supplier 0), noodles 5,000원 (supplier 1), rice 42,000원 (supplier 1)
    coordinator: Account
    staff: Account
    members: list[Account] = field(default_factory=list)


def actor(account: Account) -> Actor:
    return Actor(account.user_id, account.role, account.display_name, account.supplier_id)


async def _supplier(db: asyncpg.Pool, name: str) -> int:
    return await db.fetchval(
        "INSERT INTO suppliers (name, business_no, representative, phone, email, address, kind, is_local, status)"
        " VALUES ($1, $2, '대표', '0629601234', 's@example.com', '광주광역시 광산구', 'farm', true, 'approved')"
        " RETURNING id",
        name, f"{secrets.randbelow(10**10):010d}",
    )


@pytest_asyncio.fixture(scope="session")
async def complex_world(pg_pool: asyncpg.Pool) -> ComplexWorld:
    """Approved products of two suppliers, one coordinator, staff and eight members."""
    category_id = await pg_pool.fetchval(
        "INSERT INTO categories (code, name_ko, name_en) VALUES ($1, '식품류', 'Food') RETURNING id",
        f"complex-{secrets.token_hex(4)}",
    )
    suppliers = [await _supplier(pg_pool, "광산 김 영어조합"), await _supplier(pg_pool, "송정 우리밀")]
    products = []
    for supplier_id, name, unit, price in (
        (suppliers[0], "광산 햇김 선물세트", "1세트", 30_000),
        (suppliers[1], "우리밀 국수", "1봉", 5_000),
        (suppliers[1], "광산 햅쌀", "10kg", 42_000),
    ):
        products.append(await pg_pool.fetchval(
            "INSERT INTO products (supplier_id, category_id, name, kind, is_local, origin_label, unit, price_won, status)"
            " VALUES ($1, $2, $3, 'farm', true, '국내산(광주광역시 광산구)', $4, $5, 'approved') RETURNING id",
            supplier_id, category_id, name, unit, price,
        ))
    coordinator = await insert_user(pg_pool, "한통장", COORDINATOR)
    staff = await insert_user(pg_pool, "장터 운영자", STAFF)
    names = ("김민수", "이서연", "박정민", "최유진", "정하늘", "강바다", "윤가람", "조은별")
    members = [await insert_user(pg_pool, name, MEMBER) for name in names]
    return ComplexWorld(suppliers, products, coordinator, staff, members)


ComplexFactory = Callable[..., Awaitable[ComplexOrder]]


@pytest_asyncio.fixture
async def make_complex(pg_pool: asyncpg.Pool, complex_world: ComplexWorld) -> ComplexFactory:
    """Open a complex order of the world's coordinator; keyword arguments override the draft."""

    async def create(**overrides: object) -> ComplexOrder:
        closes_at = datetime.now(timezone.utc) + timedelta(hours=2)
        values: dict[str, object] = {
            "kind": "apartment",
            "complex_name": "수완 호반베르디움 1차",
            "road_address": "광주광역시 광산구 수완로 12",
            "pickup_point": "관리사무소",
            "delivery_date": date.today() + timedelta(days=3),
            "delivery_slot": "10:00-12:00",
            "closes_at": closes_at,
            "items": tuple(ItemDraft(product_id, 3) for product_id in complex_world.product_ids),
        }
        values.update(overrides)
        return await create_complex_order(pg_pool, actor(complex_world.coordinator), ComplexDraft(**values))  # type: ignore[arg-type]

    return create


# The live tests' servers and signed-in clients.
from tests.web.live.conftest import clients, live_server  # noqa: E402, F401

"""Complex orders as read from PostgreSQL: the order, its items, roster rows and totals."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import asyncpg

from engine.complexorders.rules import household_label, household_sort_key, reward_won


@dataclass(frozen=True)
class Item:
    id: int
    product_id: int
    supplier_id: int
    supplier_name: str
    name: str
    unit: str
    unit_price_won: int
    per_household_limit: int


@dataclass(frozen=True)
class ComplexOrder:
    id: int
    code: str
    kind: str
    coordinator_id: int
    complex_name: str
    road_address: str
    pickup_point: str
    delivery_date: date
    delivery_slot: str
    closes_at: datetime
    min_total_won: int | None
    free_shipping_from_won: int
    shipping_fee_won: int
    reward_bp: int
    status: str
    closed_at: datetime | None
    arrived_at: datetime | None
    items: tuple[Item, ...] = ()

    def item(self, item_id: int) -> Item | None:
        return next((item for item in self.items if item.id == item_id), None)


@dataclass
class RosterRow:
    """One participant as the coordinator sees them (full unit, name and phone)."""

    participant_id: int
    household_id: int
    user_id: int
    building: str
    unit: str
    display_name: str
    phone: str
    joined_at: datetime
    handed_over_at: datetime | None
    shipping_share_won: int
    quantities: dict[int, int] = field(default_factory=dict)      # item id -> units
    refunded_units: dict[int, int] = field(default_factory=dict)  # item id -> units refunded
    goods_won: int = 0
    refunded_won: int = 0
    order_id: int | None = None
    order_no: str | None = None
    order_amount_won: int | None = None
    order_status: str | None = None

    def label(self, kind: str, *, masked: bool) -> str:
        return household_label(kind, self.building, self.unit, masked=masked)

    @property
    def units(self) -> int:
        return sum(self.quantities.values())


@dataclass(frozen=True)
class Totals:
    participants: int
    households: int
    units_by_item: dict[int, int]
    goods_won: int
    refunded_won: int
    reward_won: int

    @property
    def paid_won(self) -> int:
        """What the complex pays for goods after refunds (the reward's base)."""
        return self.goods_won - self.refunded_won


_COMPLEX_COLUMNS = (
    "id, code, kind, coordinator_id, complex_name, road_address, pickup_point, delivery_date, delivery_slot,"
    " closes_at, min_total_won, free_shipping_from_won, shipping_fee_won, reward_bp, status, closed_at, arrived_at"
)


async def fetch_items(connection: asyncpg.Connection | asyncpg.Pool, complex_order_id: int) -> tuple[Item, ...]:
    rows = await connection.fetch(
        """SELECT i.id, i.product_id, i.supplier_id, s.name AS supplier_name, i.name, i.unit,
                  i.unit_price_won, i.per_household_limit
           FROM complex_items i JOIN suppliers s ON s.id = i.supplier_id
           WHERE i.complex_order_id = $1 ORDER BY i.position, i.id""",
        complex_order_id,
    )
    return tuple(Item(**dict(row)) for row in rows)


async def fetch_complex(
    connection: asyncpg.Connection | asyncpg.Pool, complex_order_id: int, *, lock: str = ""
) -> ComplexOrder | None:
    """Read one complex order with its items; `lock` may be "FOR UPDATE" or "FOR SHARE"."""
    if lock not in ("", "FOR UPDATE", "FOR SHARE"):
        raise ValueError(f"lock must be '', 'FOR UPDATE' or 'FOR SHARE', got {lock!r}")
    row = await connection.fetchrow(
        f"SELECT {_COMPLEX_COLUMNS} FROM complex_orders WHERE id = $1 {lock}", complex_order_id
    )
    if row is None:
        return None
    return ComplexOrder(**dict(row), items=await fetch_items(connection, complex_order_id))


async def fetch_complex_by_code(db: asyncpg.Pool, code: str) -> ComplexOrder | None:
    complex_order_id = await db.fetchval("SELECT id FROM complex_orders WHERE code = $1", code)
    return await fetch_complex(db, complex_order_id) if complex_order_id is not None else None


async def fetch_roster(
    connection: asyncpg.Connection | asyncpg.Pool,
    complex_order: ComplexOrder,
    *,
    participant_id: int | None = None,
) -> list[RosterRow]:
    """Read every participant (or one) with quantities, sorted by building then unit, numerically."""
    participants = await connection.fetch(
        """SELECT p.id AS participant_id, p.household_id, p.user_id, h.building, h.unit,
                  u.display_name, p.phone, p.joined_at, h.handed_over_at, p.shipping_share_won,
                  o.id AS order_id, o.order_no, o.amount_won AS order_amount_won, o.status AS order_status
           FROM complex_participants p
           JOIN complex_households h ON h.id = p.household_id
           JOIN users u ON u.id = p.user_id
           LEFT JOIN orders o ON o.source_key = 'complex:' || p.complex_order_id || ':participant:' || p.id
           WHERE p.complex_order_id = $1 AND ($2::bigint IS NULL OR p.id = $2)""",
        complex_order.id, participant_id,
    )
    lines = await connection.fetch(
        """SELECT l.participant_id, l.item_id, l.quantity, l.refunded_units
           FROM complex_lines l JOIN complex_participants p ON p.id = l.participant_id
           WHERE p.complex_order_id = $1 AND ($2::bigint IS NULL OR p.id = $2)""",
        complex_order.id, participant_id,
    )
    prices = {item.id: item.unit_price_won for item in complex_order.items}
    rows = {record["participant_id"]: RosterRow(**dict(record)) for record in participants}
    for line in lines:
        row = rows[line["participant_id"]]
        row.quantities[line["item_id"]] = line["quantity"]
        row.refunded_units[line["item_id"]] = line["refunded_units"]
        row.goods_won += line["quantity"] * prices[line["item_id"]]
        row.refunded_won += line["refunded_units"] * prices[line["item_id"]]
    return sorted(rows.values(), key=lambda row: (*household_sort_key(row.building, row.unit), row.participant_id))


def totals_of(complex_order: ComplexOrder, roster: list[RosterRow]) -> Totals:
    units_by_item = {item.id: 0 for item in complex_order.items}
    for row in roster:
        for item_id, quantity in row.quantities.items():
            units_by_item[item_id] = units_by_item.get(item_id, 0) + quantity
    active = [row for row in roster if row.units > 0]
    goods_won = sum(row.goods_won for row in roster)
    refunded_won = sum(row.refunded_won for row in roster)
    return Totals(
        participants=len(active),
        households=len({row.household_id for row in active}),
        units_by_item=units_by_item,
        goods_won=goods_won,
        refunded_won=refunded_won,
        reward_won=reward_won(goods_won - refunded_won, complex_order.reward_bp),
    )

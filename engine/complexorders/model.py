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
    # Set for a running campaign's product: lines on it are pledges in that campaign,
    # and `unit_price_won` is the campaign's "at most" price (the price at its minimum).
    campaign_id: int | None = None

    @property
    def is_campaign(self) -> bool:
        return self.campaign_id is not None


@dataclass(frozen=True)
class OrderPart:
    """One order made by the close: a participant's goods of one supplier plus part of the shipping."""

    order_id: int
    order_no: str
    supplier_id: int
    supplier_name: str
    amount_won: int
    goods_won: int
    shipping_won: int
    status: str


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
    goods_won: int = 0          # catalogue items only; campaign items are charged by their campaign
    refunded_won: int = 0
    campaign_units: int = 0     # units on campaign items (pledges in those campaigns)
    orders: list[OrderPart] = field(default_factory=list)         # one per supplier, from the close

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
                  i.unit_price_won, i.per_household_limit, i.campaign_id
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
                  u.display_name, p.phone, p.joined_at, h.handed_over_at, p.shipping_share_won
           FROM complex_participants p
           JOIN complex_households h ON h.id = p.household_id
           JOIN users u ON u.id = p.user_id
           WHERE p.complex_order_id = $1 AND ($2::bigint IS NULL OR p.id = $2)""",
        complex_order.id, participant_id,
    )
    parts = await connection.fetch(
        """SELECT x.participant_id, o.id AS order_id, o.order_no, x.supplier_id, s.name AS supplier_name,
                  o.amount_won, x.goods_won, x.shipping_won, o.status
           FROM complex_order_parts x JOIN orders o ON o.id = x.order_id JOIN suppliers s ON s.id = x.supplier_id
           WHERE x.complex_order_id = $1 AND ($2::bigint IS NULL OR x.participant_id = $2)
           ORDER BY x.participant_id, x.supplier_id""",
        complex_order.id, participant_id,
    )
    lines = await connection.fetch(
        """SELECT l.participant_id, l.item_id, l.quantity, l.refunded_units
           FROM complex_lines l JOIN complex_participants p ON p.id = l.participant_id
           WHERE p.complex_order_id = $1 AND ($2::bigint IS NULL OR p.id = $2)""",
        complex_order.id, participant_id,
    )
    items = {item.id: item for item in complex_order.items}
    rows = {record["participant_id"]: RosterRow(**dict(record)) for record in participants}
    for line in lines:
        row = rows[line["participant_id"]]
        item = items[line["item_id"]]
        row.quantities[item.id] = line["quantity"]
        row.refunded_units[item.id] = line["refunded_units"]
        if item.is_campaign:
            row.campaign_units += line["quantity"]
            continue
        row.goods_won += line["quantity"] * item.unit_price_won
        row.refunded_won += line["refunded_units"] * item.unit_price_won
    for part in parts:
        rows[part["participant_id"]].orders.append(
            OrderPart(**{name: part[name] for name in OrderPart.__dataclass_fields__})
        )
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

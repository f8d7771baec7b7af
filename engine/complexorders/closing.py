"""Closing a complex order and what follows: orders, the shipment, sheets, arrival, handover, refunds.

A close runs once: it locks the complex order row (`FOR UPDATE`) and proceeds only
while the status is `open`, so a coordinator and the worker racing to close one
order produce one set of orders. Joins hold a share lock on the same row, so a
close waits for joins in flight.

At the close every participant gets one order per supplier of their catalogue
goods (channel `complex`, bank transfer, awaiting payment, `source_key`
`complex:{id}:participant:{pid}:supplier:{sid}`), because each supplier is the
seller of record and is settled on its own orders. The shipping fee is waived
when the complex's goods total reaches the configured amount. Otherwise it is
split evenly in whole won over the participants with catalogue goods, and each
participant's share over their orders in proportion to the goods
(`rules.split_share_by_goods`), so the orders' shipping parts sum to the fee.

Each order gets its `sale` row (the order's amount) and its `commission` row (the
lines' commissions on goods, by product origin and kind, floored per line) at the
close. A partial refund adds a `refund` row and a `commission_reversal` row, so per
order: sale - refunds = the order's amount, and supplier payout + commission +
refunds = sale.

Campaign items are ordered by their campaign's own close, so they make no order
here. The pick list and the delivery sheet list them, marked, with amount 0.
NOTE: they stay listed when their campaign later fails below its minimum, so the
coordinator has to check the campaign's outcome before handing them over. A
complex order whose goods total stays below its minimum fails and creates no
orders, and its campaign lines are taken out of their campaigns again.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
from redis.asyncio import Redis

from engine import commission, outbox
from engine.actors import Actor
from engine.complexorders import campaign_lines, mails, rules
from engine.complexorders.model import ComplexOrder, OrderPart, RosterRow, fetch_complex, fetch_roster
from engine.complexorders.service import KST, publish
from engine.errors import DomainError
from engine.groupbuy.live import CampaignLive
from engine.keys import Keys
from engine.mail.i18n import recipient_locale
from engine.orders import audit
from engine.outbox import check_recipient

log = logging.getLogger("jangteo.complexorders")

KST_ORDER_PREFIX = "C"
CAMPAIGN_MARK = "공동구매"


def require_coordinator(complex_order: ComplexOrder, actor: Actor) -> None:
    """Allow the complex order's own coordinator and active staff; raise `forbidden` otherwise."""
    if actor.is_staff:
        return
    if actor.user_id != complex_order.coordinator_id or actor.status != "active":
        raise DomainError("forbidden", "only this complex order's coordinator may do this")


async def _locked(connection: asyncpg.Connection, complex_order_id: int) -> ComplexOrder:
    complex_order = await fetch_complex(connection, complex_order_id, lock="FOR UPDATE")
    if complex_order is None:
        raise DomainError("complex_not_found", f"complex order {complex_order_id} does not exist",
                          complex_order_id=complex_order_id)
    return complex_order


# -- the close ------------------------------------------------------------------------


@dataclass(frozen=True)
class CloseResult:
    complex_order_id: int
    status: str
    goods_total_won: int
    shipping: rules.Shipping | None
    order_ids: tuple[int, ...]


async def close_complex_order(
    db: asyncpg.Pool,
    complex_order_id: int,
    *,
    actor: Actor | None,
    payment_due_s: int,
    redis: Redis | None = None,
    keys: Keys | None = None,
) -> CloseResult:
    """Close now: by the coordinator (`actor`) at any time, by the worker (`actor=None`) once due.

    Raises `complex_not_found`, `forbidden`, `complex_not_open` (already closed, or
    for the worker not yet due).
    """
    async with db.acquire() as connection:
        async with connection.transaction():
            complex_order = await _locked(connection, complex_order_id)
            if actor is not None:
                require_coordinator(complex_order, actor)
            if complex_order.status != "open":
                raise DomainError("complex_not_open", f"complex order {complex_order_id} is {complex_order.status}",
                                  complex_order_id=complex_order_id, current_status=complex_order.status)
            if actor is None and not await connection.fetchval("SELECT now() >= $1", complex_order.closes_at):
                raise DomainError("complex_not_open", f"complex order {complex_order_id} is not due yet",
                                  complex_order_id=complex_order_id, current_status="open")
            result = await _close_locked(connection, complex_order, actor, payment_due_s)
    if result.status == "failed":
        await _release_campaign_lines(db, complex_order, redis, keys)
    await publish(redis, keys, complex_order_id, "close")
    log.info("complex order closed complex_order_id=%s status=%s orders=%s by=%s", complex_order_id,
             result.status, len(result.order_ids), actor.user_id if actor else "worker")
    return result


async def _release_campaign_lines(
    db: asyncpg.Pool, complex_order: ComplexOrder, redis: Redis | None, keys: Keys | None
) -> None:
    """Take a failed complex order's campaign lines out of their campaigns, after the close committed.

    Best effort: without Redis, or for a campaign already past its deadline, the
    pledge stays and the error is logged with its ids.
    """
    campaign_items = {item.id: item.campaign_id for item in complex_order.items if item.campaign_id is not None}
    if not campaign_items:
        return
    rows = await db.fetch(
        """SELECT l.item_id, l.quantity, u.id AS user_id, u.role, u.display_name, u.supplier_id, u.status
           FROM complex_lines l JOIN complex_participants p ON p.id = l.participant_id JOIN users u ON u.id = p.user_id
           WHERE p.complex_order_id = $1 AND l.item_id = ANY($2::bigint[]) ORDER BY p.id""",
        complex_order.id, list(campaign_items),
    )
    if redis is None or keys is None:
        if rows:
            log.error("complex campaign lines not released complex_order_id=%s reason=no_redis", complex_order.id)
        return
    live = CampaignLive(redis, keys)
    for row in rows:
        member = Actor(row["user_id"], row["role"], row["display_name"], row["supplier_id"], row["status"])
        try:
            await campaign_lines.change_pledge(db, live, member, campaign_id=campaign_items[row["item_id"]],
                                               item_id=row["item_id"], delta_units=-row["quantity"])
        except DomainError as error:
            log.error("complex campaign line not released complex_order_id=%s user_id=%s item_id=%s reason=%s",
                      complex_order.id, row["user_id"], row["item_id"], error.detail.get("reason", error.code))
    await live.acks.flush(db)


async def close_due_complex_orders(
    db: asyncpg.Pool, *, payment_due_s: int, redis: Redis | None = None, keys: Keys | None = None, limit: int = 50
) -> list[int]:
    """Close every open complex order whose closing time passed (PostgreSQL's clock); return their ids."""
    due = await db.fetch(
        "SELECT id FROM complex_orders WHERE status = 'open' AND closes_at <= now() ORDER BY closes_at LIMIT $1",
        limit,
    )
    closed: list[int] = []
    for row in due:
        try:
            await close_complex_order(db, row["id"], actor=None, payment_due_s=payment_due_s, redis=redis, keys=keys)
        except DomainError as error:
            # Another closer (the coordinator or another worker) was first.
            log.info("complex order close skipped complex_order_id=%s reason=%s", row["id"], error.code)
            continue
        closed.append(row["id"])
    return closed


async def _close_locked(
    connection: asyncpg.Connection, complex_order: ComplexOrder, actor: Actor | None, payment_due_s: int
) -> CloseResult:
    roster = await fetch_roster(connection, complex_order)
    active = sorted((row for row in roster if row.units > 0), key=lambda row: row.participant_id)
    # Participants with catalogue goods get orders; campaign lines are ordered by their campaign.
    ordering = [row for row in active if row.goods_won > 0]
    goods_total = sum(row.goods_won for row in ordering)
    emails = dict(await connection.fetch(
        "SELECT id, email FROM users WHERE id = ANY($1::bigint[])", [row.user_id for row in active]
    ))
    below_minimum = complex_order.min_total_won is not None and goods_total < complex_order.min_total_won
    actor_id = actor.user_id if actor else None

    if not active or below_minimum:
        await connection.execute(
            "UPDATE complex_orders SET status = 'failed', closed_at = now(), closed_by = $2 WHERE id = $1",
            complex_order.id, actor_id,
        )
        for row in active:
            mail = mails.order_failed(await recipient_locale(connection, emails.get(row.user_id)),
                                      complex_name=complex_order.complex_name, goods_total_won=goods_total,
                                      min_total_won=complex_order.min_total_won or 0,
                                      has_campaign_goods=row.campaign_units > 0)
            await _enqueue(connection, f"complex:{complex_order.id}:failed", emails.get(row.user_id), mail)
        if actor is not None:
            await audit(connection, actor, "complex.close", "complex_order", complex_order.id,
                        {"status": "failed", "goods_total_won": goods_total})
        return CloseResult(complex_order.id, "failed", goods_total, None, ())

    if ordering:
        shipping = rules.shipping_for(goods_total, free_from_won=complex_order.free_shipping_from_won,
                                      fee_won=complex_order.shipping_fee_won)
    else:
        shipping = rules.Shipping(0, 0, True)
    await connection.execute(
        "INSERT INTO complex_shipments (complex_order_id, goods_total_won, fee_won, waived) VALUES ($1, $2, $3, $4)",
        complex_order.id, goods_total, shipping.fee_won, shipping.waived,
    )
    now = await connection.fetchval("SELECT now()")
    due_at = now + timedelta(seconds=payment_due_s)
    rates = await _line_rates(connection, complex_order, now)
    shares = dict(zip((row.participant_id for row in ordering),
                      rules.split_fee(shipping.fee_won, len(ordering)), strict=True))
    order_ids: list[int] = []
    for row in active:
        share = shares.get(row.participant_id, 0)
        parts = [
            await _insert_order(connection, complex_order, row, supplier_id, goods_won, shipping_won, rates, now, due_at)
            for supplier_id, goods_won, shipping_won in _supplier_parts(complex_order, row, share)
        ]
        order_ids.extend(part.order_id for part in parts)
        await connection.execute(
            "UPDATE complex_participants SET shipping_share_won = $2 WHERE id = $1", row.participant_id, share
        )
        campaign_goods = [
            f"{item.name} {item.unit} × {row.quantities[item.id]}"
            for item in complex_order.items if item.is_campaign and row.quantities.get(item.id)
        ]
        mail = mails.order_confirmed(
            await recipient_locale(connection, emails.get(row.user_id)),
            complex_name=complex_order.complex_name, orders=parts, shipping_share_won=share, due_at=due_at,
            pickup_point=complex_order.pickup_point, delivery_date=complex_order.delivery_date,
            delivery_slot=complex_order.delivery_slot, campaign_goods=campaign_goods,
        )
        await _enqueue(connection, f"complex:{complex_order.id}:closed", emails.get(row.user_id), mail)
    await connection.execute(
        "UPDATE complex_orders SET status = 'closed', closed_at = now(), closed_by = $2 WHERE id = $1",
        complex_order.id, actor_id,
    )
    if actor is not None:
        await audit(connection, actor, "complex.close", "complex_order", complex_order.id,
                    {"status": "closed", "goods_total_won": goods_total, "shipping_fee_won": shipping.fee_won})
    return CloseResult(complex_order.id, "closed", goods_total, shipping, tuple(order_ids))


def _supplier_parts(complex_order: ComplexOrder, row: RosterRow, share_won: int) -> list[tuple[int, int, int]]:
    """Return (supplier id, goods, shipping part) per supplier of a participant's catalogue lines."""
    goods: dict[int, int] = {}
    for item in complex_order.items:
        quantity = row.quantities.get(item.id, 0)
        if item.is_campaign or quantity == 0:
            continue
        goods[item.supplier_id] = goods.get(item.supplier_id, 0) + quantity * item.unit_price_won
    shipping = rules.split_share_by_goods(share_won, goods)
    return [(supplier_id, goods[supplier_id], shipping[supplier_id]) for supplier_id in sorted(goods)]


async def _line_rates(connection: asyncpg.Connection, complex_order: ComplexOrder, at: datetime) -> dict[int, int]:
    """Return the commission rate in basis points of each catalogue item, by its product's origin and kind."""
    products = {
        row["id"]: (row["is_local"], row["kind"])
        for row in await connection.fetch(
            "SELECT id, is_local, kind FROM products WHERE id = ANY($1::bigint[])",
            [item.product_id for item in complex_order.items],
        )
    }
    rates: dict[int, int] = {}
    for item in complex_order.items:
        if item.is_campaign:
            continue
        is_local, kind = products[item.product_id]
        rates[item.id] = await commission.rate_bp_at(connection, is_local=is_local, kind=kind, at=at)
    return rates


async def _insert_order(
    connection: asyncpg.Connection,
    complex_order: ComplexOrder,
    row: RosterRow,
    supplier_id: int,
    goods_won: int,
    shipping_won: int,
    rates: dict[int, int],
    now: datetime,
    due_at: datetime,
) -> OrderPart:
    """Insert one participant's order with one supplier, its line commissions and its ledger rows.

    The `sale` row is the order's amount (goods and shipping part). The `commission`
    row is the sum of its lines' commissions on goods only, each floored to the won.
    Its `rate_bp` is the lines' rate, or NULL when the lines have different rates.
    """
    order_id = await connection.fetchval("SELECT nextval(pg_get_serial_sequence('orders', 'id'))")
    order_no = f"{KST_ORDER_PREFIX}{now.astimezone(KST):%Y%m%d}{order_id}"
    amount_won = goods_won + shipping_won
    await connection.execute(
        """INSERT INTO orders (id, order_no, channel, buyer_id, supplier_id, amount_won, status,
                               payment_method, payment_due_at, source_key, complex_order_id)
           VALUES ($1, $2, 'complex', $3, $4, $5, 'awaiting_payment', 'bank_transfer', $6, $7, $8)""",
        order_id, order_no, row.user_id, supplier_id, amount_won, due_at,
        order_source_key(complex_order.id, row.participant_id, supplier_id), complex_order.id,
    )
    await connection.execute(
        """INSERT INTO complex_order_parts (order_id, complex_order_id, participant_id, supplier_id, goods_won,
                                            shipping_won)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        order_id, complex_order.id, row.participant_id, supplier_id, goods_won, shipping_won,
    )
    commission_total = 0
    line_rates: set[int] = set()
    for item in complex_order.items:
        quantity = row.quantities.get(item.id, 0)
        if item.is_campaign or item.supplier_id != supplier_id or quantity == 0:
            continue
        rate_bp = rates[item.id]
        line_commission = commission.commission_won(quantity * item.unit_price_won, rate_bp)
        await connection.execute(
            "UPDATE complex_lines SET rate_bp = $3, commission_won = $4 WHERE participant_id = $1 AND item_id = $2",
            row.participant_id, item.id, rate_bp, line_commission,
        )
        commission_total += line_commission
        line_rates.add(rate_bp)
    await connection.execute(
        """INSERT INTO money_ledger (order_id, supplier_id, entry, amount_won, rate_bp)
           VALUES ($1, $2, 'sale', $3, NULL), ($1, $2, 'commission', $4, $5)""",
        order_id, supplier_id, amount_won, commission_total, line_rates.pop() if len(line_rates) == 1 else None,
    )
    supplier_name = next(item.supplier_name for item in complex_order.items if item.supplier_id == supplier_id)
    return OrderPart(order_id, order_no, supplier_id, supplier_name, amount_won, goods_won, shipping_won,
                     "awaiting_payment")


def order_source_key(complex_order_id: int, participant_id: int, supplier_id: int) -> str:
    """Return the unique `orders.source_key` of one participant's order with one supplier."""
    return f"complex:{complex_order_id}:participant:{participant_id}:supplier:{supplier_id}"


async def _enqueue(connection: asyncpg.Connection, event_key: str, recipient: str | None, mail: mails.Mail) -> bool:
    if not recipient:
        return False
    try:
        check_recipient(recipient)
    except ValueError:
        log.warning("complex mail skipped event_key=%s reason=invalid_recipient", event_key)
        return False
    return await outbox.enqueue(connection, event_key, recipient, mail.subject, mail.body)


async def _ledger_refund(
    connection: asyncpg.Connection, line: asyncpg.Record, supplier_id: int, units: int, amount_won: int
) -> None:
    """Write the `refund` row and the `commission_reversal` row of `units` refunded from one line."""
    commission_won = line["commission_won"] or 0
    before = rules.commission_reversed_won(commission_won, line["quantity"], line["refunded_units"])
    after = rules.commission_reversed_won(commission_won, line["quantity"], line["refunded_units"] + units)
    await connection.execute(
        """INSERT INTO money_ledger (order_id, supplier_id, entry, amount_won, rate_bp)
           VALUES ($1, $2, 'refund', $3, NULL), ($1, $2, 'commission_reversal', $4, NULL)""",
        line["order_id"], supplier_id, amount_won, before - after,
    )


# -- pick list and delivery sheet ----------------------------------------------------


@dataclass(frozen=True)
class PickLine:
    """Units of one item; a campaign item's units are ordered by its campaign, so its amount is 0 here."""

    item_id: int
    name: str
    unit: str
    units: int
    unit_price_won: int
    campaign_id: int | None = None

    @property
    def amount_won(self) -> int:
        return 0 if self.campaign_id is not None else self.units * self.unit_price_won


@dataclass(frozen=True)
class PickList:
    """One consolidated purchase order for one supplier."""

    supplier_id: int
    supplier_name: str
    lines: tuple[PickLine, ...]

    @property
    def units(self) -> int:
        return sum(line.units for line in self.lines)

    @property
    def amount_won(self) -> int:
        return sum(line.amount_won for line in self.lines)


def pick_lists(complex_order: ComplexOrder, roster: list[RosterRow]) -> list[PickList]:
    """Total units per item, grouped by supplier (items in the complex order's order)."""
    units: dict[int, int] = {}
    for row in roster:
        for item_id, quantity in row.quantities.items():
            units[item_id] = units.get(item_id, 0) + quantity
    by_supplier: dict[int, list[PickLine]] = {}
    names: dict[int, str] = {}
    for item in complex_order.items:
        if not units.get(item.id):
            continue
        names[item.supplier_id] = item.supplier_name
        by_supplier.setdefault(item.supplier_id, []).append(
            PickLine(item.id, item.name, item.unit, units[item.id], item.unit_price_won, item.campaign_id)
        )
    return [PickList(supplier_id, names[supplier_id], tuple(lines)) for supplier_id, lines in by_supplier.items()]


@dataclass(frozen=True)
class SheetLine:
    """Units to hand over; `amount_won` is 0 for campaign goods, which their campaign charges."""

    item_name: str
    unit: str
    units: int
    amount_won: int
    campaign_id: int | None = None


@dataclass
class SheetHousehold:
    household_id: int
    building: str
    unit: str
    names: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    lines: list[SheetLine] = field(default_factory=list)
    handed_over: bool = False

    @property
    def units(self) -> int:
        return sum(line.units for line in self.lines)

    @property
    def amount_won(self) -> int:
        return sum(line.amount_won for line in self.lines)


@dataclass
class SheetBuilding:
    building: str
    households: list[SheetHousehold] = field(default_factory=list)

    @property
    def units(self) -> int:
        return sum(household.units for household in self.households)

    @property
    def amount_won(self) -> int:
        return sum(household.amount_won for household in self.households)


def delivery_sheet(complex_order: ComplexOrder, roster: list[RosterRow]) -> list[SheetBuilding]:
    """Group households by building, then unit, in numeric order; units to deliver exclude refunded ones.

    The roster is already sorted by (building, unit) numerically. Accounts of one
    household are merged into one household entry with their units summed per item.
    """
    buildings: list[SheetBuilding] = []
    households: dict[int, SheetHousehold] = {}
    units: dict[int, dict[int, int]] = {}
    for row in roster:
        household = households.get(row.household_id)
        if household is None:
            household = SheetHousehold(row.household_id, row.building, row.unit,
                                       handed_over=row.handed_over_at is not None)
            households[row.household_id] = household
            units[row.household_id] = {}
            if not buildings or buildings[-1].building != row.building:
                buildings.append(SheetBuilding(row.building))
            buildings[-1].households.append(household)
        household.names.append(row.display_name)
        household.phones.append(row.phone)
        for item_id, quantity in row.quantities.items():
            delivered = quantity - row.refunded_units.get(item_id, 0)
            units[row.household_id][item_id] = units[row.household_id].get(item_id, 0) + delivered
    for household_id, household in households.items():
        for item in complex_order.items:
            count = units[household_id].get(item.id, 0)
            if count > 0:
                amount_won = 0 if item.is_campaign else count * item.unit_price_won
                household.lines.append(SheetLine(item.name, item.unit, count, amount_won, item.campaign_id))
    for building in buildings:
        building.households = [household for household in building.households if household.lines]
    return [building for building in buildings if building.households]


def delivery_sheet_csv(complex_order: ComplexOrder, buildings: list[SheetBuilding]) -> bytes:
    """Render the delivery sheet as CSV: UTF-8 with a BOM (so Excel reads Korean), CRLF rows.

    One row per household and item, a subtotal row after each building and a grand
    total at the end. Amounts are plain digits in won. The last column (구분) marks
    campaign goods with "공동구매"; their amount is 0 because their campaign charges them.
    """
    apartment = complex_order.kind == rules.APARTMENT
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["동", "호", "상품", "단위", "수량", "금액(원)", "구분"] if apartment
                    else ["부서", "자리", "상품", "단위", "수량", "금액(원)", "구분"])
    for building in buildings:
        for household in building.households:
            for line in household.lines:
                writer.writerow([building.building, household.unit, line.item_name, line.unit, line.units,
                                 line.amount_won, CAMPAIGN_MARK if line.campaign_id is not None else ""])
        label = f"{building.building}동 소계" if apartment else f"{building.building} 소계"
        writer.writerow([label, "", "", "", building.units, building.amount_won, ""])
    writer.writerow(["합계", "", "", "", sum(b.units for b in buildings), sum(b.amount_won for b in buildings), ""])
    return b"\xef\xbb\xbf" + buffer.getvalue().encode("utf-8")


# -- arrival, handover and refunds ---------------------------------------------------


async def mark_arrived(db: asyncpg.Pool, actor: Actor, complex_order_id: int, *,
                       redis: Redis | None = None, keys: Keys | None = None) -> int:
    """Record that the goods arrived and mail every participant once; return the mails queued now.

    Raises `forbidden`, `complex_not_found`, `complex_not_closed`.
    """
    async with db.acquire() as connection:
        async with connection.transaction():
            complex_order = await _locked(connection, complex_order_id)
            require_coordinator(complex_order, actor)
            if complex_order.status != "closed":
                raise DomainError("complex_not_closed", f"complex order {complex_order_id} is {complex_order.status}",
                                  complex_order_id=complex_order_id)
            await connection.execute(
                "UPDATE complex_orders SET arrived_at = coalesce(arrived_at, now()) WHERE id = $1", complex_order_id
            )
            # Every participant with goods in the delivery, campaign goods included.
            rows = await connection.fetch(
                """SELECT p.id, u.email, h.building, h.unit FROM complex_participants p
                   JOIN users u ON u.id = p.user_id JOIN complex_households h ON h.id = p.household_id
                   WHERE p.complex_order_id = $1
                     AND EXISTS (SELECT 1 FROM complex_lines l WHERE l.participant_id = p.id)
                   ORDER BY p.id""",
                complex_order_id,
            )
            queued = 0
            for row in rows:
                mail = mails.goods_arrived(
                    await recipient_locale(connection, row["email"]),
                    complex_name=complex_order.complex_name, pickup_point=complex_order.pickup_point,
                    household=rules.household_label(complex_order.kind, row["building"], row["unit"], masked=False),
                )
                queued += await _enqueue(connection, f"complex:{complex_order_id}:arrived", row["email"], mail)
            await audit(connection, actor, "complex.arrived", "complex_order", complex_order_id, {"mails": queued})
    await publish(redis, keys, complex_order_id, "arrived")
    log.info("complex goods arrived complex_order_id=%s mails_queued=%s", complex_order_id, queued)
    return queued


async def set_handed_over(db: asyncpg.Pool, actor: Actor, complex_order_id: int, household_id: int,
                          handed_over: bool, *, redis: Redis | None = None, keys: Keys | None = None) -> None:
    """Tick (or untick) a household as handed over on the delivery day.

    Raises `forbidden`, `complex_not_found`, `complex_not_closed`, `household_not_found`.
    """
    async with db.acquire() as connection:
        async with connection.transaction():
            complex_order = await fetch_complex(connection, complex_order_id, lock="FOR SHARE")
            if complex_order is None:
                raise DomainError("complex_not_found", f"complex order {complex_order_id} does not exist",
                                  complex_order_id=complex_order_id)
            require_coordinator(complex_order, actor)
            if complex_order.status != "closed":
                raise DomainError("complex_not_closed", f"complex order {complex_order_id} is {complex_order.status}",
                                  complex_order_id=complex_order_id)
            updated = await connection.execute(
                """UPDATE complex_households
                   SET handed_over_at = CASE WHEN $3 THEN coalesce(handed_over_at, now()) END,
                       handed_over_by = CASE WHEN $3 THEN $4::bigint END
                   WHERE id = $2 AND complex_order_id = $1""",
                complex_order_id, household_id, handed_over, actor.user_id,
            )
            if updated.endswith(" 0"):
                raise DomainError("household_not_found", f"household {household_id} is not in this complex order",
                                  household_id=household_id)
    await publish(redis, keys, complex_order_id, "handover")


@dataclass(frozen=True)
class RefundPart:
    participant_id: int
    order_id: int
    units: int
    amount_won: int
    source_key: str


async def refund_shortage(
    db: asyncpg.Pool,
    actor: Actor,
    complex_order_id: int,
    *,
    household_id: int,
    item_id: int,
    units: int,
    reason: str,
    refund_key: str,
    redis: Redis | None = None,
    keys: Keys | None = None,
) -> tuple[RefundPart, ...]:
    """Refund `units` of one item that a household did not receive (shortage or damage).

    The units are taken from the household's accounts in join order. Each affected
    order (the account's order with the item's supplier) gets one `refunds` row
    (source key `complex:{id}:refund:{key}:participant:{pid}`) and its amount is
    reduced by that row's amount. The money ledger gets a `refund` row of that amount
    and a negative `commission_reversal` row (see `rules.commission_reversed_won`).
    Sending the same `refund_key` again returns the first result and changes
    nothing. Raises `forbidden`, `complex_not_found`, `complex_not_closed`,
    `item_not_found`, `campaign_item_not_refundable`, `household_not_found`,
    `refund_too_large`.
    """
    prefix = f"complex:{complex_order_id}:refund:{refund_key}:participant:"
    async with db.acquire() as connection:
        async with connection.transaction():
            complex_order = await _locked(connection, complex_order_id)
            require_coordinator(complex_order, actor)
            previous = await connection.fetch(
                "SELECT source_key, order_id, amount_won FROM refunds WHERE left(source_key, length($1)) = $1 ORDER BY id",
                prefix,
            )
            if previous:
                return tuple(
                    RefundPart(int(row["source_key"][len(prefix):]), row["order_id"], 0, row["amount_won"],
                               row["source_key"])
                    for row in previous
                )
            if complex_order.status != "closed":
                raise DomainError("complex_not_closed", f"complex order {complex_order_id} is {complex_order.status}",
                                  complex_order_id=complex_order_id)
            item = complex_order.item(item_id)
            if item is None:
                raise DomainError("item_not_found", f"item {item_id} is not offered here", item_id=item_id)
            if item.is_campaign:
                raise DomainError("campaign_item_not_refundable",
                                  f"item {item_id} was ordered through campaign {item.campaign_id}; refund that order",
                                  item_id=item_id, campaign_id=item.campaign_id)
            locked = await connection.fetchval(
                "SELECT id FROM complex_households WHERE id = $1 AND complex_order_id = $2 FOR UPDATE",
                household_id, complex_order_id,
            )
            if locked is None:
                raise DomainError("household_not_found", f"household {household_id} is not in this complex order",
                                  household_id=household_id)
            lines = await connection.fetch(
                """SELECT l.participant_id, l.quantity, l.refunded_units, l.commission_won, p.user_id, u.email,
                          o.id AS order_id, o.order_no, o.amount_won
                   FROM complex_lines l JOIN complex_participants p ON p.id = l.participant_id
                   JOIN users u ON u.id = p.user_id
                   JOIN complex_order_parts x ON x.participant_id = p.id AND x.supplier_id = $3
                   JOIN orders o ON o.id = x.order_id
                   WHERE l.household_id = $1 AND l.item_id = $2 AND o.status <> 'cancelled'
                   ORDER BY p.id
                   FOR UPDATE OF l, o""",
                household_id, item_id, item.supplier_id,
            )
            refundable = sum(line["quantity"] - line["refunded_units"] for line in lines)
            if units > refundable:
                raise DomainError("refund_too_large", f"the household has {refundable} refundable units",
                                  refundable=refundable)
            parts: list[RefundPart] = []
            left = units
            for line in lines:
                take = min(left, line["quantity"] - line["refunded_units"])
                if take <= 0:
                    continue
                left -= take
                amount_won = take * item.unit_price_won
                source_key = f"{prefix}{line['participant_id']}"
                await connection.execute(
                    """INSERT INTO refunds (source_key, order_id, user_id, amount_won, reason)
                       VALUES ($1, $2, $3, $4, $5)""",
                    source_key, line["order_id"], line["user_id"], amount_won, reason,
                )
                await connection.execute(
                    "UPDATE complex_lines SET refunded_units = refunded_units + $3"
                    " WHERE participant_id = $1 AND item_id = $2",
                    line["participant_id"], item_id, take,
                )
                await connection.execute(
                    "UPDATE orders SET amount_won = amount_won - $2 WHERE id = $1", line["order_id"], amount_won
                )
                await _ledger_refund(connection, line, item.supplier_id, take, amount_won)
                mail = mails.refunded(await recipient_locale(connection, line["email"]),
                                      complex_name=complex_order.complex_name, order_no=line["order_no"],
                                      amount_won=amount_won, reason=reason)
                await _enqueue(connection, source_key, line["email"], mail)
                parts.append(RefundPart(line["participant_id"], line["order_id"], take, amount_won, source_key))
            await audit(connection, actor, "complex.refund", "complex_order", complex_order_id,
                        {"household_id": household_id, "item_id": item_id, "units": units, "key": refund_key})
    await publish(redis, keys, complex_order_id, "refund")
    log.info("complex refund complex_order_id=%s household_id=%s item_id=%s units=%s",
             complex_order_id, household_id, item_id, units)
    return tuple(parts)

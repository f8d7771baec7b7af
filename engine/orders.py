"""Bank-transfer (무통장입금) orders: staff confirm deposits; unpaid orders lapse at their due time.

A group-buy order of an up-front campaign may be partly paid by the buyer's
up-front pledge payments (`orders.prepaid_won`), so its deposit is the remainder.

Both run one transaction per order that changes its status, writes the money
ledger and audit rows that go with it and queues the buyer's mail, so a status
change and its side effects commit together or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine import outbox
from engine.actors import Actor
from engine.auction.rules import MAX_AMOUNT_WON
from engine.errors import DomainError
from engine.mail import templates
from engine.mail.i18n import recipient_locale

log = logging.getLogger("jangteo.orders")

# NOTE: only auction orders lapse here; shop and group-buy orders also release stock
# when they lapse, which their own modules handle.
LAPSING_CHANNELS = ("auction",)


def require_staff(actor: Actor) -> None:
    if not actor.is_staff:
        raise DomainError("forbidden", "only active staff accounts may do this")


async def audit(
    connection: asyncpg.Connection, actor: Actor, action: str, target_type: str, target_id: int, detail: dict
) -> None:
    await connection.execute(
        "INSERT INTO audit_log (actor_id, action, target_type, target_id, detail) VALUES ($1, $2, $3, $4, $5)",
        actor.user_id, action, target_type, target_id, detail,
    )


@dataclass(frozen=True)
class DepositConfirmation:
    """The amounts of an order whose bank transfer staff confirmed, in won."""

    order_id: int
    order_no: str
    amount_won: int  # the order's amount
    prepaid_won: int  # up-front pledge payments settled into the order now
    due_won: int  # amount_won - prepaid_won, the transfer the order still needed
    deposit_won: int  # the transfer staff confirmed
    refund_won: int  # deposit_won - due_won, refunded on the order


async def confirm_deposit(
    db: asyncpg.Pool, actor: Actor, order_id: int, *, deposit_won: int | None = None
) -> DepositConfirmation:
    """Mark a bank-transfer order paid after staff saw the deposit; audited, buyer mailed.

    `deposit_won` is the transfer staff saw arrive, by default exactly the amount
    due. For a group-buy order the amount due is the order's amount minus the
    buyer's paid up-front payments of the campaign, and those payments are settled
    into the order in the same transaction. A transfer beyond the amount due is
    recorded as received and refunded on the order (`deposit_excess`). Raises
    DomainError `forbidden` for non-staff, `order_not_found`,
    `order_not_awaiting_payment` when the order is paid, cancelled or refunded,
    `invalid_amount` for a `deposit_won` that is not a positive whole number, and
    `deposit_short` when it is below the amount due, so staff confirm only once the
    whole remainder has arrived.
    """
    require_staff(actor)
    if deposit_won is not None and (
        isinstance(deposit_won, bool) or not isinstance(deposit_won, int) or not 0 < deposit_won <= MAX_AMOUNT_WON
    ):
        raise DomainError("invalid_amount",
                          f"a deposit is 1 to {MAX_AMOUNT_WON} whole won, got {deposit_won!r:.40}")
    campaign_id = await db.fetchval("SELECT campaign_id FROM orders WHERE id = $1", order_id)
    async with db.acquire() as connection:
        async with connection.transaction():
            if campaign_id is not None:
                # The campaign row first, in the lock order of every pledge-payment writer.
                await connection.execute("SELECT 1 FROM campaigns WHERE id = $1 FOR NO KEY UPDATE", campaign_id)
            order = await _lock_awaiting_order(connection, order_id)
            prepaid = await _prepaid_payments(connection, order)
            confirmation = _deposit_split(order, prepaid, deposit_won)
            await connection.execute(
                "UPDATE orders SET status = 'paid', paid_at = now(), confirmed_by = $2, deposit_won = $3"
                " WHERE id = $1",
                order_id, actor.user_id, confirmation.deposit_won,
            )
            if prepaid:
                # Deferred import, because engine.groupbuy.payments imports this module.
                from engine.groupbuy.payments import settle_into_order

                await settle_into_order(connection, order_id, prepaid)
            if confirmation.refund_won:
                await _refund_deposit_excess(connection, order, confirmation.refund_won)
            await audit(connection, actor, "order.confirm_deposit", "order", order_id, {
                "amount_won": confirmation.amount_won, "prepaid_won": confirmation.prepaid_won,
                "due_won": confirmation.due_won, "deposit_won": confirmation.deposit_won,
                "refund_won": confirmation.refund_won, "settled_payment_ids": [p["id"] for p in prepaid],
            })
            if order["buyer_email"]:
                mail = templates.deposit_confirmed(
                    await recipient_locale(connection, order["buyer_email"]), order_no=order["order_no"],
                    amount_won=confirmation.amount_won, prepaid_won=confirmation.prepaid_won,
                    deposit_won=confirmation.deposit_won, refund_won=confirmation.refund_won,
                )
                await outbox.enqueue(connection, f"order:{order_id}:paid", order["buyer_email"], mail.subject, mail.body)
    log.info("deposit confirmed order_id=%s actor_id=%s prepaid_won=%s deposit_won=%s refund_won=%s",
             order_id, actor.user_id, confirmation.prepaid_won, confirmation.deposit_won, confirmation.refund_won)
    return confirmation


async def _lock_awaiting_order(connection: asyncpg.Connection, order_id: int) -> asyncpg.Record:
    order = await connection.fetchrow(
        "SELECT o.*, u.email AS buyer_email FROM orders o LEFT JOIN users u ON u.id = o.buyer_id"
        " WHERE o.id = $1 FOR UPDATE OF o",
        order_id,
    )
    if order is None:
        raise DomainError("order_not_found", f"order {order_id} does not exist", order_id=order_id)
    if order["status"] != "awaiting_payment":
        raise DomainError(
            "order_not_awaiting_payment",
            f"order {order_id} is {order['status']}; only an order awaiting payment can be confirmed",
            order_id=order_id, status=order["status"],
        )
    return order


async def _prepaid_payments(connection: asyncpg.Connection, order: asyncpg.Record) -> list[asyncpg.Record]:
    """Lock and return the buyer's paid up-front payments that count toward a group-buy order."""
    if order["campaign_id"] is None or order["buyer_id"] is None:
        return []
    # Deferred import, because engine.groupbuy.payments imports this module.
    from engine.groupbuy.payments import paid_payments_for_update

    prepaid = await paid_payments_for_update(connection, order["campaign_id"], order["buyer_id"])
    prepaid_won = sum(payment["amount_won"] for payment in prepaid)
    if prepaid_won != order["prepaid_won"]:
        log.warning("order prepaid amount differs from its paid payments order_id=%s prepaid_won=%s paid_won=%s",
                    order["id"], order["prepaid_won"], prepaid_won)
    return prepaid


def _deposit_split(
    order: asyncpg.Record, prepaid: Sequence[asyncpg.Record], deposit_won: int | None
) -> DepositConfirmation:
    """Split an order's amount into the up-front payments, the transfer due and its excess."""
    prepaid_won = sum(payment["amount_won"] for payment in prepaid)
    due_won = order["amount_won"] - prepaid_won
    if due_won <= 0:
        # The close and `confirm_pledge_deposit` mark an order paid as soon as its paid
        # payments cover it, so an order awaiting payment always has a remainder.
        raise RuntimeError(f"order {order['id']} awaits payment, but its paid up-front payments of "
                           f"{prepaid_won} won cover its {order['amount_won']} won")
    if deposit_won is None:
        deposit_won = due_won
    if deposit_won < due_won:
        raise DomainError(
            "deposit_short",
            f"the deposit of {deposit_won} won is below the {due_won} won due on order {order['id']}",
            order_id=order["id"], deposit_won=deposit_won, due_won=due_won,
        )
    return DepositConfirmation(
        order_id=order["id"], order_no=order["order_no"], amount_won=order["amount_won"], prepaid_won=prepaid_won,
        due_won=due_won, deposit_won=deposit_won, refund_won=deposit_won - due_won,
    )


async def _refund_deposit_excess(connection: asyncpg.Connection, order: asyncpg.Record, refund_won: int) -> None:
    """Refund what a transfer exceeded the amount due by: a refund row, and `overpayment` and `refund` ledger rows.

    The commission stays as the sale fixed it, because the excess was never part of the sale.
    """
    await connection.execute(
        """INSERT INTO refunds (source_key, order_id, user_id, amount_won, reason)
           VALUES ($1, $2, $3, $4, 'deposit_excess')""",
        f"order:{order['id']}:deposit_excess", order["id"], order["buyer_id"], refund_won,
    )
    await connection.execute(
        """INSERT INTO money_ledger (order_id, supplier_id, entry, amount_won, rate_bp)
           SELECT id, supplier_id, entry, $2, NULL
           FROM orders, unnest(ARRAY['overpayment', 'refund']) AS entry
           WHERE id = $1""",
        order["id"], refund_won,
    )


@dataclass(frozen=True)
class OrderBalance:
    """An order's amount split into up-front payments and the bank transfer, in won."""

    order_id: int
    order_no: str
    channel: str
    status: str
    buyer_id: int | None
    amount_won: int
    prepaid_won: int  # up-front pledge payments that count toward the order
    due_won: int  # amount_won - prepaid_won, the bank transfer the order needs
    deposit_won: int | None  # the transfer staff confirmed; None until then
    payment_due_at: datetime | None


async def order_balance(db: asyncpg.Pool, order_id: int) -> OrderBalance | None:
    """Return an order's split into up-front payments and the transfer due, or None for no such order.

    While the order awaits payment, the up-front payments are the buyer's paid
    payments of the campaign, read as `confirm_deposit` reads them but without
    locking, so a pledge deposit confirmed meanwhile can still lower the amount due.
    Afterwards they are the payments settled into the order (`orders.prepaid_won`).
    """
    order = await db.fetchrow("SELECT * FROM orders WHERE id = $1", order_id)
    if order is None:
        return None
    prepaid_won = order["prepaid_won"]
    if order["status"] == "awaiting_payment" and order["campaign_id"] is not None and order["buyer_id"] is not None:
        prepaid_won = await db.fetchval(
            "SELECT coalesce(sum(amount_won), 0)::bigint FROM pledge_payments"
            " WHERE campaign_id = $1 AND user_id = $2 AND status = 'paid'",
            order["campaign_id"], order["buyer_id"],
        )
    return OrderBalance(
        order_id=order_id, order_no=order["order_no"], channel=order["channel"], status=order["status"],
        buyer_id=order["buyer_id"], amount_won=order["amount_won"], prepaid_won=prepaid_won,
        due_won=max(order["amount_won"] - prepaid_won, 0), deposit_won=order["deposit_won"],
        payment_due_at=order["payment_due_at"],
    )


async def cancel_order_in_transaction(connection: asyncpg.Connection, order: asyncpg.Record) -> None:
    """Cancel an unpaid order whose row the caller locked, reversing its sale and its commission.

    Each reversal row carries the negative amount of the row it reverses, so once the
    order is cancelled its sale rows sum to the amount paid (0) and so do its
    commission rows. A second reversal of the same order raises UniqueViolationError
    (`money_ledger_once_key`).
    """
    await connection.execute("UPDATE orders SET status = 'cancelled' WHERE id = $1", order["id"])
    await connection.execute(
        """INSERT INTO money_ledger (order_id, supplier_id, entry, amount_won, rate_bp)
           SELECT order_id, supplier_id, entry || '_reversal', -amount_won, rate_bp
           FROM money_ledger WHERE order_id = $1 AND entry IN ('sale', 'commission')
           ORDER BY id""",
        order["id"],
    )


async def due_unpaid_order_ids(
    db: asyncpg.Pool, *, limit: int = 100, exclude_ids: Sequence[int] = ()
) -> list[int]:
    """Return ids of bank-transfer orders still unpaid after their due time (PostgreSQL's clock).

    Reads without locking; `cancel_unpaid_order` locks and re-checks each one.
    """
    rows = await db.fetch(
        """SELECT id FROM orders
           WHERE status = 'awaiting_payment' AND payment_method = 'bank_transfer'
             AND payment_due_at < now() AND channel = ANY($1::text[])
             AND id <> ALL($3::bigint[])
           ORDER BY payment_due_at, id
           LIMIT $2""",
        list(LAPSING_CHANNELS), limit, list(exclude_ids),
    )
    return [row["id"] for row in rows]


async def cancel_unpaid_order(db: asyncpg.Pool, order_id: int) -> bool:
    """Cancel one lapsed order in its own transaction, reversing its ledger rows and mailing the buyer.

    Returns False when the order is no longer a lapsed unpaid order, or another
    worker holds its lock (SKIP LOCKED), so several workers may run this at once.
    """
    async with db.acquire() as connection:
        async with connection.transaction():
            order = await connection.fetchrow(
                """SELECT o.*, u.email AS buyer_email FROM orders o LEFT JOIN users u ON u.id = o.buyer_id
                   WHERE o.id = $1 AND o.status = 'awaiting_payment' AND o.payment_method = 'bank_transfer'
                     AND o.payment_due_at < now() AND o.channel = ANY($2::text[])
                   FOR UPDATE OF o SKIP LOCKED""",
                order_id, list(LAPSING_CHANNELS),
            )
            if order is None:
                return False
            await cancel_order_in_transaction(connection, order)
            if order["buyer_email"]:
                mail = templates.order_cancelled_unpaid(await recipient_locale(connection, order["buyer_email"]),
                                                        order_no=order["order_no"], due_at=order["payment_due_at"])
                await outbox.enqueue(
                    connection, f"order:{order_id}:cancelled", order["buyer_email"], mail.subject, mail.body
                )
    log.info("order cancelled unpaid order_id=%s", order_id)
    return True


async def cancel_unpaid_orders(db: asyncpg.Pool, *, limit: int = 100) -> list[int]:
    """Cancel up to `limit` lapsed orders, one transaction each; return the ids cancelled now.

    An error on one order propagates; the worker's `UnpaidCanceller` instead skips
    such an order with a backoff and goes on with the others.
    """
    cancelled: list[int] = []
    for order_id in await due_unpaid_order_ids(db, limit=limit):
        if await cancel_unpaid_order(db, order_id):
            cancelled.append(order_id)
    return cancelled

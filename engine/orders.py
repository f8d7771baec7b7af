"""Bank-transfer (무통장입금) orders: staff confirm deposits; unpaid orders lapse at their due time.

Both run one transaction per order that changes its status, writes the money
ledger and audit rows that go with it and queues the buyer's mail, so a status
change and its side effects commit together or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg

from engine import outbox
from engine.actors import Actor
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


async def confirm_deposit(db: asyncpg.Pool, actor: Actor, order_id: int) -> None:
    """Mark a bank-transfer order paid after staff saw the deposit; audited, buyer mailed.

    Raises DomainError `forbidden` for non-staff, `order_not_found`, and
    `order_not_awaiting_payment` when the order is paid, cancelled or refunded.
    """
    require_staff(actor)
    async with db.acquire() as connection:
        async with connection.transaction():
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
            await connection.execute(
                "UPDATE orders SET status = 'paid', paid_at = now(), confirmed_by = $2 WHERE id = $1",
                order_id, actor.user_id,
            )
            await audit(connection, actor, "order.confirm_deposit", "order", order_id,
                        {"amount_won": order["amount_won"]})
            if order["buyer_email"]:
                mail = templates.deposit_confirmed(await recipient_locale(connection, order["buyer_email"]),
                                                   order_no=order["order_no"], amount_won=order["amount_won"])
                await outbox.enqueue(connection, f"order:{order_id}:paid", order["buyer_email"], mail.subject, mail.body)
    log.info("deposit confirmed order_id=%s actor_id=%s", order_id, actor.user_id)


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

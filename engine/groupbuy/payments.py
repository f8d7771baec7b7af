"""Paying for group buys: up-front payments and their holds, refunds, and lapsed campaign orders.

Up-front campaigns: after an accepted pledge the web layer calls
`record_up_front_payment` with the "at most" amount (units x the price at the
minimum total). A bank transfer (무통장입금) keeps the pledge's units reserved until
staff confirm the deposit (`confirm_pledge_deposit`) or the hold expires. Then
`expire_hold` releases the units in Redis with one script call, which appends one
`hold_expired` event to the ledger. Redis accepts a release only before the
deadline, so a release never moves the final price. Staff may still confirm a
deposit that arrived after its hold expired.
The close (`engine.groupbuy.closing`) turns paid payments into paid orders and
refunds the difference to the final price. An order the paid payments do not
cover carries them as `orders.prepaid_won` and awaits a bank transfer of the
remainder. When staff confirm that transfer (`engine.orders.confirm_deposit`), the
payments are settled into the order.

Each won a pledge payment receives, pays back in full or passes to an order is a
money-ledger row of the payment (`record_pledge_ledger_entries`), written in the
transaction that changes the payment's status.

After-success campaigns, and up-front orders the payments did not cover, await a
bank transfer until their due time; `cancel_unpaid_campaign_order` cancels a lapsed
one, reverses its sale and commission, refunds what its buyer paid up front and
leaves every other order and the campaign's price as they are.

Locks are taken in one order everywhere: the campaign row, then payments and orders,
so a confirmation, a cancellation and a close of one campaign never deadlock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg
from redis.exceptions import RedisError

from engine import outbox
from engine.actors import Actor
from engine.errors import DomainError
from engine.groupbuy.campaigns import load_campaign, terms_from_row
from engine.groupbuy.live import CampaignLive
from engine.groupbuy.rules import FINAL_STATUSES, SUCCEEDED, at_most_price_won
from engine.mail import groupbuy as mails
from engine.mail.i18n import recipient_locale
from engine.orders import audit, cancel_order_in_transaction, require_staff

log = logging.getLogger("jangteo.groupbuy.payments")

BANK_TRANSFER = "bank_transfer"
CARD = "card"
# Redis replies to a release that mean the units stay: the campaign is closing or
# closed (the close fixed the total), or the member no longer has a pledge.
NOT_RELEASED_CODES = frozenset({"campaign_closed", "not_open", "no_pledge"})


def source_key(campaign_id: int, user_id: int) -> str:
    """Return the `orders.source_key` of a member's order in a campaign: one order per pledge."""
    return f"campaign:{campaign_id}:user:{user_id}"


def release_key(payment_id: int) -> str:
    """Return the key that makes a hold's release happen once (the event's `client_id`)."""
    return f"hold:{payment_id}"


# -- money-ledger rows and refunds ---------------------------------------------------


async def record_pledge_ledger_entries(
    connection: asyncpg.Connection, payment_ids: Sequence[int], entry: str
) -> None:
    """Write one money-ledger row per payment: `entry` of the payment's full amount, for the campaign's supplier.

    `entry` is `payment` (received), `refund` (paid back in full) or `settlement`
    (applied to the member's order). A payment has at most one `payment` row and
    one `refund` or `settlement` row (unique indexes), so a second write raises
    UniqueViolationError. Call inside the transaction that changes the payments.
    """
    await connection.execute(
        """INSERT INTO money_ledger (pledge_payment_id, supplier_id, entry, amount_won)
           SELECT p.id, c.supplier_id, $2, p.amount_won
           FROM pledge_payments p JOIN campaigns c ON c.id = p.campaign_id
           WHERE p.id = ANY($1::bigint[])
           ORDER BY p.id""",
        list(payment_ids), entry,
    )


async def refund_payment_in_full(connection: asyncpg.Connection, payment: asyncpg.Record, reason: str) -> int:
    """Refund a paid payment in full and mark it refunded; return the won refunded (0 if done before).

    One refund row per payment (`pledge_payment:ID:refund`, unique), so a repeat
    refunds nothing, and the refund row comes with the payment's `refund` row in the
    money ledger. Call inside a transaction that locked the payment row.
    """
    inserted = await connection.fetchval(
        """INSERT INTO refunds (source_key, payment_id, user_id, amount_won, reason)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (source_key) DO NOTHING
           RETURNING id""",
        f"pledge_payment:{payment['id']}:refund", payment["id"], payment["user_id"], payment["amount_won"], reason,
    )
    await connection.execute("UPDATE pledge_payments SET status = 'refunded' WHERE id = $1", payment["id"])
    if inserted is None:
        return 0
    await record_pledge_ledger_entries(connection, [payment["id"]], "refund")
    return payment["amount_won"]


async def paid_payments_for_update(
    connection: asyncpg.Connection, campaign_id: int, user_id: int
) -> list[asyncpg.Record]:
    """Lock and return a member's paid payments of a campaign, oldest first.

    Call after locking the campaign row and then the member's order, the lock order
    of every payment writer.
    """
    return await connection.fetch(
        "SELECT * FROM pledge_payments WHERE campaign_id = $1 AND user_id = $2 AND status = 'paid'"
        " ORDER BY id FOR UPDATE",
        campaign_id, user_id,
    )


async def settle_into_order(connection: asyncpg.Connection, order_id: int, paid: Sequence[asyncpg.Record]) -> int:
    """Settle paid payments into an order and credit it with them; return the won settled.

    Each payment becomes `settled` on the order with a `settlement` row in the money
    ledger that moves its money to the order, and the order's `prepaid_won` becomes
    their sum. A payment settled before raises UniqueViolationError, because a
    payment leaves the ledger at most once. Call inside the transaction that marks
    the order paid, with the payment rows locked.
    """
    payment_ids = [payment["id"] for payment in paid]
    await connection.execute(
        "UPDATE pledge_payments SET status = 'settled', order_id = $2 WHERE id = ANY($1::bigint[])",
        payment_ids, order_id,
    )
    await record_pledge_ledger_entries(connection, payment_ids, "settlement")
    prepaid_won = sum(payment["amount_won"] for payment in paid)
    await connection.execute("UPDATE orders SET prepaid_won = $2 WHERE id = $1", order_id, prepaid_won)
    return prepaid_won


async def settle_payments(
    connection: asyncpg.Connection,
    campaign_id: int,
    user_id: int,
    order_id: int,
    payments: Sequence[asyncpg.Record],
    amount_won: int,
) -> int:
    """Apply a member's paid payments to their order and refund the excess; return the refund.

    The caller checked that the paid payments cover `amount_won` and marked the order
    paid. Paid payments are settled into the order (`settle_into_order`); payments
    still awaiting a deposit are no longer needed and expire. One refund row per order
    (`...:difference`, unique), recorded in the money ledger on the order as an
    `overpayment` row (received beyond the sale) and a `refund` row (paid back) of
    the same amount. The commission stays as the close fixed it on the sale, because
    the excess was never part of the sale.
    """
    paid = [p for p in payments if p["status"] == "paid"]
    refund_won = await settle_into_order(connection, order_id, paid) - amount_won
    await connection.execute(
        "UPDATE pledge_payments SET status = 'expired' WHERE id = ANY($1::bigint[])",
        [p["id"] for p in payments if p["status"] == "awaiting_deposit"],
    )
    if refund_won > 0:
        await connection.execute(
            """INSERT INTO refunds (source_key, order_id, payment_id, user_id, amount_won, reason)
               VALUES ($1, $2, $3, $4, $5, 'price_difference')""",
            f"{source_key(campaign_id, user_id)}:difference", order_id, paid[-1]["id"], user_id, refund_won,
        )
        await connection.execute(
            """INSERT INTO money_ledger (order_id, supplier_id, entry, amount_won, rate_bp)
               SELECT id, supplier_id, entry, $2, NULL
               FROM orders, unnest(ARRAY['overpayment', 'refund']) AS entry
               WHERE id = $1""",
            order_id, refund_won,
        )
    return refund_won


# -- recording and confirming up-front payments --------------------------------------


async def record_up_front_payment(
    db: asyncpg.Pool,
    campaign_id: int,
    user_id: int,
    units: int,
    amount_won: int,
    *,
    method: str = BANK_TRANSFER,
    depositor_name: str | None = None,
    pledge_seq: int | None = None,
) -> int:
    """Record the up-front payment of an accepted pledge of `units`; return the payment id.

    `amount_won` must be `units` x the "at most" price (the tier at the minimum
    total). A bank transfer awaits its deposit, keeping the units reserved until
    `hold_s` from now (PostgreSQL's clock), and its member is mailed the account and
    the due time. A card payment, which the caller has already confirmed, is paid at once.
    `pledge_seq` is the receipt's `seq` of the pledge that added the units. At most
    one payment is recorded per pledge (a unique key): when the pledge has one
    already, its id is returned and nothing is written or mailed, so retries of the
    pledge, concurrent ones too, record it once.
    Raises DomainError `campaign_not_found`, `not_up_front`, `campaign_closed`
    (the close already ran: the member gets an order to pay instead),
    `invalid_units`, `invalid_payment_method` or `payment_amount_mismatch`.
    """
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise DomainError("invalid_units", f"an up-front payment covers at least 1 unit, got {units!r:.40}")
    if method not in (BANK_TRANSFER, CARD):
        raise DomainError("invalid_payment_method", f"payment method must be {BANK_TRANSFER} or {CARD}, got {method!r:.40}")
    async with db.acquire() as connection:
        async with connection.transaction():
            campaign = await connection.fetchrow("SELECT * FROM campaigns WHERE id = $1 FOR SHARE", campaign_id)
            if campaign is None:
                raise DomainError("campaign_not_found", f"campaign {campaign_id} does not exist", campaign_id=campaign_id)
            if campaign["payment_timing"] != "up_front":
                raise DomainError("not_up_front", f"campaign {campaign_id} is paid after success, not up front",
                                  campaign_id=campaign_id)
            if campaign["status"] in FINAL_STATUSES:
                raise DomainError("campaign_closed", f"campaign {campaign_id} is {campaign['status']}",
                                  campaign_id=campaign_id, status=campaign["status"])
            expected_won = units * at_most_price_won(terms_from_row(campaign))
            if amount_won != expected_won:
                raise DomainError(
                    "payment_amount_mismatch",
                    f"an up-front payment for {units} unit(s) is {expected_won} won, got {amount_won!r:.40}",
                    expected_won=expected_won,
                )
            paid = method == CARD
            payment = await connection.fetchrow(
                """INSERT INTO pledge_payments (campaign_id, user_id, units, amount_won, method, status,
                                                depositor_name, hold_expires_at, paid_at, pledge_seq)
                   VALUES ($1, $2, $3, $4, $5, $6, $7,
                           CASE WHEN $8 THEN NULL ELSE now() + make_interval(secs => $9) END,
                           CASE WHEN $8 THEN now() END, $10)
                   ON CONFLICT (campaign_id, pledge_seq) DO NOTHING
                   RETURNING id, hold_expires_at""",
                campaign_id, user_id, units, amount_won, method, "paid" if paid else "awaiting_deposit",
                depositor_name, paid, campaign["hold_s"], pledge_seq,
            )
            if payment is None:
                # The pledge has its payment already. An insert of it that had not committed
                # yet made this insert wait for the commit, so this query finds the row too.
                recorded_id = await connection.fetchval(
                    "SELECT id FROM pledge_payments WHERE campaign_id = $1 AND pledge_seq = $2",
                    campaign_id, pledge_seq,
                )
                log.info("up-front payment already recorded payment_id=%s campaign_id=%s user_id=%s pledge_seq=%s",
                         recorded_id, campaign_id, user_id, pledge_seq)
                return recorded_id
            if paid:
                await record_pledge_ledger_entries(connection, [payment["id"]], "payment")
            email = await connection.fetchval("SELECT email FROM users WHERE id = $1", user_id)
            if not paid and email:
                mail = mails.up_front_payment_requested(
                    await recipient_locale(connection, email),
                    campaign_id=campaign_id, title=campaign["title"], units=units, amount_won=amount_won,
                    hold_expires_at=payment["hold_expires_at"],
                )
                await outbox.enqueue(connection, f"pledge_payment:{payment['id']}:requested", email,
                                     mail.subject, mail.body)
    log.info("up-front payment recorded payment_id=%s campaign_id=%s user_id=%s units=%s amount_won=%s method=%s"
             " pledge_seq=%s", payment["id"], campaign_id, user_id, units, amount_won, method, pledge_seq)
    return payment["id"]


async def confirm_pledge_deposit(db: asyncpg.Pool, payment_id: int, staff_actor: Actor) -> None:
    """Mark an up-front bank transfer paid after staff saw the deposit; money-ledger row, audit, member mailed.

    Before the close the payment keeps its units held until the close. After a
    successful close it is applied to the member's order, which becomes paid once
    the member's paid payments cover it (the excess is refunded). A deposit for a
    campaign that failed or an order that was cancelled or paid is refunded in full at once.

    A deposit that arrived after its hold expired is recorded the same way, except
    that a payment whose units the expiry released is refunded in full at once,
    because its units are no longer reserved. Raises DomainError `forbidden` for
    non-staff, `payment_not_found`, and `payment_not_awaiting_deposit` when the
    payment was paid, settled or refunded already.
    """
    require_staff(staff_actor)
    campaign_id = await db.fetchval("SELECT campaign_id FROM pledge_payments WHERE id = $1", payment_id)
    if campaign_id is None:
        raise DomainError("payment_not_found", f"payment {payment_id} does not exist", payment_id=payment_id)
    async with db.acquire() as connection:
        async with connection.transaction():
            campaign = await connection.fetchrow(
                "SELECT * FROM campaigns WHERE id = $1 FOR NO KEY UPDATE", campaign_id
            )
            payment = await connection.fetchrow(
                "SELECT * FROM pledge_payments WHERE id = $1 FOR UPDATE", payment_id
            )
            if payment["status"] not in ("awaiting_deposit", "expired"):
                raise DomainError(
                    "payment_not_awaiting_deposit",
                    f"payment {payment_id} is {payment['status']}; only a payment awaiting its deposit,"
                    " or one whose hold expired unpaid, can be confirmed",
                    payment_id=payment_id, status=payment["status"],
                )
            late = payment["status"] == "expired"
            payment = await connection.fetchrow(
                "UPDATE pledge_payments SET status = 'paid', paid_at = now(), confirmed_by = $2"
                " WHERE id = $1 RETURNING *",
                payment_id, staff_actor.user_id,
            )
            await record_pledge_ledger_entries(connection, [payment_id], "payment")
            if late and await _units_released(connection, payment):
                await refund_payment_in_full(connection, payment, "late_deposit")
                outcome = "refunded"
            else:
                outcome = await _apply_after_close(connection, campaign, payment)
            await audit(connection, staff_actor, "pledge_payment.confirm_deposit", "pledge_payment", payment_id,
                        {"campaign_id": campaign_id, "amount_won": payment["amount_won"], "late": late,
                         "outcome": outcome})
            email = await connection.fetchval("SELECT email FROM users WHERE id = $1", payment["user_id"])
            if email:
                mail = mails.up_front_deposit_confirmed(
                    await recipient_locale(connection, email),
                    campaign_id=campaign_id, title=campaign["title"], units=payment["units"],
                    amount_won=payment["amount_won"], refunded=outcome == "refunded",
                )
                await outbox.enqueue(connection, f"pledge_payment:{payment_id}:paid", email, mail.subject, mail.body)
    log.info("pledge deposit confirmed payment_id=%s campaign_id=%s actor_id=%s late=%s outcome=%s",
             payment_id, campaign_id, staff_actor.user_id, late, outcome)


async def _units_released(connection: asyncpg.Connection, payment: asyncpg.Record) -> bool:
    """Return whether the pledge ledger stores the release of an expired payment's units.

    The ledger consumer stores a release shortly after Redis made it. A deposit
    confirmed in between is held like any paid payment, and the close then refunds it
    or applies it to the member's order, so either way the money is accounted for.
    """
    return bool(await connection.fetchval(
        "SELECT 1 FROM pledge_events WHERE campaign_id = $1 AND user_id = $2 AND client_id = $3",
        payment["campaign_id"], payment["user_id"], release_key(payment["id"]),
    ))


async def _apply_after_close(connection: asyncpg.Connection, campaign: asyncpg.Record, payment: asyncpg.Record) -> str:
    """Apply a payment confirmed after the close; return what happened (for the log line)."""
    if campaign["status"] not in FINAL_STATUSES:
        return "held"
    order = None
    if campaign["status"] == SUCCEEDED:
        order = await connection.fetchrow(
            "SELECT * FROM orders WHERE source_key = $1 FOR UPDATE",
            source_key(campaign["id"], payment["user_id"]),
        )
    if order is None or order["status"] != "awaiting_payment":
        # Nothing is left to pay for: the campaign failed, or the order was cancelled or paid.
        await refund_payment_in_full(connection, payment, "nothing_to_pay")
        return "refunded"
    payments = await connection.fetch(
        "SELECT * FROM pledge_payments WHERE campaign_id = $1 AND user_id = $2 ORDER BY id FOR UPDATE",
        campaign["id"], payment["user_id"],
    )
    paid_won = sum(p["amount_won"] for p in payments if p["status"] == "paid")
    if paid_won < order["amount_won"]:
        # The order still awaits the remainder, which staff confirm with `engine.orders.confirm_deposit`.
        await connection.execute("UPDATE orders SET prepaid_won = $2 WHERE id = $1", order["id"], paid_won)
        return "partly_paid"
    await connection.execute("UPDATE orders SET status = 'paid', paid_at = now() WHERE id = $1", order["id"])
    await settle_payments(connection, campaign["id"], payment["user_id"], order["id"], payments, order["amount_won"])
    return "order_paid"


# -- expiring bank-transfer holds -------------------------------------------------


async def due_hold_ids(db: asyncpg.Pool, *, limit: int = 100, exclude_ids: Sequence[int] = ()) -> list[int]:
    """Return ids of bank-transfer payments still awaiting their deposit after their hold (PostgreSQL's clock)."""
    rows = await db.fetch(
        """SELECT id FROM pledge_payments
           WHERE status = 'awaiting_deposit' AND hold_expires_at < now() AND id <> ALL($2::bigint[])
           ORDER BY hold_expires_at, id
           LIMIT $1""",
        limit, list(exclude_ids),
    )
    return [row["id"] for row in rows]


async def expire_hold(db: asyncpg.Pool, live: CampaignLive, payment_id: int) -> bool:
    """Expire one lapsed hold: release its units in Redis (before the deadline only) and mark it expired.

    The release is one script call keyed by the payment, so a releaser that died
    after Redis released but before this transaction committed releases nothing the
    second time. After the deadline Redis rejects the release, so the units stay in
    the total the close fixed, and the member's order lapses at its own due time.
    Returns False when the payment is no longer a lapsed hold or another worker holds
    its lock. Redis errors propagate and leave the payment as it was.
    """
    async with db.acquire() as connection:
        async with connection.transaction():
            payment = await connection.fetchrow(
                """SELECT pp.*, c.title, c.status AS campaign_status FROM pledge_payments pp
                   JOIN campaigns c ON c.id = pp.campaign_id
                   WHERE pp.id = $1 AND pp.status = 'awaiting_deposit' AND pp.hold_expires_at < now()
                   FOR UPDATE OF pp SKIP LOCKED""",
                payment_id,
            )
            if payment is None:
                return False
            released = False
            if payment["campaign_status"] not in FINAL_STATUSES:
                released = await _release_units(db, connection, live, payment)
            await connection.execute("UPDATE pledge_payments SET status = 'expired' WHERE id = $1", payment_id)
            email = await connection.fetchval("SELECT email FROM users WHERE id = $1", payment["user_id"])
            if released and email:
                mail = mails.hold_expired(
                    await recipient_locale(connection, email),
                    campaign_id=payment["campaign_id"], title=payment["title"], units=payment["units"],
                    hold_expires_at=payment["hold_expires_at"],
                )
                await outbox.enqueue(connection, f"pledge_payment:{payment_id}:expired", email, mail.subject, mail.body)
    log.info("hold expired payment_id=%s campaign_id=%s user_id=%s units=%s released=%s",
             payment_id, payment["campaign_id"], payment["user_id"], payment["units"], released)
    return True


async def _release_units(
    db: asyncpg.Pool, connection: asyncpg.Connection, live: CampaignLive, payment: asyncpg.Record
) -> bool:
    campaign_id, key = payment["campaign_id"], release_key(payment["id"])
    # A release stored in the ledger already happened, even if Redis was rebuilt since
    # and no longer has the key that makes the script skip it.
    stored = await connection.fetchval(
        "SELECT 1 FROM pledge_events WHERE campaign_id = $1 AND user_id = $2 AND client_id = $3",
        campaign_id, payment["user_id"], key,
    )
    if stored:
        return True
    reply = await live.release(campaign_id, payment["user_id"], payment["units"], release_key=key)
    if reply.get("code") == "campaign_not_loaded":
        await load_campaign(db, live, campaign_id)
        reply = await live.release(campaign_id, payment["user_id"], payment["units"], release_key=key)
    if reply.get("ok"):
        return True
    if reply.get("code") in NOT_RELEASED_CODES:
        return False
    raise RedisError(f"release of payment {payment['id']} on campaign {campaign_id} failed: {reply.get('code')}")


# -- lapsed campaign orders ----------------------------------------------------------


async def due_unpaid_campaign_order_ids(
    db: asyncpg.Pool, *, limit: int = 100, exclude_ids: Sequence[int] = ()
) -> list[int]:
    """Return ids of group-buy orders still unpaid after their due time (PostgreSQL's clock)."""
    rows = await db.fetch(
        """SELECT id FROM orders
           WHERE channel = 'groupbuy' AND status = 'awaiting_payment' AND payment_method = 'bank_transfer'
             AND payment_due_at < now() AND id <> ALL($2::bigint[])
           ORDER BY payment_due_at, id
           LIMIT $1""",
        limit, list(exclude_ids),
    )
    return [row["id"] for row in rows]


async def cancel_unpaid_campaign_order(db: asyncpg.Pool, order_id: int) -> bool:
    """Cancel one lapsed group-buy order; the campaign's price and every other order stay as they are.

    Reverses the order's sale and commission, refunds in full what its buyer paid up
    front, expires their unconfirmed payments and mails them. Returns False when the order is
    no longer a lapsed unpaid order.
    """
    campaign_id = await db.fetchval("SELECT campaign_id FROM orders WHERE id = $1", order_id)
    if campaign_id is None:
        return False
    async with db.acquire() as connection:
        async with connection.transaction():
            campaign = await connection.fetchrow(
                "SELECT id, title FROM campaigns WHERE id = $1 FOR NO KEY UPDATE", campaign_id
            )
            order = await connection.fetchrow(
                """SELECT o.*, u.email AS buyer_email FROM orders o LEFT JOIN users u ON u.id = o.buyer_id
                   WHERE o.id = $1 AND o.channel = 'groupbuy' AND o.status = 'awaiting_payment'
                     AND o.payment_method = 'bank_transfer' AND o.payment_due_at < now()
                   FOR UPDATE OF o""",
                order_id,
            )
            if order is None:
                return False
            await cancel_order_in_transaction(connection, order)
            payments = await connection.fetch(
                """SELECT * FROM pledge_payments WHERE campaign_id = $1 AND user_id = $2
                     AND status IN ('paid', 'awaiting_deposit') ORDER BY id FOR UPDATE""",
                campaign_id, order["buyer_id"],
            )
            refund_won = 0
            for payment in payments:
                if payment["status"] == "paid":
                    refund_won += await refund_payment_in_full(connection, payment, "order_cancelled")
                else:
                    await connection.execute(
                        "UPDATE pledge_payments SET status = 'expired' WHERE id = $1", payment["id"]
                    )
            if order["buyer_email"]:
                mail = mails.order_cancelled_unpaid(
                    await recipient_locale(connection, order["buyer_email"]),
                    campaign_id=campaign_id, title=campaign["title"], order_no=order["order_no"],
                    due_at=order["payment_due_at"], refund_won=refund_won,
                )
                await outbox.enqueue(connection, f"order:{order_id}:cancelled", order["buyer_email"],
                                     mail.subject, mail.body)
    log.info("campaign order cancelled unpaid order_id=%s campaign_id=%s refund_won=%s",
             order_id, campaign_id, refund_won)
    return True

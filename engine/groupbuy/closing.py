"""Closing group-buy campaigns exactly once: Redis stops pledging, PostgreSQL records the result.

A close runs in the three steps of a lot's close (`engine.auction.closing`), each
safe to repeat:
1. `CampaignLive.begin_close` moves a due campaign (deadline passed by Redis time, or
   sold out with "close when sold out" on) from open to closing and appends a
   `close` event carrying the campaign's last sequence number (the final seq).
2. `finalize_campaign` waits until `pledge_events` holds every sequence number
   1..final, then in one PostgreSQL transaction locks the campaign row, returns at
   once if the campaign is already final, and otherwise records the result:
   - succeeded (the committed total, and the number of buyers if set, reached the
     minimum): one order per pledge at the one final unit price, the tier reached
     by the total in the close event, with its money ledger rows; up-front payments
     that cover an order make it paid and the difference is refunded;
   - failed: nothing is ordered, every paid up-front payment is refunded in full;
   and queues the participants' and the supplier's mails.
3. `settle_live` copies the final status to Redis, which takes the campaign off the
   deadlines set.

A staff cancel (`engine.groupbuy.staff.cancel_campaign`) replaces step 1: Redis
moves the open campaign to cancelled with one `cancel` event and keeps it due, and
Redis runs only one of the cancel and the close, whichever comes first. Steps 2 and
3 then settle it like a failed close, with the cancel event as the final event:
the campaign becomes cancelled, every pledge is released, every paid up-front
payment is refunded in full, payments awaiting a deposit expire, and each member
with units or such a payment is mailed once. The canceller settles it itself, and
the closer settles it when the canceller died or gave up waiting for the ledger.

Two closers racing serialize on the row lock, and the second only settles. A closer
killed between steps 2 and 3 leaves the campaign closing in Redis and in the
deadlines set, so the next round settles it. `orders.source_key` and
`refunds.source_key` are unique, the last guard against a second order or refund.

The price is fixed by the close event: releases of unpaid holds, refunds and
cancelled orders after it never change it. A campaign whose ledger misses a
sequence number, or that a client was acknowledged beyond, is held for staff review.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from engine import commission, outbox
from engine.auction.closing import GapWatch, LedgerCheck
from engine.auction.ledger import ACKNOWLEDGED_MISSING
from engine.config import Settings
from engine.groupbuy.campaigns import load_campaign, reload_missing_campaign_shards, terms_from_row
from engine.groupbuy.ledger import hold_campaign
from engine.groupbuy.live import CampaignLive
from engine.groupbuy.payments import refund_payment_in_full, settle_payments, source_key
from engine.groupbuy.rules import (
    CANCELLED,
    FAILED,
    FINAL_STATUSES,
    HELD,
    SUCCEEDED,
    CampaignState,
    minimum_met,
    unit_price_for,
)
from engine.mail import groupbuy as mails
from engine.mail.i18n import recipient_locale
from engine.mail.templates import KST, Mail

log = logging.getLogger("jangteo.groupbuy.closing")

WAITING = "waiting"  # the ledger has not caught up yet; the next round tries again

GAP_REASON = "ledger gap"
ACK_REASON = ACKNOWLEDGED_MISSING
AHEAD_REASON = "ledger ahead of live state"
NO_CLOSE_REASON = "final event is neither a close nor a cancel"
TOTALS_REASON = "ledger totals disagree with pledges"


@dataclass(frozen=True)
class CampaignCloseOutcome:
    campaign_id: int
    status: str  # succeeded, failed, held, cancelled or waiting
    final_unit_price_won: int | None = None
    orders: int = 0


# -- the ledger ----------------------------------------------------------------------


async def check_campaign_ledger(connection: asyncpg.Connection, campaign_id: int, final_seq: int) -> LedgerCheck:
    row = await connection.fetchrow(
        """SELECT count(*) FILTER (WHERE seq <= $2) AS stored, coalesce(max(seq), 0) AS max_seq,
                  (SELECT seq FROM campaign_ack_marks WHERE campaign_id = $1) AS acknowledged_seq
           FROM pledge_events WHERE campaign_id = $1""",
        campaign_id, final_seq,
    )
    return LedgerCheck(
        complete=row["stored"] == final_seq,
        stored=row["stored"],
        max_seq=row["max_seq"],
        acknowledged_seq=row["acknowledged_seq"] or 0,
    )


def replay_pledges(events: list[asyncpg.Record]) -> dict[int, int]:
    """Return each member's units (members with units > 0) after `events`, in seq order."""
    pledges: dict[int, int] = {}
    for event in events:
        if event["kind"] not in ("pledge", "hold_expired") or event["user_id"] is None:
            continue
        units = event["units"] or 0
        if units:
            pledges[event["user_id"]] = units
        else:
            pledges.pop(event["user_id"], None)
    return pledges


# -- finalizing ----------------------------------------------------------------------

_LOCK_CAMPAIGN = """
SELECT c.*, p.kind AS product_kind, p.is_local, s.email AS supplier_email
FROM campaigns c
JOIN products p ON p.id = c.product_id
JOIN suppliers s ON s.id = c.supplier_id
WHERE c.id = $1
FOR UPDATE OF c
"""


async def finalize_campaign(
    db: asyncpg.Pool, campaign_id: int, final_seq: int, *, hold_gap: bool = False
) -> CampaignCloseOutcome:
    """Record the result of a campaign that Redis closed or cancelled at `final_seq`, exactly once.

    Returns `waiting` while the ledger misses a sequence number, unless `hold_gap` is
    set, which holds the campaign instead. A campaign already final returns its status.
    """
    async with db.acquire() as connection:
        async with connection.transaction():
            campaign = await connection.fetchrow(_LOCK_CAMPAIGN, campaign_id)
            if campaign is None:
                raise LookupError(f"campaign {campaign_id} is not in PostgreSQL; cannot finalize it")
            if campaign["status"] in FINAL_STATUSES:
                return CampaignCloseOutcome(campaign_id, campaign["status"], campaign["final_unit_price_won"])

            ledger = await check_campaign_ledger(connection, campaign_id, final_seq)
            reason = None
            if ledger.acknowledged_seq > final_seq:
                reason = ACK_REASON
            elif ledger.max_seq > final_seq:
                reason = AHEAD_REASON
            elif not ledger.complete:
                if not hold_gap:
                    return CampaignCloseOutcome(campaign_id, WAITING)
                reason = GAP_REASON
            if reason is None:
                return await _record_result(connection, campaign, final_seq)
            await _hold(connection, campaign_id, final_seq, reason)
            return CampaignCloseOutcome(campaign_id, HELD)


async def _hold(connection: asyncpg.Connection, campaign_id: int, final_seq: int, reason: str) -> None:
    await hold_campaign(connection, campaign_id, reason)
    await connection.execute("UPDATE campaigns SET final_seq = $2 WHERE id = $1", campaign_id, final_seq)


async def _record_result(
    connection: asyncpg.Connection, campaign: asyncpg.Record, final_seq: int
) -> CampaignCloseOutcome:
    campaign_id = campaign["id"]
    events = await connection.fetch(
        "SELECT * FROM pledge_events WHERE campaign_id = $1 AND seq <= $2 ORDER BY seq", campaign_id, final_seq
    )
    final = events[-1]
    if final["kind"] not in ("close", "cancel"):
        await _hold(connection, campaign_id, final_seq, NO_CLOSE_REASON)
        return CampaignCloseOutcome(campaign_id, HELD)
    pledges = replay_pledges(events)
    committed = final["committed_units"]
    participants = final["participants"]
    if sum(pledges.values()) != committed or len(pledges) != participants:
        await _hold(connection, campaign_id, final_seq, TOTALS_REASON)
        return CampaignCloseOutcome(campaign_id, HELD)

    terms = terms_from_row(campaign)
    state = CampaignState(status="closing", seq=final_seq, committed_units=committed,
                          participants=participants, pledges=pledges)
    closed_at = final["server_at"]
    # Locked here, after the campaign row, in the order every payment writer uses.
    payments = await connection.fetch(
        "SELECT * FROM pledge_payments WHERE campaign_id = $1 ORDER BY id FOR UPDATE", campaign_id
    )
    by_user: dict[int, list[asyncpg.Record]] = {}
    for payment in payments:
        by_user.setdefault(payment["user_id"], []).append(payment)
    emails = {
        row["id"]: row["email"]
        for row in await connection.fetch(
            "SELECT id, email FROM users WHERE id = ANY($1::bigint[])", sorted(set(pledges) | set(by_user))
        )
    }

    if final["kind"] == "cancel":
        price_won = None
        notice = await _record_cancel(connection, campaign, final_seq, committed, pledges, by_user, emails)
        outcome = CampaignCloseOutcome(campaign_id, CANCELLED)
    elif minimum_met(terms, state):
        price_won = unit_price_for(terms, committed)
        await connection.execute(
            """UPDATE campaigns SET status = 'succeeded', final_unit_price_won = $2, final_units = $3,
                   final_seq = $4, closed_at = now() WHERE id = $1""",
            campaign_id, price_won, committed, final_seq,
        )
        for user_id in sorted(pledges):
            await _create_order(
                connection, campaign, user_id=user_id, units=pledges[user_id], price_won=price_won,
                closed_at=closed_at, payments=by_user.pop(user_id, []), email=emails.get(user_id),
            )
        notice = mails.supplier_succeeded(
            await recipient_locale(connection, campaign["supplier_email"]), campaign_id=campaign_id, title=campaign["title"], total_units=committed,
            participants=participants, unit_price_won=price_won,
        )
        outcome = CampaignCloseOutcome(campaign_id, SUCCEEDED, price_won, len(pledges))
    else:
        price_won = None
        await connection.execute(
            """UPDATE campaigns SET status = 'failed', final_units = $2, final_seq = $3, closed_at = now()
               WHERE id = $1""",
            campaign_id, committed, final_seq,
        )
        for user_id in sorted(pledges):
            refund_won = await _refund_all(connection, campaign_id, by_user.pop(user_id, []), "campaign_failed")
            email = emails.get(user_id)
            if email:
                mail = mails.failed(await recipient_locale(connection, email), campaign_id=campaign_id,
                                    title=campaign["title"], units=pledges[user_id], refund_won=refund_won)
                await outbox.enqueue(connection, f"campaign:{campaign_id}:failed", email, mail.subject, mail.body)
        notice = mails.supplier_failed(
            await recipient_locale(connection, campaign["supplier_email"]), campaign_id=campaign_id, title=campaign["title"], total_units=committed,
            min_total_units=campaign["min_total_units"],
        )
        outcome = CampaignCloseOutcome(campaign_id, FAILED)
    # Payments of members with no units left at the close (they cancelled or reduced
    # to 0 after paying) are refunded whatever the result. A cancel took them all already.
    for user_payments in by_user.values():
        await _refund_all(connection, campaign_id, user_payments, "pledge_cancelled")
    await outbox.enqueue(
        connection, f"campaign:{campaign_id}:supplier", campaign["supplier_email"], notice.subject, notice.body
    )
    log.info(
        "campaign closed campaign_id=%s status=%s final_seq=%s committed_units=%s participants=%s"
        " unit_price_won=%s orders=%s",
        campaign_id, outcome.status, final_seq, committed, participants, price_won, outcome.orders,
    )
    return outcome


async def _record_cancel(
    connection: asyncpg.Connection,
    campaign: asyncpg.Record,
    final_seq: int,
    committed: int,
    pledges: dict[int, int],
    by_user: dict[int, list[asyncpg.Record]],
    emails: dict[int, str],
) -> Mail:
    """Record a staff cancel: release every pledge and take every payment out of `by_user`.

    Paid payments are refunded in full and payments awaiting a deposit expire. Each
    member with units at the cancel, or with a payment refunded or expired now, gets
    one mail. Returns the supplier's mail.
    """
    campaign_id = campaign["id"]
    await connection.execute(
        """UPDATE campaigns SET status = 'cancelled', final_units = $2, final_seq = $3, closed_at = now()
           WHERE id = $1""",
        campaign_id, committed, final_seq,
    )
    for user_id in sorted(set(pledges) | set(by_user)):
        payments = by_user.pop(user_id, [])
        unpaid_won = sum(p["amount_won"] for p in payments if p["status"] == "awaiting_deposit")
        refund_won = await _refund_all(connection, campaign_id, payments, "campaign_cancelled")
        units = pledges.get(user_id, 0)
        email = emails.get(user_id)
        if email and (units or refund_won or unpaid_won):
            mail = mails.cancelled(
                await recipient_locale(connection, email), campaign_id=campaign_id, title=campaign["title"], reason=campaign["cancel_reason"], units=units,
                refund_won=refund_won, unpaid_won=unpaid_won,
            )
            await outbox.enqueue(connection, f"campaign:{campaign_id}:cancelled", email, mail.subject, mail.body)
    return mails.supplier_cancelled(
        await recipient_locale(connection, campaign["supplier_email"]), campaign_id=campaign_id, title=campaign["title"], reason=campaign["cancel_reason"], total_units=committed
    )


async def _refund_all(
    connection: asyncpg.Connection, campaign_id: int, payments: list[asyncpg.Record], reason: str
) -> int:
    """Refund every paid payment in full and expire the unpaid ones; return the won refunded."""
    refunded = 0
    for payment in payments:
        if payment["status"] == "paid":
            refunded += await refund_payment_in_full(connection, payment, reason)
        elif payment["status"] == "awaiting_deposit":
            await connection.execute("UPDATE pledge_payments SET status = 'expired' WHERE id = $1", payment["id"])
    return refunded


async def _create_order(
    connection: asyncpg.Connection,
    campaign: asyncpg.Record,
    *,
    user_id: int,
    units: int,
    price_won: int,
    closed_at: datetime,
    payments: list[asyncpg.Record],
    email: str | None,
) -> None:
    """Insert one member's order at the final price with its money ledger rows and mail.

    Up-front payments confirmed before the close that cover the amount make the order
    paid, and what they exceed it by is refunded. Otherwise the order awaits a bank
    transfer of the remainder (the amount minus `prepaid_won`, the paid payments)
    until `payment_due_s` after the close, and payments still awaiting a deposit stay
    open: `payments.confirm_pledge_deposit` applies them to the order.
    """
    campaign_id = campaign["id"]
    amount_won = units * price_won
    paid_won = sum(p["amount_won"] for p in payments if p["status"] == "paid")
    covered = campaign["payment_timing"] == "up_front" and paid_won >= amount_won
    order_id = await connection.fetchval("SELECT nextval(pg_get_serial_sequence('orders', 'id'))")
    order_no = f"G{closed_at.astimezone(KST):%Y%m%d}{order_id}"
    due_at = closed_at + timedelta(seconds=campaign["payment_due_s"])
    await connection.execute(
        """INSERT INTO orders (id, order_no, channel, buyer_id, supplier_id, amount_won, status, payment_method,
                               payment_due_at, paid_at, source_key, campaign_id, units, unit_price_won, prepaid_won)
           VALUES ($1, $2, 'groupbuy', $3, $4, $5, $6, 'bank_transfer', $7,
                   CASE WHEN $6 = 'paid' THEN now() END, $8, $9, $10, $11, $12)""",
        order_id, order_no, user_id, campaign["supplier_id"], amount_won,
        "paid" if covered else "awaiting_payment", due_at, source_key(campaign_id, user_id),
        campaign_id, units, price_won, paid_won,
    )
    await commission.record_sale_entries(
        connection, order_id=order_id, supplier_id=campaign["supplier_id"], amount_won=amount_won,
        is_local=campaign["is_local"], kind=campaign["product_kind"], sold_at=closed_at,
    )
    locale = await recipient_locale(connection, email)
    if covered:
        refund_won = await settle_payments(connection, campaign_id, user_id, order_id, payments, amount_won)
        mail = mails.succeeded_paid(
            locale, campaign_id=campaign_id, title=campaign["title"], order_no=order_no, units=units,
            unit_price_won=price_won, amount_won=amount_won, paid_won=paid_won, refund_won=refund_won,
        )
    else:
        mail = mails.succeeded_awaiting_payment(
            locale, campaign_id=campaign_id, title=campaign["title"], order_no=order_no, units=units,
            unit_price_won=price_won, amount_won=amount_won, paid_won=paid_won, due_at=due_at,
        )
    if email:
        await outbox.enqueue(connection, f"campaign:{campaign_id}:succeeded", email, mail.subject, mail.body)


# -- settling Redis and the closer ---------------------------------------------------


async def settle_live(live: CampaignLive, campaign_id: int, status: str) -> bool:
    """Copy a final status to Redis (repeatable); False when Redis has another state."""
    reply = await live.admin(campaign_id, "settle", status)
    if not reply.get("ok"):
        log.warning("campaign settle skipped campaign_id=%s status=%s code=%s live_status=%s",
                    campaign_id, status, reply.get("code"), reply.get("status"))
        return False
    return True


async def close_campaign(
    db: asyncpg.Pool, live: CampaignLive, settings: Settings, campaign_id: int, *, gaps: GapWatch | None = None
) -> CampaignCloseOutcome:
    """Close one due campaign: stop it in Redis, record it in PostgreSQL, settle Redis.

    A campaign staff cancelled in Redis is due as well, and its cancel is recorded the same way.
    """
    reply = await live.begin_close(campaign_id)
    if reply.get("ok"):
        final_seq = int(reply["state"]["seq"])
    elif reply.get("code") == "not_open" and reply.get("status") == CANCELLED:
        final_seq = int(reply["seq"])
    else:
        return await _close_rejected(db, live, campaign_id, reply)
    hold_gap = await _gap_is_final(live, settings, campaign_id, gaps or GapWatch())
    outcome = await finalize_campaign(db, campaign_id, final_seq, hold_gap=hold_gap)
    if outcome.status == WAITING:
        return outcome
    if gaps is not None:
        gaps.forget(campaign_id)
    await settle_live(live, campaign_id, outcome.status)
    return outcome


async def _gap_is_final(live: CampaignLive, settings: Settings, campaign_id: int, gaps: GapWatch) -> bool:
    """Whether a ledger gap, if there is one, should hold the campaign now.

    An empty shard stream means the consumer stored everything Redis still has, so a
    gap then can never fill. Otherwise this process must have seen the campaign
    waiting for `ledger_gap_grace_s`.
    """
    stream = live.keys.campaign_ledger_stream_for(campaign_id)
    if await live.redis.xlen(stream) == 0:
        return True
    return gaps.observed_for_s(campaign_id) >= settings.ledger_gap_grace_s


async def _close_rejected(
    db: asyncpg.Pool, live: CampaignLive, campaign_id: int, reply: Mapping[str, Any]
) -> CampaignCloseOutcome:
    code = reply.get("code")
    if code == "campaign_not_loaded":
        # The deadlines set names a campaign whose state is gone: rebuild it from the record.
        await load_campaign(db, live, campaign_id)
        return CampaignCloseOutcome(campaign_id, WAITING)
    if code == "not_open":
        # Redis has already settled this campaign; the script took it off the deadlines set.
        return CampaignCloseOutcome(campaign_id, reply.get("status") or "")
    return CampaignCloseOutcome(campaign_id, WAITING)


async def close_due_campaigns(
    db: asyncpg.Pool, live: CampaignLive, settings: Settings, *, gaps: GapWatch | None = None, limit: int = 100
) -> list[CampaignCloseOutcome]:
    """Close every campaign that is due by Redis time, shard by shard.

    Safe to run in several processes at once. A campaign whose ledger is behind
    stays due and is tried again next round. Errors propagate; the worker's
    `CampaignCloser` instead handles each campaign on its own.
    """
    outcomes: list[CampaignCloseOutcome] = []
    for shard in range(live.keys.shards):
        for campaign_id in await live.due_campaigns(shard, limit=limit):
            outcomes.append(await close_campaign(db, live, settings, campaign_id, gaps=gaps))
    return outcomes


async def open_started_campaigns(db: asyncpg.Pool) -> int:
    """Mark scheduled campaigns whose start has passed as open (display only; Redis judges by time)."""
    result = await db.execute("UPDATE campaigns SET status = 'open' WHERE status = 'scheduled' AND start_at <= now()")
    return int(result.split()[-1])


async def keep_campaigns_loaded(db: asyncpg.Pool, live: CampaignLive) -> int:
    """Reload every shard Redis lost, then relabel started campaigns; return campaigns loaded."""
    loaded = await reload_missing_campaign_shards(db, live)
    await open_started_campaigns(db)
    return loaded

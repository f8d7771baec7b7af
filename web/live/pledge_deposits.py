"""Up-front bank transfers (무통장입금) of group-buy pledges as staff see them: the list, and confirming one.

The staff page and the JSON API both read here. Staff see the member's masked
name and email, because they match a deposit to a member by the email or by the
depositor name (입금자명) the bank statement shows. Confirming calls
`engine.groupbuy.payments.confirm_pledge_deposit`, which locks, audits and mails,
and then reads what happened from the audit row that call wrote.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from engine.accounts import mask_name
from engine.actors import Actor
from engine.errors import DomainError
from engine.groupbuy.payments import confirm_pledge_deposit
from web.i18n import N_

log = logging.getLogger("jangteo.web.pledge_deposits")

AWAITING_DEPOSIT = "awaiting_deposit"
EXPIRED = "expired"
# The statuses whose deposit staff can still confirm (a late deposit when expired).
CONFIRMABLE_STATUSES = (AWAITING_DEPOSIT, EXPIRED)
# Without a search, expired payments are listed while their hold expired at most this long ago.
RECENT_EXPIRED_S = 14 * 24 * 3600
LIST_LIMIT = 200
MAX_QUERY_CHARS = 100
CONFIRM_ACTION = "pledge_payment.confirm_deposit"

# Result lines, keyed by the audit row's `outcome`, or `late_refunded` for a refunded late deposit.
OUTCOME_MESSAGES = {
    "held": N_("The deposit was confirmed. The pledge's units stay reserved until the group buy closes, "
               "and the difference to the final price is refunded then."),
    "partly_paid": N_("The deposit was confirmed and applied to the member's order. The rest of the order "
                      "is still due by bank transfer."),
    "order_paid": N_("The deposit was confirmed and applied to the member's order, which is now paid. "
                     "Anything beyond the order's amount is refunded."),
    "refunded": N_("The deposit was confirmed, but nothing is left for it to pay (the group buy failed or "
                   "the order was cancelled or paid), so it is refunded in full."),
    "late_refunded": N_("The deposit arrived after its hold expired and the units were released, so it was "
                        "recorded and is refunded in full."),
}


@dataclass(frozen=True)
class PledgePaymentRow:
    """One bank-transfer payment of a pledge, with its campaign and member."""

    payment_id: int
    campaign_id: int
    campaign_title: str
    user_id: int
    member_masked: str
    member_email: str
    units: int
    amount_won: int
    status: str
    depositor_name: str | None  # the name the member gave for the transfer; the web pledge form sets none
    hold_expires_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class DepositResult:
    """The effect of confirming a pledge deposit, read from the confirmation's audit row."""

    payment: PledgePaymentRow
    late: bool  # the payment's hold had expired before the deposit was confirmed
    outcome: str  # held, partly_paid, order_paid or refunded (see OUTCOME_MESSAGES)

    @property
    def result(self) -> str:
        """Return the key of the result line in OUTCOME_MESSAGES."""
        if self.outcome == "refunded" and self.late:
            return "late_refunded"
        return self.outcome

    @property
    def message_msgid(self) -> str:
        return OUTCOME_MESSAGES.get(self.result, OUTCOME_MESSAGES["held"])


_SELECT = """
    SELECT p.id AS payment_id, p.campaign_id, c.title AS campaign_title, p.user_id,
           u.display_name, u.email AS member_email, p.units, p.amount_won, p.status,
           p.depositor_name, p.hold_expires_at, p.created_at
    FROM pledge_payments p
    JOIN campaigns c ON c.id = p.campaign_id
    JOIN users u ON u.id = p.user_id
"""


def normalize_query(raw: str) -> str:
    """Trim a search and cut it to MAX_QUERY_CHARS, in NFC so Hangul typed as jamo matches stored names."""
    return unicodedata.normalize("NFC", raw).strip()[:MAX_QUERY_CHARS]


def _row(record: asyncpg.Record) -> PledgePaymentRow:
    values = dict(record)
    values["member_masked"] = mask_name(values.pop("display_name") or "")
    return PledgePaymentRow(**values)


async def list_pledge_payments(
    db: asyncpg.Pool, statuses: Sequence[str] = CONFIRMABLE_STATUSES, query: str = "", *, limit: int = LIST_LIMIT
) -> list[PledgePaymentRow]:
    """Return up to `limit` bank-transfer payments in `statuses`, those awaiting a deposit first.

    Awaiting payments come by hold expiry, the soonest first, then expired ones, the
    latest expiry first. Without `query`, an expired payment is listed only while
    its hold expired within RECENT_EXPIRED_S. A `query` matches part of the member's
    email or of the depositor name, case-insensitively, or the payment id exactly,
    and lifts that window, so an older late deposit can still be found.
    """
    rows = await db.fetch(
        _SELECT + """
        WHERE p.method = 'bank_transfer' AND p.status = ANY($1::text[])
          AND CASE WHEN $2 = '' THEN p.status <> 'expired' OR p.hold_expires_at >= now() - make_interval(secs => $3)
                   ELSE strpos(lower(u.email), lower($2)) > 0
                        OR strpos(lower(coalesce(p.depositor_name, '')), lower($2)) > 0
                        OR p.id::text = $2
              END
        ORDER BY p.status <> 'awaiting_deposit',
                 CASE WHEN p.status = 'awaiting_deposit' THEN p.hold_expires_at END ASC,
                 p.hold_expires_at DESC, p.id
        LIMIT $4""",
        list(statuses), query, RECENT_EXPIRED_S, limit,
    )
    return [_row(row) for row in rows]


async def fetch_pledge_payment(db: asyncpg.Pool, payment_id: int) -> PledgePaymentRow | None:
    row = await db.fetchrow(_SELECT + " WHERE p.id = $1", payment_id)
    return _row(row) if row is not None else None


async def confirmation_of(db: asyncpg.Pool, payment_id: int) -> DepositResult | None:
    """Return what the confirmation of a payment's deposit did, or None if it was never confirmed.

    A payment is confirmed at most once: the engine confirms only a payment awaiting
    its deposit or expired, and sets neither status on a paid, refunded or settled one.
    """
    detail = await db.fetchval(
        "SELECT detail FROM audit_log WHERE action = $1 AND target_type = 'pledge_payment' AND target_id = $2"
        " ORDER BY id DESC LIMIT 1",
        CONFIRM_ACTION, payment_id,
    )
    payment = await fetch_pledge_payment(db, payment_id) if detail is not None else None
    if payment is None:
        return None
    return DepositResult(payment, bool(detail.get("late")), str(detail.get("outcome", "held")))


async def confirm(db: asyncpg.Pool, actor: Actor, payment_id: int) -> DepositResult:
    """Confirm a pledge deposit through the engine and return what it did.

    Raises the engine's DomainError: `forbidden`, `payment_not_found`, or
    `payment_not_awaiting_deposit` when it was confirmed, refunded or settled already.
    """
    try:
        await confirm_pledge_deposit(db, payment_id, actor)
    except DomainError as error:
        log.info("pledge deposit not confirmed payment_id=%s actor_id=%s code=%s",
                 payment_id, actor.user_id, error.code)
        raise
    result = await confirmation_of(db, payment_id)
    if result is None:
        # The engine writes the audit row in the transaction that confirms the payment.
        raise RuntimeError(f"payment {payment_id} was confirmed but has no {CONFIRM_ACTION} audit row")
    return result

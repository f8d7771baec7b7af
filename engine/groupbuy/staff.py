"""Staff actions on group-buy campaigns: cancelling a scheduled or open campaign.

A cancel runs in two steps, like a close (`engine.groupbuy.closing`):
1. While the campaign row is locked, the Redis admin script moves the campaign from
   open to cancelled with one `cancel` event, and the same transaction records the
   reason, who cancelled it and one `audit_log` row. Redis runs only one of a cancel
   and a close, so a close that began first makes the cancel fail with nothing changed.
2. Once the ledger contains the cancel event, `closing.finalize_campaign` settles it
   exactly once, as it settles a failed close. Every pledge is released, every paid
   up-front payment is refunded in full, and pending bank-transfer holds expire.
   Each member with units or a payment gets one mail.

A cancelled campaign stays due in Redis until it is settled, so the worker's closer
finishes step 2 when the canceller dies after step 1 or the ledger is slow.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from engine.actors import Actor
from engine.errors import DomainError
from engine.groupbuy.campaigns import CampaignRebuildPending, load_campaign
from engine.groupbuy.closing import (
    WAITING,
    CampaignCloseOutcome,
    check_campaign_ledger,
    finalize_campaign,
    settle_live,
)
from engine.groupbuy.live import CampaignLive
from engine.groupbuy.rules import CANCELLED, OPEN, SCHEDULED
from engine.orders import audit, require_staff

log = logging.getLogger("jangteo.groupbuy.staff")

# How long a cancel waits for the ledger consumer to store its cancel event before it
# leaves the settlement to the worker's closer.
LEDGER_WAIT_S = 5.0
LEDGER_POLL_S = 0.05
MAX_REASON_CHARS = 500
CANCELLABLE_STATUSES = (SCHEDULED, OPEN)


def check_cancel_reason(reason: object) -> str:
    """Return the reason without surrounding whitespace, or raise DomainError `invalid_cancel_reason`."""
    text = reason.strip() if isinstance(reason, str) else ""
    if not 1 <= len(text) <= MAX_REASON_CHARS:
        raise DomainError(
            "invalid_cancel_reason", f"a cancel needs a reason of 1 to {MAX_REASON_CHARS} characters",
            field="reason", max_chars=MAX_REASON_CHARS,
        )
    return text


def _require_cancellable(campaign_id: int, status: str) -> None:
    if status == CANCELLED:
        raise DomainError("campaign_cancelled", f"campaign {campaign_id} is already cancelled",
                          campaign_id=campaign_id)
    if status not in CANCELLABLE_STATUSES:
        raise DomainError(
            "campaign_not_open", f"campaign {campaign_id} is {status}; staff cancel only scheduled or open campaigns",
            campaign_id=campaign_id, campaign_status=status,
        )


async def cancel_campaign(
    db: asyncpg.Pool,
    live: CampaignLive,
    actor: Actor,
    campaign_id: int,
    reason: object,
    *,
    ledger_wait_s: float = LEDGER_WAIT_S,
) -> CampaignCloseOutcome:
    """Cancel a scheduled or open campaign, audited, and settle it like a failed close.

    Returns the outcome of the settlement: `cancelled`, or `held` when the ledger does
    not check out (see `finalize_campaign`). It is `waiting` when the ledger did not
    store the cancel event within `ledger_wait_s`, and the worker's closer settles it
    later. Raises DomainError `forbidden` (not staff), `invalid_cancel_reason`,
    `campaign_not_found`, `campaign_cancelled` (cancelled before) or `campaign_not_open`
    (closing, closed or held), each with nothing changed, and CampaignRebuildPending
    while Redis restores the campaign.
    """
    require_staff(actor)
    text = check_cancel_reason(reason)
    status = await db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id)
    if status is None:
        raise DomainError("campaign_not_found", f"campaign {campaign_id} does not exist", campaign_id=campaign_id)
    _require_cancellable(campaign_id, status)
    # Loaded before the row lock: a rebuild may itself update the campaign row.
    await load_campaign(db, live, campaign_id)

    async with db.acquire() as connection:
        async with connection.transaction():
            # NO KEY UPDATE leaves the ledger consumer free to insert this campaign's
            # events, while a closer's FOR UPDATE waits for this commit.
            status = await connection.fetchval(
                "SELECT status FROM campaigns WHERE id = $1 FOR NO KEY UPDATE", campaign_id
            )
            _require_cancellable(campaign_id, status)
            reply = await live.admin(campaign_id, "cancel", "", actor.user_id)
            if reply.get("code") == "campaign_not_loaded":
                raise CampaignRebuildPending(campaign_id, live.rebuild_grace_ms)
            # A canceller that died after Redis cancelled but before this commit left
            # the campaign cancelled in Redis only; this call records it.
            repeated = reply.get("code") == "not_open" and reply.get("status") == CANCELLED
            if not reply.get("ok") and not repeated:
                live_status = reply.get("status") or reply.get("code")
                raise DomainError(
                    "campaign_not_open",
                    f"campaign {campaign_id} is {live_status} in Redis; a close began first, so it cannot be cancelled",
                    campaign_id=campaign_id, campaign_status=str(live_status),
                )
            cancel_seq = int(reply["seq"])
            # A repeat records the reason only when no earlier cancel did.
            recorded = await connection.fetchval(
                """UPDATE campaigns SET cancel_reason = $2, cancelled_by = $3
                   WHERE id = $1 AND (cancelled_by IS NULL OR $4) RETURNING id""",
                campaign_id, text, actor.user_id, not repeated,
            )
            if recorded is None:
                raise DomainError("campaign_cancelled", f"campaign {campaign_id} is already cancelled",
                                  campaign_id=campaign_id)
            await audit(connection, actor, "campaign.cancel", "campaign", campaign_id,
                        {"reason": text, "seq": cancel_seq})
    log.info("campaign cancelled in Redis campaign_id=%s actor_id=%s seq=%s", campaign_id, actor.user_id, cancel_seq)
    return await settle_cancel(db, live, campaign_id, cancel_seq, wait_s=ledger_wait_s)


async def settle_cancel(
    db: asyncpg.Pool, live: CampaignLive, campaign_id: int, cancel_seq: int, *, wait_s: float
) -> CampaignCloseOutcome:
    """Wait up to `wait_s` for the ledger to store the cancel event, then settle the cancel once.

    Returns `waiting` when the ledger is still behind, leaving the settlement to the
    worker's closer. Repeating it after the campaign is final only settles Redis again.
    """
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + wait_s
    while True:
        async with db.acquire() as connection:
            ledger = await check_campaign_ledger(connection, campaign_id, cancel_seq)
        if ledger.complete or loop.time() >= give_up_at:
            break
        await asyncio.sleep(LEDGER_POLL_S)
    outcome = await finalize_campaign(db, campaign_id, cancel_seq)
    if outcome.status == WAITING:
        log.info("campaign cancel left to the closer campaign_id=%s seq=%s stored=%s",
                 campaign_id, cancel_seq, ledger.stored)
        return outcome
    await settle_live(live, campaign_id, outcome.status)
    return outcome

"""Pledge requests (a member's new total for a campaign) as the page and the JSON API handle them.

Order of checks: signed in (401), rate limit per user (429, the bid rate), then the
engine: who may pledge, the units and client id, then one Lua script call. A
rejection comes back as an `ApiError` with the engine's code and, where it helps,
the units left, the largest total allowed and the member's current total. If
Redis cannot confirm the pledge, the response is 503 `pledge_not_confirmed`: the
pledge may or may not have been applied, and sending it again with the same
client id is safe (the script returns the first receipt).

For an up-front campaign, each accepted pledge that adds units records a bank
transfer for the added units at the "at most" price, which holds them until the
deposit is confirmed or the hold expires (`engine.groupbuy.payments`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg
from prometheus_client import Counter
from redis.exceptions import RedisError
from starlette.requests import Request

from engine.errors import DomainError
from engine.groupbuy.live import CampaignSnapshot, PledgeOutcome, PledgeReceipt
from engine.groupbuy.payments import record_up_front_payment
from engine.groupbuy.service import submit_pledge
from web.errors import ApiError
from web.live import codes  # noqa: F401  (registers the error codes)
from web.live.bids import actor_of, api_error_for, check_rate_and_session
from web.live.campaign_hub import campaign_live
from web.security import require_user
from web.sessions import SessionCheck

log = logging.getLogger("jangteo.web.pledges")

# A campaign's payment timing never changes after it is created, so each process
# reads it once per campaign instead of once per pledge (bounded: oldest entries go).
_PAYMENT_TIMING: dict[tuple[asyncpg.Pool, int], str] = {}
_PAYMENT_TIMING_MAX = 10_000


async def _payment_timing(db: asyncpg.Pool, campaign_id: int) -> str | None:
    # Keyed by pool too: campaign ids are per database, and tests run several databases.
    key = (db, campaign_id)
    timing = _PAYMENT_TIMING.get(key)
    if timing is None:
        timing = await db.fetchval("SELECT payment_timing FROM campaigns WHERE id = $1", campaign_id)
        if timing is None:
            return None
        if len(_PAYMENT_TIMING) >= _PAYMENT_TIMING_MAX:
            del _PAYMENT_TIMING[next(iter(_PAYMENT_TIMING))]
        _PAYMENT_TIMING[key] = timing
    return timing


PLEDGES = Counter("jangteo_pledges", "Pledge requests by outcome and code.", ["outcome", "code"])


@dataclass(frozen=True)
class PledgeAccepted:
    receipt: PledgeReceipt
    snapshot: CampaignSnapshot | None
    payment_id: int | None = None  # the up-front payment this pledge recorded


def rejection_detail(outcome: PledgeOutcome) -> dict[str, object]:
    """Return the numbers a rejection message names: units left and allowed, the limit, the member's total."""
    detail: dict[str, object] = {}
    if outcome.units_left is not None:
        detail["units_left"] = outcome.units_left
    if outcome.units_allowed is not None:
        detail["units_allowed"] = outcome.units_allowed
    if outcome.member_units is not None:
        detail["member_units"] = outcome.member_units
    if outcome.snapshot is not None:
        detail["per_member_limit"] = outcome.snapshot.per_member_limit
    return detail


async def place_pledge(
    request: Request, campaign_id: int, units: object, client_id: object, *,
    session_check: SessionCheck | None = None,
) -> PledgeAccepted:
    """Set the signed-in member's total for a campaign (0 cancels); raise ApiError on any rejection.

    A websocket passes its `session_check`, as for `place_bid`.
    """
    user = require_user(request)
    state = request.app.state
    try:
        await check_rate_and_session(request, "pledge", str(user.id), session_check)
        outcome = await submit_pledge(
            state.db, campaign_live(request.app), actor_of(user), campaign_id,
            units,  # type: ignore[arg-type]  (submit_pledge validates the type)
            client_id,  # type: ignore[arg-type]
        )
    except DomainError as error:
        PLEDGES.labels("rejected", error.code).inc()
        raise api_error_for(error.code, error.detail) from None
    except (RedisError, OSError, TimeoutError) as error:
        PLEDGES.labels("rejected", "pledge_not_confirmed").inc()
        log.warning("pledge not confirmed campaign_id=%d user_id=%d error=%s", campaign_id, user.id,
                    type(error).__name__)
        raise ApiError("pledge_not_confirmed", headers={"Retry-After": "1"}) from None

    if not outcome.accepted or outcome.receipt is None:
        PLEDGES.labels("rejected", outcome.code).inc()
        raise api_error_for(outcome.code, rejection_detail(outcome))
    receipt = outcome.receipt
    PLEDGES.labels("accepted", "accepted").inc()
    log.info(
        "pledge accepted campaign_id=%d seq=%d user_id=%d units=%d delta_units=%d committed_units=%d retry=%s",
        campaign_id, receipt.seq, user.id, receipt.units, receipt.delta_units, receipt.committed_units,
        receipt.retry,
    )
    payment_id = await _record_up_front_payment(state.db, campaign_id, user.id, receipt, outcome.snapshot)
    return PledgeAccepted(receipt, outcome.snapshot, payment_id)


async def _record_up_front_payment(
    db: asyncpg.Pool, campaign_id: int, user_id: int, receipt: PledgeReceipt, snapshot: CampaignSnapshot | None
) -> int | None:
    """Record the bank transfer for the units a pledge added to an up-front campaign; return its id."""
    # A retry returns the first receipt, whose payment was recorded then.
    if receipt.retry or receipt.delta_units <= 0 or snapshot is None:
        return None
    timing = await _payment_timing(db, campaign_id)
    if timing != "up_front":
        return None
    amount_won = receipt.delta_units * snapshot.at_most_price_won
    try:
        return await record_up_front_payment(db, campaign_id, user_id, receipt.delta_units, amount_won)
    except (DomainError, asyncpg.PostgresError, OSError) as error:
        # NOTE: the pledge stays accepted without a payment row, so no hold expires it. The
        # close turns it into an order payable by its due time instead.
        log.error("up-front payment not recorded campaign_id=%d user_id=%d seq=%d error=%s",
                  campaign_id, user_id, receipt.seq, getattr(error, "code", type(error).__name__))
        return None

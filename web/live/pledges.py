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
deposit is confirmed or the hold expires (`engine.groupbuy.payments`). A pledge
gets at most one payment, keyed by its receipt's `seq`. A request that fails after
Redis applied the pledge (a PostgreSQL error, for example) gets HTTP 500, and its
retry records the payment if the failed request had not.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg
from prometheus_client import Counter
from redis.exceptions import RedisError
from starlette.requests import Request

from engine.errors import DomainError
from engine.groupbuy.live import CampaignLive, CampaignSnapshot, PledgeOutcome, PledgeReceipt
from engine.groupbuy.payments import record_up_front_payment
from engine.groupbuy.service import submit_pledge
from web.errors import ApiError
from web.live import codes  # noqa: F401  (registers the error codes)
from web.live.bids import actor_of, api_error_for, check_rate_and_session
from web.live.campaign_hub import campaign_live
from web.live.campaign_views import member_units
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
    payment_id: int | None = None  # the up-front payment recorded for this pledge
    payment_won: int | None = None  # that payment's amount


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
    live = campaign_live(request.app)
    try:
        await check_rate_and_session(request, "pledge", str(user.id), session_check)
        outcome = await submit_pledge(
            state.db, live, actor_of(user), campaign_id,
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
    # NOTE: an error from here on (PostgreSQL, Redis) fails the request (HTTP 500,
    # `result_unknown` on a socket) with the units reserved in Redis, and the retry
    # records the payment. Units of a client that never retries have no payment, hold
    # or expiry until the close bills them as an order payable by its due time.
    # Nothing sweeps them before that.
    payment = await _record_up_front_payment(state.db, live, campaign_id, user.id, receipt, outcome.snapshot)
    if payment is None:
        return PledgeAccepted(receipt, outcome.snapshot)
    return PledgeAccepted(receipt, outcome.snapshot, *payment)


async def _record_up_front_payment(
    db: asyncpg.Pool, live: CampaignLive, campaign_id: int, user_id: int, receipt: PledgeReceipt,
    snapshot: CampaignSnapshot | None,
) -> tuple[int, int] | None:
    """Record the bank transfer for the units a pledge added to an up-front campaign and return its id and amount.

    A retry returns the payment recorded for the pledge, or records it when the
    first request failed before it could (`_units_without_payment` sizes it).
    PostgreSQL and Redis errors propagate, so the client sends the pledge again.
    """
    if receipt.delta_units <= 0 or snapshot is None:
        return None
    if await _payment_timing(db, campaign_id) != "up_front":
        return None
    units = receipt.delta_units
    if receipt.retry:
        recorded = await _payment_of_pledge(db, campaign_id, receipt.seq)
        if recorded is not None:
            return recorded
        units = await _units_without_payment(db, live, campaign_id, user_id, receipt.delta_units)
        if units == 0:
            log.info("up-front payment not needed for retried pledge campaign_id=%d user_id=%d seq=%d"
                     " delta_units=%d", campaign_id, user_id, receipt.seq, receipt.delta_units)
            return None
    try:
        await record_up_front_payment(db, campaign_id, user_id, units, units * snapshot.at_most_price_won,
                                      pledge_seq=receipt.seq)
    except DomainError as error:
        # NOTE: the pledge stays accepted without a payment row, so no hold expires it. The
        # close turns it into an order payable by its due time instead.
        log.error("up-front payment not recorded campaign_id=%d user_id=%d seq=%d error=%s",
                  campaign_id, user_id, receipt.seq, error.code)
        return None
    # Read back, because a concurrent request of the same pledge may have recorded it first.
    return await _payment_of_pledge(db, campaign_id, receipt.seq)


async def _payment_of_pledge(db: asyncpg.Pool, campaign_id: int, seq: int) -> tuple[int, int] | None:
    """Return the id and amount of the up-front payment recorded for the pledge `seq`, or None."""
    row = await db.fetchrow(
        "SELECT id, amount_won FROM pledge_payments WHERE campaign_id = $1 AND pledge_seq = $2", campaign_id, seq
    )
    return (row["id"], row["amount_won"]) if row is not None else None


async def _units_without_payment(
    db: asyncpg.Pool, live: CampaignLive, campaign_id: int, user_id: int, delta_units: int
) -> int:
    """Return how many of a retried pledge's added units still need a payment.

    The member may have changed the pledge since the receipt. Each increase records
    its own payment, a decrease changes none, and the close bills the member's total
    at the close against the paid payments. So the retry pays for at most
    `delta_units`, and only for units of the current total that no payment awaiting
    its deposit or paid covers. A pledge reduced since is not billed at its old
    size, and units that a later pledge's payment covers are not billed twice.
    """
    # NOTE: two concurrent retries of different pledges of one member can both count the
    # same uncovered units. The extra payment is expired or refunded at the close,
    # but its hold expiry may first release units that the other payment covers.
    current_units = await member_units(live, campaign_id, user_id)
    covered_units = await db.fetchval(
        """SELECT coalesce(sum(units), 0) FROM pledge_payments
           WHERE campaign_id = $1 AND user_id = $2 AND status IN ('awaiting_deposit', 'paid')""",
        campaign_id, user_id,
    )
    return max(0, min(delta_units, current_units - covered_units))

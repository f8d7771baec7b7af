"""Bid and buy-now requests as the page and the JSON API both handle them.

Order of checks: signed in (401), rate limit per user (429), then the engine:
who may bid, the amount and client id, then one Lua script call. Whatever the
engine rejects comes back as an `ApiError` with the engine's code. If Redis cannot
confirm the bid, the response is 503 `not_confirmed`: the bid may or may not have
been applied, and sending it again with the same client id is safe (the script
returns the first receipt).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from redis.exceptions import RedisError
from starlette.requests import Request

from engine.actors import Actor
from engine.auction.live import AuctionLive, Receipt, Snapshot
from engine.auction.service import submit_bid, submit_buy_now
from engine.errors import DomainError
from web import live as live_package
from web.errors import ERRORS, ApiError
from web.live import codes  # noqa: F401  (registers the error codes)
from web.metrics import BIDS
from web.ratelimit import raise_if_limited, submit_user_rate
from web.security import require_user
from web.sessions import CurrentUser, SessionCheck, SessionEnded

log = logging.getLogger("jangteo.web.bids")

BIDS_ACCEPTED = BIDS.labels("accepted", "accepted")


@dataclass(frozen=True)
class BidAccepted:
    receipt: Receipt
    snapshot: Snapshot | None


def actor_of(user: CurrentUser) -> Actor:
    return Actor(
        user_id=user.id, role=user.role, display_name=user.display_name,
        supplier_id=user.supplier_id, status=user.status,
    )


async def place_bid(
    request: Request, lot_id: int, amount: object, client_id: object, *, session_check: SessionCheck | None = None
) -> BidAccepted:
    """Apply a bid for the signed-in user; raise ApiError on any rejection.

    A websocket passes its `session_check`: the bid then raises SessionEnded,
    changing nothing, when the socket's session no longer exists.
    """
    return await _submit(request, lot_id, amount, client_id, buy_now=False, session_check=session_check)


async def place_buy_now(
    request: Request, lot_id: int, client_id: object, *, session_check: SessionCheck | None = None
) -> BidAccepted:
    return await _submit(request, lot_id, None, client_id, buy_now=True, session_check=session_check)


async def _submit(
    request: Request, lot_id: int, amount: object, client_id: object, *, buy_now: bool,
    session_check: SessionCheck | None,
) -> BidAccepted:
    # The account's role and status come from the session copy. Suspending an account
    # through the API revokes its sessions, so its next bid is anonymous (401).
    # NOTE: a suspension written to PostgreSQL by other means stops bids only at the
    # session's next re-read, up to USER_REFRESH_S seconds later.
    user = require_user(request)
    state = request.app.state
    kind = "buy_now" if buy_now else "bid"
    try:
        await check_rate_and_session(request, "bid", str(user.id), session_check)
        live: AuctionLive = live_package.auction_live(request.app)
        actor = actor_of(user)
        if buy_now:
            outcome = await submit_buy_now(state.db, live, actor, lot_id, client_id)  # type: ignore[arg-type]
        else:
            outcome = await submit_bid(state.db, live, actor, lot_id, amount, client_id)  # type: ignore[arg-type]
    except DomainError as error:
        BIDS.labels("rejected", error.code).inc()
        raise api_error_for(error.code, error.detail) from None
    except (RedisError, OSError, TimeoutError) as error:
        BIDS.labels("rejected", "not_confirmed").inc()
        log.warning("bid not confirmed lot_id=%d user_id=%d kind=%s error=%s", lot_id, user.id, kind, type(error).__name__)
        raise ApiError("not_confirmed", headers={"Retry-After": "1"}) from None

    if not outcome.accepted or outcome.receipt is None:
        BIDS.labels("rejected", outcome.code).inc()
        detail = {"min_next_won": outcome.snapshot.min_next_won} if outcome.snapshot else {}
        raise api_error_for(outcome.code, detail)
    receipt = outcome.receipt
    BIDS_ACCEPTED.inc()
    log.info(
        "bid accepted lot_id=%d seq=%d user_id=%d kind=%s amount_won=%d price_won=%d retry=%s",
        lot_id, receipt.seq, user.id, receipt.kind, receipt.amount_won, receipt.price_won, receipt.retry,
    )
    return BidAccepted(receipt, outcome.snapshot)


async def check_rate_and_session(request: Request, name: str, identity: str, session_check: SessionCheck | None) -> None:
    """Count a hit against rate limit `name`; with a session check, require the session first.

    The hit is queued after the check, so both share one round trip. Raises
    SessionEnded, ApiError 429, or RedisError when Redis fails.
    """
    reply = submit_user_rate(request, name, request.app.state.settings.bid_rate, identity)
    if session_check is not None and not await session_check.alive():
        # Mark the reply's outcome as read, so an error in it is not logged as never retrieved.
        reply.add_done_callback(lambda done: done.cancelled() or done.exception())
        raise SessionEnded()
    raise_if_limited(await reply)


def api_error_for(code: str, detail: dict[str, object]) -> ApiError:
    if code not in ERRORS:
        log.error("bid rejected with unregistered code=%s", code)
        return ApiError("bad_request", reason=code)
    safe = {key: value for key, value in detail.items() if isinstance(value, (int, str)) and not isinstance(value, bool)}
    # Set after construction: a detail named like an ApiError parameter (`status`,
    # `headers`) must stay a detail, not become the HTTP status or the headers.
    error = ApiError(code)
    error.detail = safe
    return error

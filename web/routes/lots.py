"""Public auction pages: the list of lots, one lot's live page, and bidding from it.

Bids are posted over HTTP (htmx `hx-post`), never over the websocket, so a bid
typed while the page was offline is not queued and sent later at a price the
bidder never saw. The response is a result fragment. A page without JavaScript
gets the whole lot page back with the result in it.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.auction.live import Snapshot
from web import ids  # noqa: F401  (registers the {lot_id:id} convertor used below)
from web.errors import ApiError
from web.live import auction_live
from web.live.bids import BidAccepted, place_bid, place_buy_now
from web.live.render import state_context
from web.live.views import (
    LotTerms,
    fetch_listed_terms,
    fetch_terms,
    notice_kind,
    read_snapshot,
    read_snapshots,
    recent_history,
)
from web.sessions import CurrentUser

LIST_LIMIT = 100
LISTED_STATUSES = ("scheduled", "open")


def new_client_id() -> str:
    """Generate a fresh id for one bid attempt (retries of the same attempt reuse it)."""
    return secrets.token_urlsafe(16)


def bid_block_reason(user: CurrentUser | None, terms: LotTerms) -> str | None:
    """Why this user sees no bid form (None: they may bid)."""
    if user is None:
        return "login"
    if not user.is_active:
        return "suspended"
    if user.is_staff:
        return "staff"
    if user.is_supplier and user.supplier_id == terms.supplier_id:
        return "own_lot"
    return None


async def lot_list(request: Request) -> Response:
    state = request.app.state
    terms = await fetch_listed_terms(state.db, statuses=LISTED_STATUSES, limit=LIST_LIMIT)
    snapshots = await read_snapshots(auction_live(request.app), [lot.lot_id for lot in terms])
    lots = [
        {"terms": lot, **state_context(snapshots[lot.lot_id])}
        for lot in terms
        if lot.lot_id in snapshots
    ]
    return state.templates.TemplateResponse(request, "lots/list.html", {"lots": lots})


async def _detail_context(request: Request, lot_id: int) -> dict[str, Any]:
    state = request.app.state
    terms = await fetch_terms(state.db, lot_id)
    if terms is None:
        raise ApiError("lot_not_found", lot_id=lot_id)
    live = auction_live(request.app)
    snapshot = await read_snapshot(state.db, live, lot_id)
    if snapshot is None:
        raise ApiError("lot_not_found", lot_id=lot_id)
    user: CurrentUser | None = getattr(request.state, "user", None)
    bidders = set(await live.bidders(lot_id)) if user is not None else set()
    return {
        "terms": terms,
        **state_context(snapshot),
        "oob": False,
        "history": await recent_history(state.db, state.redis, state.keys, lot_id),
        "notice": notice_kind(snapshot, user.id if user else None, bidders),
        "block_reason": bid_block_reason(user, terms),
        "client_id": new_client_id(),
        "buy_now_client_id": new_client_id(),
    }


async def lot_detail(request: Request) -> Response:
    lot_id = request.path_params["lot_id"]
    context = await _detail_context(request, lot_id)
    return request.app.state.templates.TemplateResponse(request, "lots/detail.html", context)


async def post_bid(request: Request) -> Response:
    lot_id = request.path_params["lot_id"]
    form = await request.form()
    amount = form.get("amount_won", "")
    client_id = form.get("client_id", "")
    try:
        accepted = await place_bid(request, lot_id, amount, client_id)
    except ApiError as error:
        if error.status == 401:
            raise
        return await _result(request, lot_id, error=error, client_id=str(client_id), amount=str(amount))
    return await _result(request, lot_id, accepted=accepted, client_id=str(client_id))


async def post_buy_now(request: Request) -> Response:
    lot_id = request.path_params["lot_id"]
    form = await request.form()
    client_id = form.get("client_id", "")
    try:
        accepted = await place_buy_now(request, lot_id, client_id)
    except ApiError as error:
        if error.status == 401:
            raise
        return await _result(request, lot_id, error=error, client_id=str(client_id), buy_now=True)
    return await _result(request, lot_id, accepted=accepted, client_id=str(client_id), buy_now=True)


async def _result(
    request: Request,
    lot_id: int,
    *,
    client_id: str,
    accepted: BidAccepted | None = None,
    error: ApiError | None = None,
    amount: str = "",
    buy_now: bool = False,
) -> Response:
    """Render a bid's result: a fragment for htmx, else the whole page with the result."""
    templates = request.app.state.templates
    locale = getattr(request.state, "locale", "ko")
    status_code = error.status if error else 200
    # A bid that was not confirmed keeps its client id, so sending it again is a
    # retry of the same attempt. Any other result ends the attempt.
    next_client_id = client_id if error is not None and error.code == "not_confirmed" else new_client_id()
    snapshot: Snapshot | None = accepted.snapshot if accepted else None
    if snapshot is None and error is not None and error.code in ("bid_too_low", "max_not_raised", "lot_ended"):
        snapshot = await auction_live(request.app).snapshot(lot_id)
    result = {
        "lot_id": lot_id,
        "receipt": accepted.receipt if accepted else None,
        "error_code": error.code if error else None,
        "error_message": error.message(locale) if error else None,
        "next_client_id": next_client_id,
        "amount": amount if error is not None and error.code == "not_confirmed" else "",
        "buy_now": buy_now,
    }
    if request.headers.get("hx-request") == "true":
        context: dict[str, Any] = {"result": result, "oob": True, "announce": False}
        if snapshot is not None:
            context.update(state_context(snapshot))
        return templates.TemplateResponse(request, "lots/_bid_result.html", context, status_code=status_code)
    page = await _detail_context(request, lot_id)
    page.update(result=result, client_id=next_client_id)
    return templates.TemplateResponse(request, "lots/detail.html", page, status_code=status_code)


routes = [
    Route("/", lot_list, methods=["GET"], name="home"),
    Route("/lots", lot_list, methods=["GET"], name="lot_list"),
    Route("/lots/{lot_id:id}", lot_detail, methods=["GET"], name="lot_detail"),
    Route("/lots/{lot_id:id}/bids", post_bid, methods=["POST"], name="lot_bid"),
    Route("/lots/{lot_id:id}/buy-now", post_buy_now, methods=["POST"], name="lot_buy_now"),
]

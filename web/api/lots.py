"""The auction API: lots and their bids, lot creation, and the staff actions on lots.

Reads show what the public pages show: masked leader and bidder names, whether a
reserve exists and is met, never the reserve amount. Bids take `amount_won` as a
JSON integer or a string of ASCII digits. Floats, booleans and strings with signs
or separators are rejected with 400 `invalid_amount`.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from engine.auction import staff as staff_actions
from engine.auction.live import Snapshot
from engine.auction.lots import create_lot
from engine.auction.rules import InvalidAmount, parse_amount_won
from engine.errors import DomainError
from engine.orders import confirm_deposit, order_balance
from web.api import ApiRoutes, json_response, read_json
from web.errors import ApiError
from web.live import auction_live
from web.live.bids import BidAccepted, actor_of, api_error_for, place_bid, place_buy_now
from web.live.lot_input import parse_datetime, read_lot_input
from web.live.views import (
    LotTerms,
    display_status,
    fetch_listed_terms,
    fetch_terms,
    read_snapshot,
    read_snapshots,
    recent_history,
    shown_price_won,
)
from web.security import require_role

routes = ApiRoutes(tag="auctions")

LIST_LIMIT = 100
_require_staff = require_role("staff")
_require_lister = require_role("supplier", "staff")

# -- schemas -------------------------------------------------------------------------

_AMOUNT_SCHEMA = {
    "oneOf": [
        {"type": "integer", "minimum": 1, "maximum": 10_000_000_000},
        {"type": "string", "pattern": "^[0-9]{1,11}$"},
    ],
    "description": "Whole won: a JSON integer or a string of ASCII digits.",
}
_LIVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "seq": {"type": "integer"}, "status": {"type": "string"},
        "price_won": {"type": "integer", "description": "Current price, or the start price before the first bid."},
        "bid_count": {"type": "integer"}, "leader_masked": {"type": "string"},
        "end_ms": {"type": "integer"}, "server_ms": {"type": "integer"}, "min_next_won": {"type": "integer"},
        "reserve_met": {"type": ["boolean", "null"]}, "buy_now_won": {"type": ["integer", "null"]},
    },
}
_LOT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "title": {"type": "string"}, "quantity": {"type": "integer"},
        "product": {"type": "object"}, "supplier": {"type": "object"},
        "start_price_won": {"type": "integer"}, "has_reserve": {"type": "boolean"},
        "start_at": {"type": "string", "format": "date-time"}, "end_at": {"type": "string", "format": "date-time"},
        "live": _LIVE_SCHEMA,
    },
}
_RECEIPT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "receipt": {"type": "object", "properties": {
            "receipt_id": {"type": "string"}, "seq": {"type": "integer"}, "kind": {"type": "string"},
            "amount_won": {"type": "integer"}, "price_won": {"type": "integer"}, "leading": {"type": "boolean"},
            "retry": {"type": "boolean"},
        }},
        "live": _LIVE_SCHEMA,
    },
}
_BID_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["amount_won", "client_id"],
    "properties": {
        "amount_won": _AMOUNT_SCHEMA,
        "client_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$",
                      "description": "One id per bid attempt; resend the same id to retry safely."},
    },
}
_BUY_NOW_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["client_id"], "properties": {"client_id": _BID_SCHEMA["properties"]["client_id"]},
}
_CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["product_id", "title", "start_price_won", "start_at", "end_at"],
    "properties": {
        "product_id": {"type": "integer"}, "title": {"type": "string", "maxLength": 120},
        "quantity": {"type": "integer", "minimum": 1}, "start_price_won": _AMOUNT_SCHEMA,
        "reserve_won": {"oneOf": [_AMOUNT_SCHEMA, {"type": "null"}]},
        "buy_now_won": {"oneOf": [_AMOUNT_SCHEMA, {"type": "null"}]},
        "start_at": {"type": "string", "description": "ISO 8601; without an offset it is Korea time."},
        "end_at": {"type": "string"}, "hard_cap_at": {"type": ["string", "null"]},
        "soft_close_window_s": {"type": "integer", "minimum": 0, "maximum": 3600},
        "extension_s": {"type": "integer", "minimum": 0, "maximum": 3600},
        "increments": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
    },
}
_EXTEND_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["end_at"], "properties": {"end_at": {"type": "string"}},
}

_CONFIRM_DEPOSIT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"deposit_won": {
        **_AMOUNT_SCHEMA,
        "description": "The transfer that arrived, in whole won; default the amount due. Below the amount due is "
                       "409 deposit_short. Beyond it, the excess is recorded and refunded to the buyer.",
    }},
}
_CONFIRMATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": {"type": "integer"}, "order_no": {"type": "string"}, "status": {"type": "string"},
        "amount_won": {"type": "integer", "description": "The order's amount."},
        "prepaid_won": {"type": "integer", "description": "Up-front group-buy payments settled into the order."},
        "due_won": {"type": "integer", "description": "amount_won - prepaid_won, the transfer the order needed."},
        "deposit_won": {"type": "integer", "description": "The transfer confirmed."},
        "refund_won": {"type": "integer", "description": "deposit_won - due_won, refunded to the buyer."},
    },
}
_BALANCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "order_id": {"type": "integer"}, "order_no": {"type": "string"}, "channel": {"type": "string"},
        "status": {"type": "string"}, "amount_won": {"type": "integer"},
        "prepaid_won": {"type": "integer", "description": "Up-front group-buy payments that count toward the order."},
        "due_won": {"type": "integer", "description": "amount_won - prepaid_won, the bank transfer the order needs."},
        "deposit_won": {"type": ["integer", "null"], "description": "The transfer staff confirmed, if any."},
        "payment_due_at": {"type": ["string", "null"], "format": "date-time"},
    },
}

# -- shapes --------------------------------------------------------------------------


def live_json(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "seq": snapshot.seq,
        "status": display_status(snapshot),
        "price_won": shown_price_won(snapshot),
        "bid_count": snapshot.bid_count,
        "leader_masked": snapshot.leader_masked if snapshot.bid_count else "",
        "start_ms": snapshot.start_ms,
        "end_ms": snapshot.end_ms,
        "server_ms": snapshot.server_ms,
        "min_next_won": snapshot.min_next_won,
        "reserve_met": snapshot.reserve_met,
        "buy_now_won": snapshot.buy_now_won,
    }


def lot_json(terms: LotTerms, snapshot: Snapshot | None) -> dict[str, Any]:
    return {
        "id": terms.lot_id,
        "title": terms.title,
        "quantity": terms.quantity,
        "product": {"id": terms.product_id, "name": terms.product_name, "unit": terms.product_unit,
                    "origin_label": terms.origin_label},
        "supplier": {"id": terms.supplier_id, "name": terms.supplier_name},
        "start_price_won": terms.start_price_won,
        "has_reserve": terms.has_reserve,
        "buy_now_won": terms.buy_now_won,
        "start_at": terms.start_at.isoformat(),
        "end_at": terms.end_at.isoformat(),
        "hard_cap_at": terms.hard_cap_at.isoformat() if terms.hard_cap_at else None,
        "soft_close_window_s": terms.soft_close_window_s,
        "extension_s": terms.extension_s,
        "increments": terms.increments,
        "live": live_json(snapshot) if snapshot else None,
    }


def _accepted_json(accepted: BidAccepted) -> dict[str, Any]:
    receipt = asdict(accepted.receipt)
    return {"receipt": receipt, "live": live_json(accepted.snapshot) if accepted.snapshot else None}


def _path_int(request: Request, name: str) -> int:
    """Parse a numeric path parameter; anything else is 404 (no such lot, bid or order)."""
    value = request.path_params[name]
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise ApiError({"lot_id": "lot_not_found", "order_id": "order_not_found"}.get(name, "not_found"))
    return int(value)


def _domain(error: DomainError) -> ApiError:
    return api_error_for(error.code, error.detail)


# -- reads ---------------------------------------------------------------------------


@routes.route("GET", "/lots", summary="List scheduled and open lots with their live state",
              responses={200: {"type": "object", "properties": {"lots": {"type": "array", "items": _LOT_SCHEMA}}}})
async def list_lots(request: Request) -> JSONResponse:
    terms = await fetch_listed_terms(request.app.state.db, statuses=("scheduled", "open"), limit=LIST_LIMIT)
    snapshots = await read_snapshots(auction_live(request.app), [lot.lot_id for lot in terms])
    return json_response({"lots": [lot_json(lot, snapshots.get(lot.lot_id)) for lot in terms]})


async def _terms_or_404(request: Request) -> LotTerms:
    lot_id = _path_int(request, "lot_id")
    terms = await fetch_terms(request.app.state.db, lot_id)
    if terms is None:
        raise ApiError("lot_not_found", lot_id=lot_id)
    return terms


@routes.route("GET", "/lots/{lot_id}", summary="One lot: terms and live state (no reserve amount)",
              responses={200: _LOT_SCHEMA})
async def get_lot(request: Request) -> JSONResponse:
    terms = await _terms_or_404(request)
    snapshot = await read_snapshot(request.app.state.db, auction_live(request.app), terms.lot_id)
    return json_response(lot_json(terms, snapshot))


@routes.route("GET", "/lots/{lot_id}/bids", summary="Recent accepted bids, newest first, names masked",
              responses={200: {"type": "object", "properties": {"bids": {"type": "array"}}}})
async def list_bids(request: Request) -> JSONResponse:
    terms = await _terms_or_404(request)
    state = request.app.state
    rows = await recent_history(state.db, state.redis, state.keys, terms.lot_id)
    return json_response({"bids": [asdict(row) for row in rows]})


# -- bidding -------------------------------------------------------------------------
# Bids are retried safely by resending their client_id (the bid script keeps a
# receipt per client id), so they take no Idempotency-Key.


@routes.route("POST", "/lots/{lot_id}/bids", summary="Bid a maximum (proxy bidding); retry with the same client_id",
              request_schema=_BID_SCHEMA, responses={201: _RECEIPT_SCHEMA}, idempotent=False)
async def post_bid(request: Request) -> JSONResponse:
    data = await read_json(request)
    accepted = await place_bid(request, _path_int(request, "lot_id"), data.get("amount_won"), data.get("client_id"))
    return json_response(_accepted_json(accepted), 201)


@routes.route("POST", "/lots/{lot_id}/buy-now", summary="Buy the lot at its buy-now price (before the first bid)",
              request_schema=_BUY_NOW_SCHEMA, responses={201: _RECEIPT_SCHEMA}, idempotent=False)
async def post_buy_now(request: Request) -> JSONResponse:
    data = await read_json(request)
    accepted = await place_buy_now(request, _path_int(request, "lot_id"), data.get("client_id"))
    return json_response(_accepted_json(accepted), 201)


# -- creation ------------------------------------------------------------------------


@routes.route("POST", "/lots", summary="Create a lot (suppliers: own products; staff: any product)",
              request_schema=_CREATE_SCHEMA, responses={201: _LOT_SCHEMA})
async def post_lot(request: Request) -> JSONResponse:
    user = _require_lister(request)
    data = await read_json(request)
    parsed = read_lot_input(data)
    if parsed.errors:
        name, (code, detail) = next(iter(parsed.errors.items()))
        raise ApiError(code, **detail)
    state = request.app.state
    live = auction_live(request.app)
    try:
        lot_id = await create_lot(state.db, live, actor_of(user), parsed.draft())
    except DomainError as error:
        raise _domain(error) from None
    terms = await fetch_terms(state.db, lot_id)
    assert terms is not None
    return json_response(lot_json(terms, await live.snapshot(lot_id)), 201)


# -- staff ---------------------------------------------------------------------------


@routes.route("POST", "/lots/{lot_id}/cancel", summary="Staff: cancel a scheduled or open lot (audited)",
              responses={200: {"type": "object"}})
async def cancel(request: Request) -> JSONResponse:
    user = _require_staff(request)
    lot_id = _path_int(request, "lot_id")
    try:
        await staff_actions.cancel_lot(request.app.state.db, auction_live(request.app), actor_of(user), lot_id)
    except DomainError as error:
        raise _domain(error) from None
    return json_response({"lot_id": lot_id, "status": "cancelled"})


@routes.route("POST", "/lots/{lot_id}/extend", summary="Staff: move an open lot's end later (audited)",
              request_schema=_EXTEND_SCHEMA, responses={200: {"type": "object"}})
async def extend(request: Request) -> JSONResponse:
    user = _require_staff(request)
    lot_id = _path_int(request, "lot_id")
    data = await read_json(request)
    try:
        new_end: datetime = parse_datetime(data.get("end_at"))
    except (ValueError, TypeError):
        raise ApiError("invalid_datetime", field="end_at") from None
    try:
        seq = await staff_actions.extend_lot(
            request.app.state.db, auction_live(request.app), actor_of(user), lot_id, new_end
        )
    except DomainError as error:
        raise _domain(error) from None
    return json_response({"lot_id": lot_id, "seq": seq, "end_at": new_end.isoformat()})


@routes.route("POST", "/lots/{lot_id}/bids/{seq}/void",
              summary="Staff: void a bid; the price is recomputed from the remaining bids (audited)",
              responses={200: {"type": "object"}})
async def void(request: Request) -> JSONResponse:
    user = _require_staff(request)
    lot_id, seq = _path_int(request, "lot_id"), _path_int(request, "seq")
    try:
        event_seq = await staff_actions.void_bid(
            request.app.state.db, auction_live(request.app), actor_of(user), lot_id, seq
        )
    except DomainError as error:
        raise _domain(error) from None
    return json_response({"lot_id": lot_id, "voided_seq": seq, "seq": event_seq})


@routes.route("POST", "/lots/{lot_id}/second-chance",
              summary="Staff: offer an unpaid sold lot to the runner-up at their maximum (audited)",
              responses={201: {"type": "object"}})
async def second_chance(request: Request) -> JSONResponse:
    user = _require_staff(request)
    lot_id = _path_int(request, "lot_id")
    state = request.app.state
    try:
        offer_id = await staff_actions.second_chance_offer(state.db, state.settings, actor_of(user), lot_id)
    except DomainError as error:
        raise _domain(error) from None
    return json_response({"lot_id": lot_id, "offer_id": offer_id}, 201)


@routes.route("GET", "/orders/{order_id}/balance",
              summary="Staff: an order's amount, the up-front payments that count toward it and the transfer due",
              responses={200: _BALANCE_SCHEMA})
async def order_balance_json(request: Request) -> JSONResponse:
    _require_staff(request)
    order_id = _path_int(request, "order_id")
    balance = await order_balance(request.app.state.db, order_id)
    if balance is None:
        raise ApiError("order_not_found")
    return json_response({
        "order_id": balance.order_id, "order_no": balance.order_no, "channel": balance.channel,
        "status": balance.status, "amount_won": balance.amount_won, "prepaid_won": balance.prepaid_won,
        "due_won": balance.due_won, "deposit_won": balance.deposit_won,
        "payment_due_at": balance.payment_due_at.isoformat() if balance.payment_due_at else None,
    })


@routes.route("POST", "/orders/{order_id}/confirm-deposit",
              summary="Staff: mark a bank-transfer order paid after seeing the deposit (audited)",
              request_schema=_CONFIRM_DEPOSIT_SCHEMA, responses={200: _CONFIRMATION_SCHEMA})
async def confirm_order_deposit(request: Request) -> JSONResponse:
    user = _require_staff(request)
    order_id = _path_int(request, "order_id")
    data = await read_json(request) if await request.body() else {}
    deposit_won = None
    if data.get("deposit_won") is not None:
        try:
            deposit_won = parse_amount_won(data["deposit_won"])
        except InvalidAmount:
            raise ApiError("invalid_amount", field="deposit_won") from None
    try:
        confirmation = await confirm_deposit(request.app.state.db, actor_of(user), order_id, deposit_won=deposit_won)
    except DomainError as error:
        raise _domain(error) from None
    return json_response({"status": "paid", **asdict(confirmation)})

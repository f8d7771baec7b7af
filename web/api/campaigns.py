"""The group-buy API: campaigns, their live state, creation and cancel by staff, and the member's pledge.

A pledge states the member's new total: `units` is a JSON integer or a string of
plain ASCII digits, and 0 cancels. Floats, booleans, signs and separators are
rejected with 400 `invalid_units`. A pledge that does not fit is rejected whole,
with the units left in `error.detail`. Reads never show who pledged.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from engine.errors import DomainError
from engine.groupbuy import staff as campaign_staff
from engine.groupbuy.campaigns import create_campaign
from engine.groupbuy.closing import WAITING, CampaignCloseOutcome
from engine.groupbuy.live import CampaignSnapshot
from engine.groupbuy.rules import HELD
from web.api import ApiRoutes, json_response, read_json
from web.errors import ApiError
from web.live.bids import actor_of, api_error_for
from web.live.campaign_hub import campaign_live
from web.live.campaign_input import read_campaign_input, web_code
from web.live.campaign_views import (
    CampaignView,
    campaign_status,
    fetch_campaign,
    fetch_listed_campaigns,
    member_units,
    read_campaign_snapshot,
    read_campaign_snapshots,
)
from web.live.pledges import PledgeAccepted, place_pledge
from web.security import require_role, require_user

routes = ApiRoutes(tag="group buys")

LIST_LIMIT = 100
_require_staff = require_role("staff")

# -- schemas -------------------------------------------------------------------------

_UNITS_SCHEMA = {
    "oneOf": [
        {"type": "integer", "minimum": 0, "maximum": 100_000},
        {"type": "string", "pattern": "^[0-9]{1,6}$"},
    ],
    "description": "The member's new total in units: a JSON integer or ASCII digits; 0 cancels.",
}
_COUNT_SCHEMA = {"oneOf": [{"type": "integer", "minimum": 1, "maximum": 100_000},
                           {"type": "string", "pattern": "^[0-9]{1,6}$"}]}
_AMOUNT_SCHEMA = {"oneOf": [{"type": "integer", "minimum": 1}, {"type": "string", "pattern": "^[0-9]{1,11}$"}],
                  "description": "Whole won: a JSON integer or a string of ASCII digits."}
_CLIENT_ID_SCHEMA = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$",
                     "description": "One id per pledge attempt; resend the same id to retry safely."}
_LIVE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Counts in units, prices in won, times in epoch milliseconds (Redis time).",
    "properties": {
        "seq": {"type": "integer"}, "status": {"type": "string"},
        "committed_units": {"type": "integer"}, "participants": {"type": "integer"},
        "unit_price_won": {"type": "integer"}, "next_tier_units": {"type": ["integer", "null"]},
        "next_tier_price_won": {"type": ["integer", "null"]}, "units_to_next_tier": {"type": ["integer", "null"]},
        "units_to_minimum": {"type": "integer"}, "minimum_met": {"type": "boolean"},
        "stock_left": {"type": "integer"}, "sold_out": {"type": "boolean"},
        "at_most_price_won": {"type": "integer"}, "deadline_ms": {"type": "integer"},
        "start_ms": {"type": "integer"}, "server_ms": {"type": "integer"},
    },
}
_CAMPAIGN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "title": {"type": "string"}, "unit_label": {"type": "string"},
        "product": {"type": "object"}, "supplier": {"type": "object"},
        "list_price_won": {"type": "integer"},
        "tiers": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}},
                  "description": "[min_units, unit_price_won] pairs; thresholds are inclusive."},
        "min_total_units": {"type": "integer"}, "min_buyers": {"type": ["integer", "null"]},
        "stock_cap_units": {"type": "integer"}, "per_member_limit": {"type": "integer"},
        "start_at": {"type": "string", "format": "date-time"}, "deadline_at": {"type": "string", "format": "date-time"},
        "close_when_sold_out": {"type": "boolean"},
        "fulfilment": {"type": "string", "enum": ["delivery", "pickup"]}, "fulfilment_terms": {"type": "string"},
        "payment_timing": {"type": "string", "enum": ["after_success", "up_front"]},
        "payment_due_s": {"type": "integer"}, "hold_s": {"type": "integer"},
        "live": _LIVE_SCHEMA,
    },
}
_CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["product_id", "title", "list_price_won", "tiers", "min_total_units", "stock_cap_units",
                 "per_member_limit", "start_at", "deadline_at"],
    "properties": {
        "product_id": {"type": "integer", "description": "An approved product of an approved supplier."},
        "title": {"type": "string", "maxLength": 120}, "unit_label": {"type": "string", "maxLength": 40},
        "list_price_won": _AMOUNT_SCHEMA,
        "tiers": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2,
                                             "maxItems": 2},
                  "description": "[[min_units, unit_price_won], ...]: thresholds rise, prices fall, at most the list price."},
        "min_total_units": _COUNT_SCHEMA, "min_buyers": {"oneOf": [_COUNT_SCHEMA, {"type": "null"}]},
        "stock_cap_units": _COUNT_SCHEMA, "per_member_limit": _COUNT_SCHEMA,
        "start_at": {"type": "string", "description": "ISO 8601; without an offset it is Korea time."},
        "deadline_at": {"type": "string", "description": "ISO 8601; without an offset it is Korea time."},
        "close_when_sold_out": {"type": "boolean"},
        "fulfilment": {"type": "string", "enum": ["delivery", "pickup"]},
        "fulfilment_terms": {"type": "string", "maxLength": 2000},
        "payment_timing": {"type": "string", "enum": ["after_success", "up_front"]},
        "payment_due_s": {"type": "integer", "minimum": 60, "maximum": 2_592_000,
                          "description": "After success: seconds each order stays payable."},
        "hold_s": {"type": "integer", "minimum": 60, "maximum": 604_800,
                   "description": "Up front: seconds a bank-transfer pledge holds its units unpaid."},
    },
}
_PLEDGE_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["units", "client_id"],
    "properties": {"units": _UNITS_SCHEMA, "client_id": _CLIENT_ID_SCHEMA},
}
_MINE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "campaign_id": {"type": "integer"}, "units": {"type": "integer"},
        "per_member_limit": {"type": "integer"}, "units_allowed": {"type": "integer"},
        "pay_at_most_won": {"type": "integer", "description": "units × the price at the minimum total."},
    },
}
_RECEIPT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "receipt": {"type": "object", "properties": {
            "receipt_id": {"type": "string"}, "seq": {"type": "integer"}, "units": {"type": "integer"},
            "previous_units": {"type": "integer"}, "delta_units": {"type": "integer"},
            "committed_units": {"type": "integer"}, "unit_price_won": {"type": "integer"},
            "retry": {"type": "boolean"},
        }},
        "pay_at_most_won": {"type": "integer"},
        "payment_id": {"type": ["integer", "null"],
                       "description": "Up-front campaigns: the bank transfer recorded for the units this pledge added."},
        "live": _LIVE_SCHEMA,
    },
}

_CANCEL_SCHEMA: dict[str, Any] = {
    "type": "object", "required": ["reason"],
    "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": campaign_staff.MAX_REASON_CHARS,
                              "description": "Why staff cancel the group buy; quoted in the members' mails."}},
}
_CANCELLED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "campaign_id": {"type": "integer"},
        "status": {"type": "string", "enum": ["cancelled", "held"],
                   "description": "held: cancelled in the live state, but held for staff review because its "
                                  "pledge record does not add up; nothing is refunded yet."},
        "settled": {"type": "boolean",
                    "description": "false while the pledge record is behind: the worker refunds and mails later."},
    },
}

# -- shapes --------------------------------------------------------------------------


def live_json(snapshot: CampaignSnapshot) -> dict[str, Any]:
    data = asdict(snapshot)
    data["status"] = campaign_status(snapshot)
    return data


def campaign_json(view: CampaignView, snapshot: CampaignSnapshot | None) -> dict[str, Any]:
    return {
        "id": view.campaign_id,
        "title": view.title,
        "unit_label": view.unit_label,
        "product": {"id": view.product_id, "name": view.product_name, "unit": view.product_unit,
                    "origin_label": view.origin_label, "description": view.description},
        "supplier": {"id": view.supplier_id, "name": view.supplier_name, "kind": view.supplier_kind,
                     "is_local": view.supplier_is_local},
        "list_price_won": view.list_price_won,
        "tiers": [list(tier) for tier in view.tiers],
        "min_total_units": view.min_total_units,
        "min_buyers": view.min_buyers,
        "stock_cap_units": view.stock_cap_units,
        "per_member_limit": view.per_member_limit,
        "start_at": view.start_at.isoformat(),
        "deadline_at": view.deadline_at.isoformat(),
        "close_when_sold_out": view.close_when_sold_out,
        "fulfilment": view.fulfilment,
        "fulfilment_terms": view.fulfilment_terms,
        "payment_timing": view.payment_timing,
        "payment_due_s": view.payment_due_s,
        "hold_s": view.hold_s,
        "live": live_json(snapshot) if snapshot else None,
    }


def pledge_accepted_json(accepted: PledgeAccepted) -> dict[str, Any]:
    snapshot = accepted.snapshot
    pay_at_most = accepted.receipt.units * snapshot.at_most_price_won if snapshot else None
    return {
        "receipt": asdict(accepted.receipt),
        "pay_at_most_won": pay_at_most,
        "payment_id": accepted.payment_id,
        "live": live_json(snapshot) if snapshot else None,
    }


def cancel_json(outcome: CampaignCloseOutcome) -> dict[str, Any]:
    return {
        "campaign_id": outcome.campaign_id,
        "status": HELD if outcome.status == HELD else "cancelled",
        "settled": outcome.status != WAITING,
    }


def _campaign_id(request: Request) -> int:
    """Parse the campaign id of the path; anything but plain digits is 404."""
    value = request.path_params["campaign_id"]
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise ApiError("campaign_not_found")
    return int(value)


async def _view_or_404(request: Request) -> CampaignView:
    campaign_id = _campaign_id(request)
    view = await fetch_campaign(request.app.state.db, campaign_id)
    if view is None:
        raise ApiError("campaign_not_found", campaign_id=campaign_id)
    return view


# -- reads ---------------------------------------------------------------------------


@routes.route("GET", "/campaigns", summary="List running and upcoming group buys with their live state",
              responses={200: {"type": "object", "properties": {"campaigns": {"type": "array",
                                                                               "items": _CAMPAIGN_SCHEMA}}}})
async def list_campaigns(request: Request) -> JSONResponse:
    views = await fetch_listed_campaigns(request.app.state.db, limit=LIST_LIMIT)
    snapshots = await read_campaign_snapshots(campaign_live(request.app), [view.campaign_id for view in views])
    return json_response({"campaigns": [campaign_json(view, snapshots.get(view.campaign_id)) for view in views]})


@routes.route("GET", "/campaigns/{campaign_id}", summary="One group buy: its terms and live state",
              responses={200: _CAMPAIGN_SCHEMA})
async def get_campaign(request: Request) -> JSONResponse:
    view = await _view_or_404(request)
    snapshot = await read_campaign_snapshot(request.app.state.db, campaign_live(request.app), view.campaign_id)
    return json_response(campaign_json(view, snapshot))


@routes.route("GET", "/campaigns/{campaign_id}/pledges/mine", summary="The signed-in member's pledge",
              responses={200: _MINE_SCHEMA})
async def get_my_pledge(request: Request) -> JSONResponse:
    user = require_user(request)
    view = await _view_or_404(request)
    live = campaign_live(request.app)
    snapshot = await read_campaign_snapshot(request.app.state.db, live, view.campaign_id)
    units = await member_units(live, view.campaign_id, user.id)
    stock_left = snapshot.stock_left if snapshot else 0
    at_most = snapshot.at_most_price_won if snapshot else view.list_price_won
    return json_response({
        "campaign_id": view.campaign_id,
        "units": units,
        "per_member_limit": view.per_member_limit,
        "units_allowed": min(view.per_member_limit, units + stock_left),
        "pay_at_most_won": units * at_most,
    })


# -- pledging ------------------------------------------------------------------------


@routes.route("POST", "/campaigns/{campaign_id}/pledges",
              summary="Set the member's pledge to a new total (0 cancels); retry with the same client_id",
              request_schema=_PLEDGE_SCHEMA, responses={201: _RECEIPT_SCHEMA})
async def post_pledge(request: Request) -> JSONResponse:
    data = await read_json(request)
    accepted = await place_pledge(request, _campaign_id(request), data.get("units"), data.get("client_id"))
    return json_response(pledge_accepted_json(accepted), 201)


@routes.route("DELETE", "/campaigns/{campaign_id}/pledges/mine",
              summary="Cancel the member's pledge (a pledge of 0 units); an optional body {client_id} makes retries safe",
              responses={200: _RECEIPT_SCHEMA})
async def delete_my_pledge(request: Request) -> JSONResponse:
    # The body is optional: without a client id the cancellation gets a fresh one,
    # and sending it again is rejected with `no_pledge` instead of a second receipt.
    data = await read_json(request) if await request.body() else {"client_id": secrets.token_urlsafe(16)}
    accepted = await place_pledge(request, _campaign_id(request), 0, data.get("client_id"))
    return json_response(pledge_accepted_json(accepted))


# -- creation ------------------------------------------------------------------------


@routes.route("POST", "/campaigns", summary="Staff: create a group buy from an approved product (audited)",
              request_schema=_CREATE_SCHEMA, responses={201: _CAMPAIGN_SCHEMA})
async def post_campaign(request: Request) -> JSONResponse:
    user = _require_staff(request)
    data = await read_json(request)
    parsed = read_campaign_input(data)
    if parsed.errors:
        _name, (code, detail) = next(iter(parsed.errors.items()))
        raise ApiError(code, **detail)
    state = request.app.state
    live = campaign_live(request.app)
    try:
        campaign_id = await create_campaign(state.db, live, actor_of(user), parsed.draft())
    except DomainError as error:
        raise api_error_for(web_code(error.code), error.detail) from None
    view = await fetch_campaign(state.db, campaign_id)
    if view is None:
        raise ApiError("campaign_not_found", campaign_id=campaign_id)
    return json_response(campaign_json(view, await live.snapshot(campaign_id)), 201)


@routes.route("POST", "/campaigns/{campaign_id}/cancel",
              summary="Staff: cancel a scheduled or open group buy; every pledge is released and every up-front "
                      "payment refunded (audited)",
              request_schema=_CANCEL_SCHEMA, responses={200: _CANCELLED_SCHEMA})
async def cancel_campaign(request: Request) -> JSONResponse:
    user = _require_staff(request)
    campaign_id = _campaign_id(request)
    data = await read_json(request)
    try:
        outcome = await campaign_staff.cancel_campaign(
            request.app.state.db, campaign_live(request.app), actor_of(user), campaign_id, data.get("reason")
        )
    except DomainError as error:
        raise api_error_for(error.code, error.detail) from None
    return json_response(cancel_json(outcome))

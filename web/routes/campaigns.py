"""Group-buy pages: the list of campaigns, one campaign's live page, pledging, and staff creation.

Pledges are posted over HTTP (htmx `hx-post`), never over the websocket, so a
pledge typed while the page was offline is not queued and sent later at a price
the member never saw. The response is a result fragment. A page without JavaScript
gets the whole campaign page back with the result in it.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.errors import DomainError
from engine.groupbuy.campaigns import create_campaign
from engine.groupbuy.live import CampaignSnapshot
from web.errors import ApiError
from web.i18n import KST, gettext
from web.live.bids import actor_of, api_error_for
from web.live.campaign_hub import campaign_live
from web.live.campaign_input import ERROR_FIELDS, read_campaign_input, web_code
from web.live.campaign_views import (
    CampaignView,
    fetch_campaign,
    fetch_listed_campaigns,
    member_units,
    read_campaign_snapshot,
    read_campaign_snapshots,
    state_context,
)
from web.live.pledges import PledgeAccepted, place_pledge
from web.routes.staff import with_live_statuses
from web.security import require_role
from web.sessions import CurrentUser

LIST_LIMIT = 100
SECONDS_PER_HOUR = 3600
_require_staff = require_role("staff")

FORM_FIELDS = (
    "product_id", "title", "unit_label", "list_price_won", "tiers", "min_total_units", "min_buyers",
    "stock_cap_units", "per_member_limit", "start_at", "deadline_at", "close_when_sold_out", "fulfilment",
    "fulfilment_terms", "payment_timing", "payment_due_hours", "hold_hours",
)
# Codes whose message is about the units a member may pledge: the pledge form keeps what they typed.
_KEEP_UNITS = frozenset({"over_stock", "over_member_limit", "sold_out", "pledge_not_confirmed", "invalid_units"})


def new_client_id() -> str:
    """Generate a fresh id for one pledge attempt (retries of the same attempt reuse it)."""
    return secrets.token_urlsafe(16)


def pledge_block_reason(user: CurrentUser | None, view: CampaignView) -> str | None:
    """Why this user sees no pledge form (None: they may pledge)."""
    if user is None:
        return "login"
    if not user.is_active:
        return "suspended"
    if user.is_staff:
        return "staff"
    if user.is_supplier and user.supplier_id == view.supplier_id:
        return "own_goods"
    return None


# -- public pages ----------------------------------------------------------------------


async def campaign_list(request: Request) -> Response:
    state = request.app.state
    views = await fetch_listed_campaigns(state.db, limit=LIST_LIMIT)
    snapshots = await read_campaign_snapshots(campaign_live(request.app), [view.campaign_id for view in views])
    campaigns = [
        state_context(snapshots[view.campaign_id], view) for view in views if view.campaign_id in snapshots
    ]
    return state.templates.TemplateResponse(request, "campaigns/list.html", {"campaigns": campaigns})


async def _detail_context(request: Request, campaign_id: int) -> dict[str, Any]:
    state = request.app.state
    view = await fetch_campaign(state.db, campaign_id)
    if view is None:
        raise ApiError("campaign_not_found", campaign_id=campaign_id)
    live = campaign_live(request.app)
    snapshot = await read_campaign_snapshot(state.db, live, campaign_id)
    if snapshot is None:
        raise ApiError("campaign_not_found", campaign_id=campaign_id)
    user: CurrentUser | None = getattr(request.state, "user", None)
    return {
        **state_context(snapshot, view),
        "oob": False,
        "mine_units": await member_units(live, campaign_id, user.id if user else None),
        "block_reason": pledge_block_reason(user, view),
        "client_id": new_client_id(),
        "cancel_client_id": new_client_id(),
        "units_value": "",
    }


async def campaign_detail(request: Request) -> Response:
    campaign_id = request.path_params["campaign_id"]
    context = await _detail_context(request, campaign_id)
    return request.app.state.templates.TemplateResponse(request, "campaigns/detail.html", context)


async def post_pledge(request: Request) -> Response:
    campaign_id = request.path_params["campaign_id"]
    form = await request.form()
    units = str(form.get("units", ""))
    client_id = str(form.get("client_id", ""))
    try:
        accepted = await place_pledge(request, campaign_id, units, client_id)
    except ApiError as error:
        if error.status == 401:
            raise
        return await _result(request, campaign_id, error=error, client_id=client_id, units=units)
    return await _result(request, campaign_id, accepted=accepted, client_id=client_id, units=units)


async def _result(
    request: Request,
    campaign_id: int,
    *,
    client_id: str,
    units: str,
    accepted: PledgeAccepted | None = None,
    error: ApiError | None = None,
) -> Response:
    """Render a pledge's result: a fragment for htmx, else the whole page with the result."""
    templates = request.app.state.templates
    locale = getattr(request.state, "locale", "ko")
    status_code = error.status if error else 200

    # A pledge that was not confirmed keeps its client id, so sending it again is a
    # retry of the same attempt. Any other result ends the attempt.
    retry = error is not None and error.code == "pledge_not_confirmed"
    next_client_id = client_id if retry else new_client_id()

    snapshot: CampaignSnapshot | None = accepted.snapshot if accepted else None
    view = await fetch_campaign(request.app.state.db, campaign_id)
    if view is None:
        raise ApiError("campaign_not_found", campaign_id=campaign_id)
    live = campaign_live(request.app)
    if snapshot is None:
        snapshot = await live.snapshot(campaign_id)
    user = getattr(request.state, "user", None)
    mine = accepted.receipt.units if accepted else await member_units(live, campaign_id, user.id if user else None)
    result = {
        "campaign_id": campaign_id,
        "receipt": accepted.receipt if accepted else None,
        "pay_at_most_won": accepted.receipt.units * snapshot.at_most_price_won if accepted and snapshot else None,
        "payment_id": accepted.payment_id if accepted else None,
        "payment_won": accepted.payment_won if accepted else None,
        "error_code": error.code if error else None,
        "error_message": error.message(locale) if error else None,
        "next_client_id": next_client_id,
    }

    units_value = units if error is not None and error.code in _KEEP_UNITS else ""
    if request.headers.get("hx-request") == "true":
        context: dict[str, Any] = {
            "result": result, "oob": True, "campaign_id": campaign_id, "campaign": view,
            "mine_units": mine, "cancel_client_id": new_client_id(), "has_state": snapshot is not None,
        }
        if snapshot is not None:
            context.update(state_context(snapshot, view))
        return templates.TemplateResponse(request, "campaigns/_pledge_result.html", context, status_code=status_code)
    page = await _detail_context(request, campaign_id)
    page.update(result=result, client_id=next_client_id, units_value=units_value)
    return templates.TemplateResponse(request, "campaigns/detail.html", page, status_code=status_code)


# -- staff: creating a campaign ----------------------------------------------------------


def _form_data(values: dict[str, str]) -> dict[str, Any]:
    """Turn the form's hour fields into the API's seconds; anything else is passed as typed."""
    data: dict[str, Any] = dict(values)
    for hours_name, seconds_name in (("payment_due_hours", "payment_due_s"), ("hold_hours", "hold_s")):
        raw = values.get(hours_name, "").strip()
        data[seconds_name] = str(int(raw) * SECONDS_PER_HOUR) if raw.isascii() and raw.isdigit() and len(raw) < 7 else raw
    return data


async def _staff_page(request: Request, *, values: dict[str, str], errors: dict[str, str],
                      status_code: int = 200) -> Response:
    _require_staff(request)
    state = request.app.state
    products = await state.db.fetch(
        "SELECT p.id, p.name, p.unit, p.origin_label, p.price_won, s.name AS supplier_name"
        " FROM products p JOIN suppliers s ON s.id = p.supplier_id"
        " WHERE p.status = 'approved' AND s.status = 'approved' ORDER BY s.name, p.name LIMIT 500"
    )
    views = await fetch_listed_campaigns(state.db, statuses=("scheduled", "open", "closing", "held"), limit=200)
    views = await with_live_statuses(campaign_live(request.app), views)
    context = {"products": products, "values": values, "errors": errors, "campaigns": views}
    return state.templates.TemplateResponse(request, "campaigns/staff.html", context, status_code=status_code)


async def staff_campaigns(request: Request) -> Response:
    now = datetime.now(timezone.utc).astimezone(KST).replace(second=0, microsecond=0)
    values = {
        "start_at": now.strftime("%Y-%m-%dT%H:%M"),
        "deadline_at": (now + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"),
        "fulfilment": "delivery", "payment_timing": "after_success",
        "payment_due_hours": "48", "hold_hours": "24", "per_member_limit": "10",
    }
    return await _staff_page(request, values=values, errors={})


async def staff_create(request: Request) -> Response:
    user = _require_staff(request)
    form = await request.form()
    values = {name: str(form.get(name, "")) for name in FORM_FIELDS}
    locale = getattr(request.state, "locale", "ko")
    parsed = read_campaign_input(_form_data(values))
    errors: dict[str, str] = {}
    for name, (code, detail) in parsed.errors.items():
        errors[_form_field(name)] = api_error_for(code, detail).message(locale)
    if not errors:
        try:
            campaign_id = await create_campaign(
                request.app.state.db, campaign_live(request.app), actor_of(user), parsed.draft()
            )
        except DomainError as error:
            name = _form_field(str(error.detail.get("field") or ERROR_FIELDS.get(error.code, "form")))
            errors[name] = api_error_for(web_code(error.code), error.detail).message(locale)
        else:
            return RedirectResponse(f"/campaigns/{campaign_id}", status_code=303)
    errors.setdefault("form", gettext(locale, "Some fields are invalid. Please check them and try again."))
    return await _staff_page(request, values=values, errors=errors, status_code=422)


def _form_field(name: str) -> str:
    return {"payment_due_s": "payment_due_hours", "hold_s": "hold_hours"}.get(name, name)


routes = [
    Route("/campaigns", campaign_list, methods=["GET"], name="campaign_list"),
    Route("/campaigns/{campaign_id:int}", campaign_detail, methods=["GET"], name="campaign_detail"),
    Route("/campaigns/{campaign_id:int}/pledges", post_pledge, methods=["POST"], name="campaign_pledge"),
    Route("/staff/campaigns", staff_campaigns, methods=["GET"], name="staff_campaigns"),
    Route("/staff/campaigns", staff_create, methods=["POST"], name="staff_campaign_create"),
]

"""The staff console: running lots updating live, and the staff actions on lots and group buys.

Every action is a POST with the CSRF token (htmx sends it from `<body hx-headers>`),
runs the engine's staff function (which audits it) and returns a result fragment.
The group-buy cancel also works as a plain form: it then redirects to the campaign
page, or shows the error page.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.auction import staff as staff_actions
from engine.errors import DomainError
from engine.groupbuy import staff as campaign_staff
from engine.groupbuy.closing import CampaignCloseOutcome
from engine.groupbuy.live import CampaignLive
from engine.groupbuy.rules import CANCELLED, HELD, OPEN
from web import ids  # noqa: F401  (registers the {lot_id:id} convertor used below)
from web.errors import ApiError
from web.i18n import gettext
from web.live import auction_live
from web.live.bids import actor_of, api_error_for
from web.live.campaign_hub import campaign_live
from web.live.campaign_views import CampaignView, fetch_campaign
from web.live.lot_input import parse_datetime
from web.security import require_role, role_required

log = logging.getLogger("jangteo.web.staff")

_require_staff = require_role("staff")


@role_required("staff")
async def console(request: Request) -> Response:
    # The rows arrive with the websocket's first message; the page renders an empty body.
    return request.app.state.templates.TemplateResponse(
        request, "staff/console.html", {"rows": [], "oob": False}
    )


def _answer(request: Request, *, message: str = "", error: ApiError | None = None) -> Response:
    locale = getattr(request.state, "locale", "ko")
    context: dict[str, Any] = {
        "message": message,
        "error_code": error.code if error else None,
        "error_message": error.message(locale) if error else None,
    }
    return request.app.state.templates.TemplateResponse(
        request, "staff/_action_result.html", context, status_code=error.status if error else 200
    )


async def _run(request: Request, action: str) -> Response:
    user = _require_staff(request)
    lot_id = request.path_params["lot_id"]
    form = await request.form()
    state = request.app.state
    live = auction_live(request.app)
    actor = actor_of(user)
    locale = getattr(request.state, "locale", "ko")
    try:
        if action == "cancel":
            await staff_actions.cancel_lot(state.db, live, actor, lot_id)
            message = gettext(locale, "Lot #%(id)s was cancelled.") % {"id": lot_id}
        elif action == "extend":
            try:
                new_end = parse_datetime(form.get("end_at"))
            except (ValueError, TypeError):
                return _answer(request, error=ApiError("invalid_datetime", field="end_at"))
            await staff_actions.extend_lot(state.db, live, actor, lot_id, new_end)
            message = gettext(locale, "Lot #%(id)s now ends later.") % {"id": lot_id}
        else:
            raw_seq = str(form.get("seq", "")).strip()
            if not (raw_seq.isascii() and raw_seq.isdigit()) or len(raw_seq) > 12:
                return _answer(request, error=ApiError("bid_not_found"))
            await staff_actions.void_bid(state.db, live, actor, lot_id, int(raw_seq))
            message = gettext(locale, "Bid no. %(seq)s of lot #%(id)s was voided.") % {"seq": raw_seq, "id": lot_id}
    except DomainError as error:
        return _answer(request, error=api_error_for(error.code, error.detail))
    return _answer(request, message=message)


async def cancel(request: Request) -> Response:
    return await _run(request, "cancel")


async def extend(request: Request) -> Response:
    return await _run(request, "extend")


async def void(request: Request) -> Response:
    return await _run(request, "void")


async def cancel_campaign(request: Request) -> Response:
    user = _require_staff(request)
    campaign_id = request.path_params["campaign_id"]
    form = await request.form()
    state = request.app.state
    locale = getattr(request.state, "locale", "ko")
    htmx = request.headers.get("hx-request") == "true"
    try:
        outcome = await campaign_staff.cancel_campaign(
            state.db, campaign_live(request.app), actor_of(user), campaign_id, str(form.get("reason", ""))
        )
    except DomainError as error:
        api_error = api_error_for(error.code, error.detail)
        if not htmx:
            raise api_error from None
        return _answer(request, error=api_error)
    if not htmx:
        return RedirectResponse(f"/campaigns/{campaign_id}", status_code=303)
    return await _render_cancel_result(request, outcome, cancel_message(locale, outcome))


async def _render_cancel_result(request: Request, outcome: CampaignCloseOutcome, message: str) -> Response:
    """Render the result line, and the campaign's row out of band with its new status and no cancel form."""
    view = await fetch_campaign(request.app.state.db, outcome.campaign_id)
    if view is not None:
        [view] = await with_live_statuses(campaign_live(request.app), [view])
    context = {"message": message, "error_code": None, "error_message": None, "campaign": view}
    return request.app.state.templates.TemplateResponse(request, "campaigns/_staff_cancel_result.html", context)


async def with_live_statuses(live: CampaignLive, views: list[CampaignView]) -> list[CampaignView]:
    """Replace the stored status of each scheduled or open campaign with its Redis status, read in one pipeline.

    Redis changes first and PostgreSQL follows. A cancel whose settlement waits for the
    ledger, or a close the closer began, leaves the campaign open in PostgreSQL while
    Redis already rejects its pledges and cancels, so its row shows cancelled or closing
    and no cancel form. A campaign missing in Redis keeps its stored status.
    """
    cancellable_ids = [view.campaign_id for view in views if view.status in campaign_staff.CANCELLABLE_STATUSES]
    if not cancellable_ids:
        return views
    pipe = live.redis.pipeline(transaction=False)
    for campaign_id in cancellable_ids:
        pipe.hget(live.keys.campaign_state(campaign_id), "status")
    replies = await pipe.execute()
    live_statuses = {
        campaign_id: reply.decode() if isinstance(reply, bytes) else reply
        for campaign_id, reply in zip(cancellable_ids, replies, strict=True)
        if reply is not None
    }
    rows = []
    for view in views:
        live_status = live_statuses.get(view.campaign_id, OPEN)
        # Redis keeps "open" for a campaign that has not started, so "open" there
        # leaves a stored "scheduled" as it is.
        if live_status != OPEN:
            view = dataclasses.replace(view, status=live_status)
        rows.append(view)
    return rows


def cancel_message(locale: str, outcome: CampaignCloseOutcome) -> str:
    """Return the staff's result line for a campaign cancel."""
    values = {"id": outcome.campaign_id}
    if outcome.status == HELD:
        return gettext(locale, "Group buy #%(id)s was cancelled, but it is held for review because its pledge "
                               "record does not add up. Nothing was refunded yet.") % values
    if outcome.status == CANCELLED:
        return gettext(locale, "Group buy #%(id)s was cancelled. Every pledge is released, and up-front payments "
                               "are refunded in full.") % values
    return gettext(locale, "Group buy #%(id)s was cancelled. Refunds and mails follow once the pledge record "
                           "has caught up.") % values


routes = [
    Route("/staff", console, methods=["GET"], name="staff_console"),
    Route("/staff/lots/{lot_id:id}/cancel", cancel, methods=["POST"], name="staff_cancel"),
    Route("/staff/lots/{lot_id:id}/extend", extend, methods=["POST"], name="staff_extend"),
    Route("/staff/lots/{lot_id:id}/void", void, methods=["POST"], name="staff_void"),
    Route("/staff/campaigns/{campaign_id:int}/cancel", cancel_campaign, methods=["POST"],
          name="staff_campaign_cancel"),
]

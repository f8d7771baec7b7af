"""Complex-order pages: opening, the share link and join form, the coordinator's live roster,
pick lists, the delivery sheet (printable and CSV), the handover check-off and the staff role form.

Every form posts with the CSRF token. Pages re-use the API's helpers, so access
rules are the same: neighbours see masked households only, the roster and every
action belong to the order's coordinator and staff.
"""

from __future__ import annotations

import logging
from typing import Any

import segno
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from engine.complexorders import closing, messages, rules, service
from engine.complexorders.model import ComplexOrder, fetch_complex_by_code, fetch_roster, totals_of
from engine.errors import DomainError
from web.sessions import revoke_user_sessions
from web.api.complex import (
    complex_json,
    domain_error,
    is_manager,
    load_managed,
    parse_refund,
    participation_services,
    path_id,
    share_url,
)
from web.errors import ApiError
from web.live import complex_roster
from web.live.bids import actor_of
from web.security import require_role, require_user

log = logging.getLogger("jangteo.web.complex")

_require_staff = require_role("staff")
_require_coordinator = require_role("coordinator")
PRODUCT_CHOICES = 200


def _render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> Response:
    return request.app.state.templates.TemplateResponse(request, name, context, status_code=status_code)


def _locale(request: Request) -> str:
    return getattr(request.state, "locale", "ko")


def qr_svg(url: str, title: str) -> str:
    """Render the share link as an inline SVG QR code (segno, error correction M)."""
    return segno.make(url, error="m").svg_inline(scale=4, border=2, title=title, svgclass="complex-qr__code")


# -- the hub page and the join-by-code form ------------------------------------------


async def index(request: Request) -> Response:
    user = require_user(request)
    db = request.app.state.db
    coordinating = await db.fetch(
        "SELECT id, code, complex_name, status, closes_at FROM complex_orders WHERE coordinator_id = $1"
        " ORDER BY id DESC LIMIT 100", user.id,
    )
    joined = await db.fetch(
        """SELECT c.id, c.code, c.complex_name, c.status, c.closes_at FROM complex_orders c
           JOIN complex_participants p ON p.complex_order_id = c.id WHERE p.user_id = $1
           ORDER BY c.id DESC LIMIT 100""", user.id,
    )
    code_error = None
    raw_code = request.query_params.get("code")
    if raw_code is not None:
        code = rules.normalize_code(raw_code)
        if code is not None and await db.fetchval("SELECT 1 FROM complex_orders WHERE code = $1", code):
            return RedirectResponse(f"/c/{code}", status_code=303)
        code_error = ApiError("complex_not_found").message(_locale(request))
    return _render(request, "complex/index.html",
                   {"coordinating": coordinating, "joined": joined, "code_error": code_error})


# -- opening ---------------------------------------------------------------------------


async def _products(request: Request) -> list[Any]:
    return await request.app.state.db.fetch(
        """SELECT p.id, p.name, p.unit, p.price_won, s.name AS supplier_name
           FROM products p JOIN suppliers s ON s.id = p.supplier_id
           WHERE p.status = 'approved' AND s.status = 'approved' ORDER BY s.name, p.name, p.id LIMIT $1""",
        PRODUCT_CHOICES,
    )


async def _campaigns(request: Request) -> list[Any]:
    """Running campaigns a complex order may offer: open and before their deadline."""
    return await request.app.state.db.fetch(
        """SELECT c.id, c.title, c.unit_label, c.deadline_at, c.list_price_won, p.name AS product_name,
                  s.name AS supplier_name
           FROM campaigns c JOIN products p ON p.id = c.product_id JOIN suppliers s ON s.id = c.supplier_id
           WHERE c.status = 'open' AND c.deadline_at > now() ORDER BY c.deadline_at, c.id LIMIT $1""",
        PRODUCT_CHOICES,
    )


async def _new_page(request: Request, *, values: dict[str, str], error: str | None = None,
                    checked: set[str] | None = None, status_code: int = 200) -> Response:
    return _render(request, "complex/new.html", {
        "products": await _products(request), "campaigns": await _campaigns(request), "values": values,
        "error": error, "checked": checked or set(),
    }, status_code=status_code)


async def new_form(request: Request) -> Response:
    _require_coordinator(request)
    return await _new_page(request, values={})


async def create(request: Request) -> Response:
    user = _require_coordinator(request)
    form = await request.form()
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    items = []
    for product_id in form.getlist("product_id"):
        items.append({"product_id": product_id, "per_household_limit": values.get(f"limit_{product_id}", "")})
    for campaign_id in form.getlist("campaign_id"):
        items.append({"campaign_id": campaign_id,
                      "per_household_limit": values.get(f"campaign_limit_{campaign_id}", "")})
    data: dict[str, Any] = {**values, "items": items}
    try:
        complex_order = await service.create_complex_order(request.app.state.db, actor_of(user),
                                                           service.parse_draft(data))
    except DomainError as error:
        api_error = domain_error(error)
        checked = {f"p{value}" for value in form.getlist("product_id")}
        checked |= {f"c{value}" for value in form.getlist("campaign_id")}
        return await _new_page(request, values=values, error=api_error.message(_locale(request)), checked=checked,
                               status_code=422)
    return RedirectResponse(f"/complex/{complex_order.id}", status_code=303)


# -- the share link: join and change ---------------------------------------------------


async def _by_code(request: Request) -> ComplexOrder:
    code = rules.normalize_code(request.path_params["code"])
    complex_order = await fetch_complex_by_code(request.app.state.db, code) if code else None
    if complex_order is None:
        raise ApiError("complex_not_found")
    return complex_order


async def _join_page(request: Request, complex_order: ComplexOrder, *, error: str | None = None,
                     values: dict[str, str] | None = None, message: str | None = None,
                     status_code: int = 200) -> Response:
    user = require_user(request)
    roster = await fetch_roster(request.app.state.db, complex_order)
    view = complex_json(request, complex_order, roster, user)
    return _render(request, "complex/join.html", {
        "order": complex_order, "view": view, "mine": view["my_participation"], "error": error,
        "values": values or {}, "message": message, "is_manager": is_manager(user, complex_order),
        "apartment": complex_order.kind == rules.APARTMENT,
    }, status_code=status_code)


async def join_page(request: Request) -> Response:
    return await _join_page(request, await _by_code(request))


async def join_submit(request: Request) -> Response:
    user = require_user(request)
    complex_order = await _by_code(request)
    form = await request.form()
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    try:
        quantities = {
            item.id: rules.parse_count(values.get(f"qty_{item.id}", "0").strip() or "0", "quantity",
                                       maximum=item.per_household_limit)
            for item in complex_order.items
        }
        await service.submit_participation(
            request.app.state.db, actor_of(user), complex_order.id, quantities=quantities,
            building=values.get("building"), unit=values.get("unit"), phone=values.get("phone"),
            **participation_services(request),
        )
    except DomainError as error:
        api_error = domain_error(error)
        return await _join_page(request, complex_order, error=api_error.message(_locale(request)), values=values,
                                status_code=api_error.status)
    return RedirectResponse(f"/c/{complex_order.code}?saved=1", status_code=303)


async def qr_code(request: Request) -> Response:
    complex_order = await _by_code(request)
    svg = segno.make(share_url(request, complex_order), error="m").svg_inline(scale=6, border=2)
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=3600"})


# -- the coordinator's pages -----------------------------------------------------------


async def manage(request: Request) -> Response:
    _, complex_order = await load_managed(request, path_id(request, "complex_order_id"))
    roster = await fetch_roster(request.app.state.db, complex_order)
    url = share_url(request, complex_order)
    return _render(request, "complex/manage.html", {
        "order": complex_order, "roster": roster, "totals": totals_of(complex_order, roster), "oob": False,
        "share_url": url, "qr_svg": qr_svg(url, complex_order.complex_name),
        "apartment": complex_order.kind == rules.APARTMENT, "result": request.query_params.get("result"),
        "message_error": None, "message_values": {},
    })


async def pick_list_page(request: Request) -> Response:
    _, complex_order = await load_managed(request, path_id(request, "complex_order_id"))
    roster = await fetch_roster(request.app.state.db, complex_order)
    return _render(request, "complex/pick_list.html",
                   {"order": complex_order, "picks": closing.pick_lists(complex_order, roster)})


async def delivery_sheet_page(request: Request) -> Response:
    _, complex_order = await load_managed(request, path_id(request, "complex_order_id"))
    roster = await fetch_roster(request.app.state.db, complex_order)
    buildings = closing.delivery_sheet(complex_order, roster)
    shipment = await request.app.state.db.fetchrow(
        "SELECT fee_won, waived FROM complex_shipments WHERE complex_order_id = $1", complex_order.id
    )
    return _render(request, "complex/delivery_sheet.html", {
        "order": complex_order, "buildings": buildings, "shipment": shipment,
        "apartment": complex_order.kind == rules.APARTMENT,
        "grand_units": sum(building.units for building in buildings),
        "grand_won": sum(building.amount_won for building in buildings),
    })


async def delivery_sheet_csv(request: Request) -> Response:
    _, complex_order = await load_managed(request, path_id(request, "complex_order_id"))
    roster = await fetch_roster(request.app.state.db, complex_order)
    content = closing.delivery_sheet_csv(complex_order, closing.delivery_sheet(complex_order, roster))
    filename = f"delivery-sheet-{complex_order.code}.csv"
    return Response(content, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


async def handover_page(request: Request) -> Response:
    _, complex_order = await load_managed(request, path_id(request, "complex_order_id"))
    roster = await fetch_roster(request.app.state.db, complex_order)
    return _render(request, "complex/handover.html", {
        "order": complex_order, "buildings": closing.delivery_sheet(complex_order, roster),
        "apartment": complex_order.kind == rules.APARTMENT,
    })


async def handover_tick(request: Request) -> Response:
    user, complex_order = await load_managed(request, path_id(request, "complex_order_id"))
    household_id = path_id(request, "household_id", "household_not_found")
    form = await request.form()
    handed_over = form.get("handed_over") == "1"
    try:
        await closing.set_handed_over(request.app.state.db, actor_of(user), complex_order.id, household_id,
                                      handed_over, redis=request.app.state.redis, keys=request.app.state.keys)
    except DomainError as error:
        raise domain_error(error) from None
    if request.headers.get("hx-request") == "true":
        return _render(request, "complex/_handover_button.html",
                       {"order": complex_order, "household_id": household_id, "handed_over": handed_over})
    return RedirectResponse(f"/complex/{complex_order.id}/handover#household-{household_id}", status_code=303)


async def _action(request: Request, action: str) -> Response:
    user, complex_order = await load_managed(request, path_id(request, "complex_order_id"))
    state = request.app.state
    publisher = {"redis": state.redis, "keys": state.keys}
    try:
        if action == "close":
            await closing.close_complex_order(state.db, complex_order.id, actor=actor_of(user),
                                              payment_due_s=state.settings.payment_due_s, **publisher)
        elif action == "arrived":
            await closing.mark_arrived(state.db, actor_of(user), complex_order.id, **publisher)
        else:
            form = await request.form()
            await closing.refund_shortage(state.db, actor_of(user), complex_order.id,
                                          **parse_refund({key: value for key, value in form.items()}), **publisher)
    except DomainError as error:
        raise domain_error(error) from None
    return RedirectResponse(f"/complex/{complex_order.id}?result={action}", status_code=303)


async def close(request: Request) -> Response:
    return await _action(request, "close")


async def send_message(request: Request) -> Response:
    """Send the roster page's message form; a rejected message re-renders the page with the error."""
    user, complex_order = await load_managed(request, path_id(request, "complex_order_id"))
    form = await request.form()
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    try:
        await messages.send_message(request.app.state.db, actor_of(user), complex_order.id,
                                    subject=values.get("subject", ""), body=values.get("body", ""))
    except DomainError as error:
        api_error = domain_error(error)
        roster = await fetch_roster(request.app.state.db, complex_order)
        url = share_url(request, complex_order)
        return _render(request, "complex/manage.html", {
            "order": complex_order, "roster": roster, "totals": totals_of(complex_order, roster), "oob": False,
            "share_url": url, "qr_svg": qr_svg(url, complex_order.complex_name),
            "apartment": complex_order.kind == rules.APARTMENT, "result": None,
            "message_error": api_error.message(_locale(request)), "message_values": values,
        }, status_code=api_error.status)
    return RedirectResponse(f"/complex/{complex_order.id}?result=message#complex-message-heading", status_code=303)


async def arrived(request: Request) -> Response:
    return await _action(request, "arrived")


async def refund(request: Request) -> Response:
    return await _action(request, "refund")


# -- staff: the coordinator role ------------------------------------------------------


async def coordinators_page(request: Request) -> Response:
    _require_staff(request)
    return await _coordinators(request)


async def _coordinators(request: Request, *, message: str | None = None, error: str | None = None,
                        status_code: int = 200) -> Response:
    rows = await request.app.state.db.fetch(
        "SELECT id, email, display_name FROM users WHERE role = 'coordinator' ORDER BY id DESC LIMIT 200"
    )
    return _render(request, "complex/coordinators.html",
                   {"coordinators": rows, "message": message, "error": error}, status_code=status_code)


async def coordinators_submit(request: Request) -> Response:
    user = _require_staff(request)
    form = await request.form()
    email = str(form.get("email", "")).strip()
    role = str(form.get("role", "coordinator"))
    user_id = await request.app.state.db.fetchval("SELECT id FROM users WHERE lower(email) = lower($1)", email)
    try:
        if user_id is None:
            raise DomainError("user_not_found", "no user with this email")
        await service.set_role(request.app.state.db, actor_of(user), user_id, role)
    except DomainError as error:
        api_error = domain_error(error)
        return await _coordinators(request, error=api_error.message(_locale(request)), status_code=api_error.status)
    # The sessions cache the role; ending them makes the change apply at once.
    await revoke_user_sessions(request.app.state.redis, request.app.state.keys, user_id)
    return await _coordinators(request, message=email)


routes: list[BaseRoute] = [
    Route("/complex", index, methods=["GET"], name="complex_index"),
    Route("/complex/new", new_form, methods=["GET"], name="complex_new"),
    Route("/complex/new", create, methods=["POST"], name="complex_create"),
    Route("/c/{code}", join_page, methods=["GET"], name="complex_join"),
    Route("/c/{code}", join_submit, methods=["POST"], name="complex_join_submit"),
    Route("/c/{code}/qr.svg", qr_code, methods=["GET"], name="complex_qr"),
    Route("/complex/{complex_order_id}", manage, methods=["GET"], name="complex_manage"),
    Route("/complex/{complex_order_id}/close", close, methods=["POST"], name="complex_close"),
    Route("/complex/{complex_order_id}/arrived", arrived, methods=["POST"], name="complex_arrived"),
    Route("/complex/{complex_order_id}/refunds", refund, methods=["POST"], name="complex_refund"),
    Route("/complex/{complex_order_id}/messages", send_message, methods=["POST"], name="complex_message"),
    Route("/complex/{complex_order_id}/pick-list", pick_list_page, methods=["GET"], name="complex_pick_list"),
    Route("/complex/{complex_order_id}/delivery-sheet", delivery_sheet_page, methods=["GET"],
          name="complex_delivery_sheet"),
    Route("/complex/{complex_order_id}/delivery-sheet.csv", delivery_sheet_csv, methods=["GET"],
          name="complex_delivery_sheet_csv"),
    Route("/complex/{complex_order_id}/handover", handover_page, methods=["GET"], name="complex_handover"),
    Route("/complex/{complex_order_id}/handover/{household_id}", handover_tick, methods=["POST"],
          name="complex_handover_tick"),
    Route("/staff/coordinators", coordinators_page, methods=["GET"], name="staff_coordinators"),
    Route("/staff/coordinators", coordinators_submit, methods=["POST"], name="staff_coordinators_submit"),
    *complex_roster.routes,
]

"""The supplier's auction page: its own lots, and a form to list one of its products.

Suppliers manage their own lots (staff need not approve them). The form takes
every lot setting; times are entered in Korea time (datetime-local inputs).
Invalid input re-renders the form with a message next to each field.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.auction.lots import create_lot
from engine.auction.rules import DEFAULT_INCREMENTS
from engine.errors import DomainError
from web.i18n import gettext
from web.live import auction_live
from web.live.bids import actor_of, api_error_for
from web.live.lot_input import read_lot_input
from web.live.render import state_context
from web.live.views import fetch_listed_terms, read_snapshots
from web.security import require_role

_require_supplier = require_role("supplier")

ALL_STATUSES = ("scheduled", "open", "closing", "sold", "unsold", "cancelled", "held")
FORM_FIELDS = (
    "product_id", "title", "quantity", "start_price_won", "reserve_won", "buy_now_won", "start_at", "end_at",
    "hard_cap_at", "soft_close_window_s", "extension_s", "increments",
)
# The form field each lot-level engine error is shown next to.
ERROR_FIELDS = {
    "reserve_below_start": "reserve_won", "buy_now_below_start": "buy_now_won",
    "buy_now_below_reserve": "buy_now_won", "end_before_start": "end_at", "end_in_past": "end_at",
    "duration_too_long": "end_at", "hard_cap_before_end": "hard_cap_at", "invalid_title": "title",
    "invalid_quantity": "quantity", "invalid_increments": "increments", "product_not_found": "product_id",
    "forbidden": "product_id",
}


async def _page(request: Request, *, values: dict[str, Any], errors: dict[str, str], status_code: int = 200) -> Response:
    user = _require_supplier(request)
    state = request.app.state
    terms = await fetch_listed_terms(state.db, statuses=ALL_STATUSES, supplier_id=user.supplier_id, limit=200)
    snapshots = await read_snapshots(auction_live(request.app), [lot.lot_id for lot in terms])
    lots = [
        {"terms": lot, **(state_context(snapshots[lot.lot_id]) if lot.lot_id in snapshots else {"snap": None})}
        for lot in terms
    ]
    products = await state.db.fetch(
        "SELECT id, name, unit, origin_label FROM products WHERE supplier_id = $1 AND status <> 'retired'"
        " ORDER BY name",
        user.supplier_id,
    )
    context = {"lots": lots, "products": products, "values": values, "errors": errors}
    return state.templates.TemplateResponse(request, "supplier/lots.html", context, status_code=status_code)


async def lots_page(request: Request) -> Response:
    default_increments = ", ".join(f"{start}:{step}" for start, step in DEFAULT_INCREMENTS)
    values = {"quantity": "1", "soft_close_window_s": "120", "extension_s": "120", "increments": default_increments}
    return await _page(request, values=values, errors={})


async def create(request: Request) -> Response:
    user = _require_supplier(request)
    form = await request.form()
    values = {name: str(form.get(name, "")) for name in FORM_FIELDS}
    locale = getattr(request.state, "locale", "ko")
    parsed = read_lot_input(values)
    errors: dict[str, str] = {}
    for name, (code, detail) in parsed.errors.items():
        errors[name] = api_error_for(code, detail).message(locale)
    if not errors:
        try:
            lot_id = await create_lot(request.app.state.db, auction_live(request.app), actor_of(user), parsed.draft())
        except DomainError as error:
            field = ERROR_FIELDS.get(error.code, "form")
            errors[field] = api_error_for(error.code, error.detail).message(locale)
        else:
            return RedirectResponse(f"/lots/{lot_id}", status_code=303)
    errors.setdefault("form", gettext(locale, "Some fields are invalid. Please check them and try again."))
    return await _page(request, values=values, errors=errors, status_code=422)


routes = [
    Route("/supplier/lots", lots_page, methods=["GET"], name="supplier_lots"),
    Route("/supplier/lots", create, methods=["POST"], name="supplier_lot_create"),
]

"""Staff page for up-front group-buy bank transfers: list the pledges awaiting a deposit and confirm one.

The list shows payments awaiting their deposit and recently expired ones, whose
deposit staff may still confirm as a late deposit. Confirming takes two POSTs
with the CSRF token: the row's form opens a confirmation step that repeats the
payment's facts, and only its form (`step=final`) confirms. A confirmation
redirects (303) to the list, which shows what the engine did with the deposit.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.errors import DomainError
from web import ids  # noqa: F401  (registers the {payment_id:id} convertor used below)
from web.errors import ApiError, render_form_page
from web.live import codes  # noqa: F401  (registers the payment error codes)
from web.live.bids import actor_of, api_error_for
from web.live.pledge_deposits import (
    CONFIRMABLE_STATUSES,
    LIST_LIMIT,
    RECENT_EXPIRED_S,
    confirm,
    confirmation_of,
    fetch_pledge_payment,
    list_pledge_payments,
    normalize_query,
)
from web.security import require_role, role_required

_require_staff = require_role("staff")
LIST_PATH = "/staff/pledge-payments"
FINAL_STEP = "final"


@role_required("staff")
async def payment_list(request: Request) -> Response:
    """Show the payments awaiting a deposit and recently expired ones, and the result of a confirmation."""
    query = normalize_query(request.query_params.get("q", ""))
    result = None
    confirmed = request.query_params.get("confirmed", "")
    if confirmed.isascii() and confirmed.isdigit() and len(confirmed) <= 18:
        result = await confirmation_of(request.app.state.db, int(confirmed))
    return await _render_list(request, query, result=result)


async def confirm_step(request: Request) -> Response:
    """Show the confirmation step, or with `step=final` confirm the deposit and redirect to the list."""
    user = _require_staff(request)
    payment_id = request.path_params["payment_id"]
    form = await request.form()
    query = normalize_query(str(form.get("q", "")))
    db = request.app.state.db
    payment = await fetch_pledge_payment(db, payment_id)
    if payment is None:
        raise ApiError("payment_not_found")
    if form.get("step") != FINAL_STEP:
        if payment.status not in CONFIRMABLE_STATUSES:
            return await _render_list(request, query, error=api_error_for(
                "payment_not_awaiting_deposit", {"payment_id": payment_id, "status": payment.status}
            ))
        return render_form_page(request, "staff/pledge_payment_confirm.html", {"payment": payment, "query": query}, None)
    try:
        await confirm(db, actor_of(user), payment_id)
    except DomainError as error:
        # Confirmed already, possibly by another staff member after the step was shown, or settled by the close.
        return await _render_list(request, query, error=api_error_for(error.code, error.detail))
    parameters = {"confirmed": payment_id, **({"q": query} if query else {})}
    return RedirectResponse(f"{LIST_PATH}?{urlencode(parameters)}", status_code=303)


async def _render_list(
    request: Request, query: str, *, result: Any = None, error: ApiError | None = None
) -> Response:
    payments = await list_pledge_payments(request.app.state.db, query=query, limit=LIST_LIMIT + 1)
    context = {
        "payments": payments[:LIST_LIMIT],
        "truncated": len(payments) > LIST_LIMIT,
        "list_limit": LIST_LIMIT,
        "recent_days": RECENT_EXPIRED_S // 86_400,
        "query": query,
        "result": result,
    }
    return render_form_page(request, "staff/pledge_payments.html", context, error)


routes = [
    Route(LIST_PATH, payment_list, methods=["GET"], name="staff_pledge_payments"),
    Route(LIST_PATH + "/{payment_id:id}/confirm", confirm_step, methods=["POST"], name="staff_pledge_payment_confirm"),
]

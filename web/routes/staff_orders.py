"""Staff pages for bank-transfer (무통장입금) orders: find an order by its number and confirm its deposit.

The confirm page shows what the transfer must cover: the order's amount minus the
up-front group-buy payments that count toward it. Staff enter the amount that
arrived. Less than the amount due is rejected, and more is recorded and refunded
to the buyer (`engine.orders.confirm_deposit`). The forms are plain POST forms
with the CSRF token, and a confirmation redirects back to the page (303).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from engine.auction.rules import InvalidAmount, parse_amount_won
from engine.errors import DomainError
from engine.orders import OrderBalance, confirm_deposit, order_balance
from web import ids  # noqa: F401  (registers the {order_id:id} convertor used below)
from web.errors import ApiError, render_form_page
from web.live import codes  # noqa: F401  (registers the order error codes)
from web.live.bids import actor_of, api_error_for
from web.security import require_role, role_required

_require_staff = require_role("staff")
MAX_ORDER_NO_CHARS = 40
# Error codes about the amount entered, which the page shows under the amount field. Others appear above the form.
_AMOUNT_ERRORS = frozenset({"invalid_amount", "deposit_short"})


@role_required("staff")
async def find_order(request: Request) -> Response:
    """Show the order-number search, or redirect to the deposit page of the order found."""
    order_no = request.query_params.get("order_no", "").strip()[:MAX_ORDER_NO_CHARS]
    error = None
    if order_no:
        order_id = await request.app.state.db.fetchval("SELECT id FROM orders WHERE order_no = $1", order_no)
        if order_id is not None:
            return RedirectResponse(f"/staff/orders/{order_id}/deposit", status_code=303)
        error = ApiError("order_not_found")
    return render_form_page(request, "staff/order_find.html", {"order_no": order_no}, error)


@role_required("staff")
async def deposit_page(request: Request) -> Response:
    balance = await _balance_or_404(request)
    confirmed = request.query_params.get("confirmed") == "1" and balance.status == "paid"
    return _render_deposit(request, balance, amount_value=str(balance.due_won), confirmed=confirmed)


async def confirm(request: Request) -> Response:
    user = _require_staff(request)
    balance = await _balance_or_404(request)
    form = await request.form()
    amount_value = str(form.get("deposit_won", "")).strip()
    try:
        deposit_won = parse_amount_won(amount_value)
    except InvalidAmount:
        return _render_deposit(request, balance, amount_value=amount_value[:20], error=ApiError("invalid_amount"))
    try:
        await confirm_deposit(request.app.state.db, actor_of(user), balance.order_id, deposit_won=deposit_won)
    except DomainError as error:
        # The balance may have changed since the page was read (a pledge deposit confirmed meanwhile).
        fresh = await order_balance(request.app.state.db, balance.order_id) or balance
        return _render_deposit(request, fresh, amount_value=amount_value,
                               error=api_error_for(error.code, error.detail))
    return RedirectResponse(f"/staff/orders/{balance.order_id}/deposit?confirmed=1", status_code=303)


async def _balance_or_404(request: Request) -> OrderBalance:
    balance = await order_balance(request.app.state.db, request.path_params["order_id"])
    if balance is None:
        raise ApiError("order_not_found")
    return balance


def _render_deposit(
    request: Request, balance: OrderBalance, *, amount_value: str, confirmed: bool = False,
    error: ApiError | None = None,
) -> Response:
    context: dict[str, Any] = {
        "balance": balance,
        # What the confirmed transfer exceeded the amount due by, refunded to the buyer.
        "refund_won": balance.deposit_won - balance.due_won if balance.deposit_won is not None else 0,
        "amount_value": amount_value,
        "confirmed": confirmed,
        "amount_error": error is not None and error.code in _AMOUNT_ERRORS,
    }
    return render_form_page(request, "staff/order_deposit.html", context, error)


routes = [
    Route("/staff/orders", find_order, methods=["GET"], name="staff_order_find"),
    Route("/staff/orders/{order_id:id}/deposit", deposit_page, methods=["GET"], name="staff_order_deposit"),
    Route("/staff/orders/{order_id:id}/deposit", confirm, methods=["POST"], name="staff_order_confirm"),
]

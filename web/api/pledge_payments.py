"""The staff API for up-front group-buy bank transfers: list pledge payments and confirm a deposit.

Both routes are for staff only. Amounts are whole won and times are ISO 8601 in
UTC. Confirming goes through `engine.groupbuy.payments.confirm_pledge_deposit`
(audited, member mailed). Like every unsafe API route it needs the CSRF token and
accepts an `Idempotency-Key`, so a retried confirmation returns the first response.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from engine.errors import DomainError
from web.api import ApiRoutes, json_response
from web.errors import ApiError
from web.i18n import translate_all
from web.live import codes  # noqa: F401  (registers the payment error codes)
from web.live.bids import actor_of, api_error_for
from web.live.pledge_deposits import (
    CONFIRMABLE_STATUSES,
    LIST_LIMIT,
    MAX_QUERY_CHARS,
    RECENT_EXPIRED_S,
    DepositResult,
    PledgePaymentRow,
    confirm,
    list_pledge_payments,
    normalize_query,
)
from web.security import require_role

routes = ApiRoutes(tag="group buys")

_require_staff = require_role("staff")

_PAYMENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "payment_id": {"type": "integer"},
        "campaign": {"type": "object", "properties": {"id": {"type": "integer"}, "title": {"type": "string"}}},
        "member": {"type": "object", "properties": {
            "id": {"type": "integer"},
            "masked_name": {"type": "string", "description": "The display name masked, for example 김*수."},
            "email": {"type": "string"},
        }},
        "units": {"type": "integer"},
        "amount_won": {"type": "integer", "description": "The transfer the pledge awaits: units x the \"at most\" price."},
        "status": {"type": "string", "enum": list(CONFIRMABLE_STATUSES)},
        "depositor_name": {"type": ["string", "null"], "description": "The name given for the transfer, if any."},
        "hold_expires_at": {"type": ["string", "null"], "format": "date-time",
                            "description": "When the hold expires or expired (UTC)."},
        "created_at": {"type": "string", "format": "date-time"},
    },
}
_LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "payments": {"type": "array", "items": _PAYMENT_SCHEMA},
        "truncated": {"type": "boolean", "description": f"More than {LIST_LIMIT} payments matched; search to narrow."},
    },
}
_CONFIRMATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "payment": _PAYMENT_SCHEMA,
        "late": {"type": "boolean", "description": "The hold had expired before the deposit was confirmed."},
        "outcome": {
            "type": "string", "enum": ["held", "partly_paid", "order_paid", "refunded"],
            "description": "held: kept until the close. partly_paid: applied to the member's order, which awaits "
                           "the rest. order_paid: the order is paid. refunded: paid back in full (late is true "
                           "when the hold's units had been released).",
        },
        "message": {"type": "object", "properties": {"ko": {"type": "string"}, "en": {"type": "string"}}},
    },
}


def payment_json(payment: PledgePaymentRow) -> dict[str, Any]:
    return {
        "payment_id": payment.payment_id,
        "campaign": {"id": payment.campaign_id, "title": payment.campaign_title},
        "member": {"id": payment.user_id, "masked_name": payment.member_masked, "email": payment.member_email},
        "units": payment.units,
        "amount_won": payment.amount_won,
        "status": payment.status,
        "depositor_name": payment.depositor_name,
        "hold_expires_at": payment.hold_expires_at.isoformat() if payment.hold_expires_at else None,
        "created_at": payment.created_at.isoformat(),
    }


def _confirmation_json(result: DepositResult) -> dict[str, Any]:
    return {
        "payment": payment_json(result.payment),
        "late": result.late,
        "outcome": result.outcome,
        "message": translate_all(result.message_msgid),
    }


@routes.route(
    "GET", "/pledge-payments",
    summary=(
        "Staff: bank-transfer pledge payments awaiting a deposit, then expired ones. Query: status "
        "(awaiting_deposit or expired; default both) and q (part of the member's email or depositor name, or the "
        f"payment id). Without q, expired payments are listed for {RECENT_EXPIRED_S // 86_400} days after their hold."
    ),
    responses={200: _LIST_SCHEMA},
)
async def list_payments(request: Request) -> JSONResponse:
    _require_staff(request)
    status = request.query_params.get("status")
    if status is not None and status not in CONFIRMABLE_STATUSES:
        raise ApiError("invalid_field", field="status", expected=" or ".join(CONFIRMABLE_STATUSES))
    raw_query = request.query_params.get("q", "")
    if len(raw_query) > MAX_QUERY_CHARS:
        raise ApiError("invalid_field", field="q", max_chars=MAX_QUERY_CHARS)
    statuses = (status,) if status else CONFIRMABLE_STATUSES
    payments = await list_pledge_payments(
        request.app.state.db, statuses, normalize_query(raw_query), limit=LIST_LIMIT + 1
    )
    return json_response({
        "payments": [payment_json(payment) for payment in payments[:LIST_LIMIT]],
        "truncated": len(payments) > LIST_LIMIT,
    })


@routes.route(
    "POST", "/pledge-payments/{payment_id}/confirm-deposit",
    summary="Staff: record that an up-front pledge's bank transfer arrived, also after its hold expired (audited)",
    responses={200: _CONFIRMATION_SCHEMA},
)
async def confirm_deposit(request: Request) -> JSONResponse:
    user = _require_staff(request)
    value = request.path_params["payment_id"]
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise ApiError("payment_not_found", payment_id=value[:20])
    try:
        result = await confirm(request.app.state.db, actor_of(user), int(value))
    except DomainError as error:
        raise api_error_for(error.code, error.detail) from None
    return json_response(_confirmation_json(result))

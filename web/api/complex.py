"""The complex-order API: the coordinator role, complex orders, joins, lines, close, deliveries, refunds.

Neighbours see households masked (101동 12**호) and never other participants'
names or phones; the roster, sheets and actions belong to the order's coordinator
and staff. Quantities and amounts are JSON integers or strings of ASCII digits.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from engine.complexorders import closing, messages, rules, service
from engine.complexorders.model import ComplexOrder, RosterRow, fetch_complex, fetch_roster, totals_of
from engine.errors import DomainError
from web.sessions import revoke_user_sessions
from web.api import ApiRoutes, json_response, read_json
from web.errors import ApiError, register_error
from web.i18n import N_
from web.live import codes  # noqa: F401  (registers invalid_field, invalid_amount, invalid_datetime)
from web.live.bids import actor_of, api_error_for
from web.live.campaign_hub import campaign_live
from web.security import require_role, require_user
from web.sessions import CurrentUser

routes = ApiRoutes(tag="complex orders")

COMPLEX_ERRORS: tuple[tuple[str, int, str], ...] = (
    ("complex_not_found", 404, N_("No such complex order. Check the link or the code.")),
    ("complex_not_open", 409, N_("This complex order is closed; orders are no longer accepted.")),
    ("complex_not_closed", 409, N_("This complex order has not been closed yet.")),
    ("item_not_found", 404, N_("This product is not offered in this complex order.")),
    ("participant_not_found", 404, N_("No such order in this complex order.")),
    ("household_not_found", 404, N_("No such household in this complex order.")),
    ("invalid_household", 422, N_("Enter the building and unit as numbers (for example 101 and 1203), or the department and desk without markup.")),
    ("invalid_phone", 422, N_("Enter the phone number as 9 to 11 digits without hyphens, for example 01012345678.")),
    ("invalid_number", 422, N_("The field {field} must be a whole number from {minimum} to {maximum}, digits only.")),
    ("household_changed", 409, N_("Your account already ordered for another household in this complex order.")),
    ("household_limit_exceeded", 409, N_("A household may order at most {limit} of this product; {remaining} remain.")),
    ("empty_order", 422, N_("Order at least one item to join.")),
    ("product_not_available", 422, N_("Product {product_id} is not approved for sale.")),
    ("user_not_found", 404, N_("No such user.")),
    ("role_not_changeable", 409, N_("Only member and coordinator accounts can be changed here.")),
    ("refund_too_large", 409, N_("Only {refundable} units of this product can be refunded for this household.")),
    ("campaign_not_running", 422, N_("Group buy {campaign_id} is not taking pledges.")),
    ("campaign_pledge_rejected", 409, N_("The group buy did not accept this quantity; {units_left} units are left.")),
    ("campaign_unavailable", 503, N_("The group buy could not confirm your order. Nothing was saved; try again.")),
    ("campaign_pledge_conflict", 409, N_("Your pledge in the group buy kept changing while your order was saved. Nothing was saved; try again.")),
    ("campaign_item_not_refundable", 409, N_("This product was ordered through its group buy; refund it there.")),
    ("message_rate_limited", 429, N_("At most {limit} messages per hour can be sent; try again in {retry_after_s} seconds.")),
)
for _code, _status, _msgid in COMPLEX_ERRORS:
    register_error(_code, _status, _msgid)

_require_staff = require_role("staff")
_require_coordinator = require_role("coordinator")

# -- schemas -------------------------------------------------------------------------

_COUNT = {"oneOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": "^[0-9]{1,12}$"}]}
_ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "product_id": {"type": "integer"}, "name": {"type": "string"},
        "unit": {"type": "string"}, "unit_price_won": {"type": "integer"},
        "per_household_limit": {"type": "integer"}, "supplier": {"type": "object"},
        "campaign_id": {"type": ["integer", "null"],
                        "description": "Set for a campaign's product; unit_price_won is then its 'at most' price."},
    },
}
_COMPLEX_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "code": {"type": "string"}, "share_url": {"type": "string"},
        "qr_svg_url": {"type": "string"}, "kind": {"type": "string", "enum": list(rules.KINDS)},
        "complex_name": {"type": "string"}, "road_address": {"type": "string"}, "pickup_point": {"type": "string"},
        "delivery_date": {"type": "string", "format": "date"}, "delivery_slot": {"type": "string"},
        "closes_at": {"type": "string", "format": "date-time"}, "status": {"type": "string"},
        "min_total_won": {"type": ["integer", "null"]}, "free_shipping_from_won": {"type": "integer"},
        "shipping_fee_won": {"type": "integer"}, "reward_bp": {"type": "integer"},
        "items": {"type": "array", "items": _ITEM_SCHEMA},
        "totals": {"type": "object"},
        "households": {"type": "array", "description": "Masked household labels with their units."},
        "my_participation": {"type": ["object", "null"]},
    },
}
_CREATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "complex_name", "road_address", "pickup_point", "delivery_date", "delivery_slot",
                 "closes_at", "items"],
    "properties": {
        "kind": {"type": "string", "enum": list(rules.KINDS)},
        "complex_name": {"type": "string", "maxLength": 80}, "road_address": {"type": "string", "maxLength": 200},
        "pickup_point": {"type": "string", "maxLength": 80},
        "delivery_date": {"type": "string", "format": "date", "description": "Korea date, YYYY-MM-DD."},
        "delivery_slot": {"type": "string", "maxLength": 40, "description": "For example 10:00-12:00."},
        "closes_at": {"type": "string", "description": "ISO 8601; without an offset it is Korea time."},
        "items": {"type": "array", "items": {"type": "object", "required": ["per_household_limit"],
                                             "description": "A catalogue product_id or a running campaign_id.",
                                             "properties": {"product_id": {"type": "integer"},
                                                            "campaign_id": {"type": "integer"},
                                                            "per_household_limit": _COUNT}}},
        "min_total_won": {"oneOf": [_COUNT, {"type": "null"}], "description": "Minimum goods total in won."},
        "free_shipping_from_won": {**_COUNT, "description": "Shipping is free from this goods total (default 50000)."},
        "shipping_fee_won": {**_COUNT, "description": "Shipping fee below that total (default 4000)."},
        "reward_bp": {**_COUNT, "description": "Coordinator reward in basis points of the paid total (default 0)."},
    },
}
_LINES_SCHEMA = {"type": "array", "items": {"type": "object", "required": ["item_id", "quantity"],
                                            "properties": {"item_id": {"type": "integer"}, "quantity": _COUNT}}}
_JOIN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["building", "unit", "phone", "lines"],
    "properties": {
        "building": {"type": "string", "description": "동 (digits) or, for institutions, the department."},
        "unit": {"type": "string", "description": "호 (digits) or, for institutions, the desk."},
        "phone": {"type": "string", "pattern": "^0[0-9]{8,10}$"},
        "lines": _LINES_SCHEMA,
    },
}
_PARTICIPANT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"}, "household_id": {"type": "integer"}, "household": {"type": "string"},
        "phone": {"type": "string"}, "lines": {"type": "array"}, "goods_won": {"type": "integer"},
        "refunded_won": {"type": "integer"}, "shipping_share_won": {"type": "integer"},
        "campaign_units": {"type": "integer", "description": "Units on campaign items, ordered by their campaigns."},
        "orders": {"type": "array", "description": "One order per supplier, made at the close."},
    },
}
_REFUND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["household_id", "item_id", "units", "reason", "refund_key"],
    "properties": {
        "household_id": {"type": "integer"}, "item_id": {"type": "integer"}, "units": _COUNT,
        "reason": {"type": "string", "maxLength": 80},
        "refund_key": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$",
                       "description": "One key per refund; resend it to retry safely."},
    },
}

# -- shared helpers (pages use them too) ------------------------------------------------


def domain_error(error: DomainError) -> ApiError:
    return api_error_for(error.code, error.detail)


def path_id(request: Request, name: str, missing: str = "complex_not_found") -> int:
    value = str(request.path_params[name])
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise ApiError(missing)
    return int(value)


async def load_complex(request: Request, complex_order_id: int) -> ComplexOrder:
    complex_order = await fetch_complex(request.app.state.db, complex_order_id)
    if complex_order is None:
        raise ApiError("complex_not_found", complex_order_id=complex_order_id)
    return complex_order


def is_manager(user: CurrentUser, complex_order: ComplexOrder) -> bool:
    return user.is_active and (user.id == complex_order.coordinator_id or user.is_staff)


async def load_managed(request: Request, complex_order_id: int) -> tuple[CurrentUser, ComplexOrder]:
    """Return the user and the order when the user is its coordinator or staff; 403 otherwise."""
    user = require_user(request)
    complex_order = await load_complex(request, complex_order_id)
    if not is_manager(user, complex_order):
        raise ApiError("forbidden")
    return user, complex_order


def share_url(request: Request, complex_order: ComplexOrder) -> str:
    return f"{request.app.state.settings.base_url}/c/{complex_order.code}"


def parse_lines(raw: object, complex_order: ComplexOrder) -> dict[int, int]:
    """Read `[{"item_id", "quantity"}]` into item id -> quantity, each within 0..the household limit."""
    if not isinstance(raw, list):
        raise DomainError("invalid_field", "lines must be a list", field="lines")
    quantities: dict[int, int] = {}
    for entry in raw:
        if not isinstance(entry, dict):
            raise DomainError("invalid_field", "each line is an object", field="lines")
        item_id = rules.parse_count(entry.get("item_id"), "item_id", maximum=2**62)
        item = complex_order.item(item_id)
        if item is None:
            raise DomainError("item_not_found", f"item {item_id} is not offered here", item_id=item_id)
        quantities[item_id] = rules.parse_count(entry.get("quantity"), "quantity", maximum=item.per_household_limit)
    return quantities


def participant_json(complex_order: ComplexOrder, row: RosterRow) -> dict[str, Any]:
    return {
        "id": row.participant_id,
        "household_id": row.household_id,
        "household": row.label(complex_order.kind, masked=False),
        "phone": row.phone,
        "lines": [
            {"item_id": item.id, "name": item.name, "quantity": row.quantities[item.id],
             "refunded_units": row.refunded_units.get(item.id, 0), "unit_price_won": item.unit_price_won,
             "campaign_id": item.campaign_id}
            for item in complex_order.items if item.id in row.quantities
        ],
        "goods_won": row.goods_won,
        "refunded_won": row.refunded_won,
        "campaign_units": row.campaign_units,
        "shipping_share_won": row.shipping_share_won,
        "orders": [
            {"id": part.order_id, "order_no": part.order_no, "amount_won": part.amount_won, "status": part.status,
             "supplier": {"id": part.supplier_id, "name": part.supplier_name},
             "goods_won": part.goods_won, "shipping_won": part.shipping_won}
            for part in row.orders
        ],
    }


def complex_json(request: Request, complex_order: ComplexOrder, roster: list[RosterRow],
                 user: CurrentUser | None) -> dict[str, Any]:
    """The order as a signed-in member sees it: households masked, only the member's own lines."""
    totals = totals_of(complex_order, roster)
    households: dict[int, dict[str, Any]] = {}
    for row in roster:
        if row.units == 0:
            continue
        entry = households.setdefault(row.household_id, {"household": row.label(complex_order.kind, masked=True),
                                                         "units": 0})
        entry["units"] += row.units
    mine = next((row for row in roster if user is not None and row.user_id == user.id), None)
    return {
        "id": complex_order.id,
        "code": complex_order.code,
        "share_url": share_url(request, complex_order),
        "qr_svg_url": f"/c/{complex_order.code}/qr.svg",
        "kind": complex_order.kind,
        "complex_name": complex_order.complex_name,
        "road_address": complex_order.road_address,
        "pickup_point": complex_order.pickup_point,
        "delivery_date": complex_order.delivery_date.isoformat(),
        "delivery_slot": complex_order.delivery_slot,
        "closes_at": complex_order.closes_at.isoformat(),
        "status": complex_order.status,
        "arrived_at": complex_order.arrived_at.isoformat() if complex_order.arrived_at else None,
        "min_total_won": complex_order.min_total_won,
        "free_shipping_from_won": complex_order.free_shipping_from_won,
        "shipping_fee_won": complex_order.shipping_fee_won,
        "reward_bp": complex_order.reward_bp,
        "items": [
            {"id": item.id, "product_id": item.product_id, "name": item.name, "unit": item.unit,
             "unit_price_won": item.unit_price_won, "per_household_limit": item.per_household_limit,
             "supplier": {"id": item.supplier_id, "name": item.supplier_name},
             "campaign_id": item.campaign_id,
             "units": totals.units_by_item.get(item.id, 0)}
            for item in complex_order.items
        ],
        "totals": {"participants": totals.participants, "households": totals.households,
                   "goods_won": totals.goods_won, "refunded_won": totals.refunded_won,
                   "paid_won": totals.paid_won, "reward_won": totals.reward_won},
        "households": list(households.values()),
        "my_participation": participant_json(complex_order, mine) if mine else None,
    }


def _publisher(request: Request) -> dict[str, Any]:
    return {"redis": request.app.state.redis, "keys": request.app.state.keys}


def participation_services(request: Request) -> dict[str, Any]:
    """Return the keyword arguments a join needs: the roster publisher and the app's `CampaignLive`."""
    return {**_publisher(request), "campaigns": campaign_live(request.app)}


async def _complex_response(request: Request, complex_order_id: int, status_code: int = 200) -> JSONResponse:
    user = require_user(request)
    complex_order = await load_complex(request, complex_order_id)
    roster = await fetch_roster(request.app.state.db, complex_order)
    return json_response(complex_json(request, complex_order, roster, user), status_code)


# -- the coordinator role ------------------------------------------------------------


@routes.route("POST", "/users/{user_id}/role", summary="Grant or withdraw the coordinator role (staff, audited)",
              request_schema={"type": "object", "required": ["role"],
                              "properties": {"role": {"type": "string", "enum": list(service.GRANTABLE_ROLES)}}},
              responses={200: {"type": "object", "properties": {"user_id": {"type": "integer"},
                                                                 "role": {"type": "string"}}}})
async def set_user_role(request: Request) -> JSONResponse:
    user = _require_staff(request)
    user_id = path_id(request, "user_id", "user_not_found")
    body = await read_json(request)
    try:
        await service.set_role(request.app.state.db, actor_of(user), user_id, str(body.get("role")))
    except DomainError as error:
        raise domain_error(error) from None
    # The sessions cache the role; ending them makes the change apply at once.
    await revoke_user_sessions(request.app.state.redis, request.app.state.keys, user_id)
    return json_response({"user_id": user_id, "role": body.get("role")})


# -- complex orders ------------------------------------------------------------------


@routes.route("POST", "/complex-orders", summary="Open a complex order (coordinators)",
              request_schema=_CREATE_SCHEMA, responses={201: _COMPLEX_SCHEMA})
async def create(request: Request) -> JSONResponse:
    user = _require_coordinator(request)
    body = await read_json(request)
    try:
        complex_order = await service.create_complex_order(
            request.app.state.db, actor_of(user), service.parse_draft(body)
        )
    except DomainError as error:
        raise domain_error(error) from None
    return await _complex_response(request, complex_order.id, 201)


@routes.route("GET", "/complex-orders", summary="List the complex orders I coordinate and the ones I joined",
              responses={200: {"type": "object", "properties": {"coordinating": {"type": "array"},
                                                                 "joined": {"type": "array"}}}})
async def list_mine(request: Request) -> JSONResponse:
    user = require_user(request)
    db = request.app.state.db
    coordinating = await db.fetch(
        "SELECT id, code, complex_name, status, closes_at FROM complex_orders WHERE coordinator_id = $1"
        " ORDER BY id DESC LIMIT 100", user.id,
    )
    joined = await db.fetch(
        """SELECT c.id, c.code, c.complex_name, c.status, c.closes_at FROM complex_orders c
           JOIN complex_participants p ON p.complex_order_id = c.id
           WHERE p.user_id = $1 ORDER BY c.id DESC LIMIT 100""", user.id,
    )

    def shape(row: Any) -> dict[str, Any]:
        return {"id": row["id"], "code": row["code"], "complex_name": row["complex_name"],
                "status": row["status"], "closes_at": row["closes_at"].isoformat()}

    return json_response({"coordinating": [shape(row) for row in coordinating],
                          "joined": [shape(row) for row in joined]})


@routes.route("GET", "/complex-orders/{complex_order_id}", summary="One complex order as a neighbour sees it",
              responses={200: _COMPLEX_SCHEMA})
async def read(request: Request) -> JSONResponse:
    return await _complex_response(request, path_id(request, "complex_order_id"))


@routes.route("GET", "/complex-orders/by-code/{code}", summary="Find a complex order by its short code",
              responses={200: _COMPLEX_SCHEMA})
async def read_by_code(request: Request) -> JSONResponse:
    require_user(request)
    code = rules.normalize_code(request.path_params["code"])
    complex_order_id = None
    if code is not None:
        complex_order_id = await request.app.state.db.fetchval("SELECT id FROM complex_orders WHERE code = $1", code)
    if complex_order_id is None:
        raise ApiError("complex_not_found")
    return await _complex_response(request, complex_order_id)


# -- joining and lines ---------------------------------------------------------------


@routes.route("POST", "/complex-orders/{complex_order_id}/participants",
              summary="Join with a household and contact, or change one's household order",
              request_schema=_JOIN_SCHEMA, responses={201: _PARTICIPANT_SCHEMA, 200: _PARTICIPANT_SCHEMA})
async def join(request: Request) -> JSONResponse:
    user = require_user(request)
    complex_order = await load_complex(request, path_id(request, "complex_order_id"))
    body = await read_json(request)
    try:
        participation = await service.submit_participation(
            request.app.state.db, actor_of(user), complex_order.id, quantities=parse_lines(body.get("lines"), complex_order),
            building=body.get("building"), unit=body.get("unit"), phone=body.get("phone"),
            **participation_services(request),
        )
    except DomainError as error:
        raise domain_error(error) from None
    return await _participant_response(request, complex_order, participation.participant_id,
                                       201 if participation.created else 200)


async def _participant_response(request: Request, complex_order: ComplexOrder, participant_id: int,
                                status_code: int = 200) -> JSONResponse:
    rows = await fetch_roster(request.app.state.db, complex_order, participant_id=participant_id)
    if not rows:
        raise ApiError("participant_not_found")
    return json_response(participant_json(complex_order, rows[0]), status_code)


async def _own_participant(request: Request) -> tuple[CurrentUser, ComplexOrder, int]:
    """Return the order and participant id when the user is that participant, or manages the order.

    Anyone else gets 404, the same as for a participant that does not exist.
    """
    user = require_user(request)
    complex_order = await load_complex(request, path_id(request, "complex_order_id"))
    participant_id = path_id(request, "participant_id", "participant_not_found")
    owner = await request.app.state.db.fetchval(
        "SELECT user_id FROM complex_participants WHERE id = $1 AND complex_order_id = $2",
        participant_id, complex_order.id,
    )
    if owner is None or (owner != user.id and not is_manager(user, complex_order)):
        raise ApiError("participant_not_found")
    return user, complex_order, participant_id


@routes.route("GET", "/complex-orders/{complex_order_id}/participants/{participant_id}",
              summary="One participant's order (the participant, the coordinator or staff)",
              responses={200: _PARTICIPANT_SCHEMA})
async def read_participant(request: Request) -> JSONResponse:
    _, complex_order, participant_id = await _own_participant(request)
    return await _participant_response(request, complex_order, participant_id)


@routes.route("PUT", "/complex-orders/{complex_order_id}/participants/{participant_id}/lines",
              summary="Change one's quantities (0 removes a line)",
              request_schema={"type": "object", "required": ["lines"], "properties": {"lines": _LINES_SCHEMA}},
              responses={200: _PARTICIPANT_SCHEMA})
async def set_lines(request: Request) -> JSONResponse:
    user, complex_order, participant_id = await _own_participant(request)
    owner = await request.app.state.db.fetchval("SELECT user_id FROM complex_participants WHERE id = $1",
                                                participant_id)
    if owner != user.id:
        raise ApiError("forbidden")
    body = await read_json(request)
    try:
        await service.submit_participation(
            request.app.state.db, actor_of(user), complex_order.id,
            quantities=parse_lines(body.get("lines"), complex_order), **participation_services(request),
        )
    except DomainError as error:
        raise domain_error(error) from None
    return await _participant_response(request, complex_order, participant_id)


# -- the coordinator's side ----------------------------------------------------------


@routes.route("GET", "/complex-orders/{complex_order_id}/roster",
              summary="Every participant with unit, name, phone and lines (coordinator, staff)",
              responses={200: {"type": "object", "properties": {"participants": {"type": "array",
                                                                                  "items": _PARTICIPANT_SCHEMA},
                                                                 "totals": {"type": "object"}}}})
async def roster(request: Request) -> JSONResponse:
    _, complex_order = await load_managed(request, path_id(request, "complex_order_id"))
    rows = await fetch_roster(request.app.state.db, complex_order)
    totals = totals_of(complex_order, rows)
    return json_response({
        "participants": [{**participant_json(complex_order, row), "name": row.display_name} for row in rows],
        "totals": {"participants": totals.participants, "households": totals.households,
                   "goods_won": totals.goods_won, "refunded_won": totals.refunded_won,
                   "paid_won": totals.paid_won, "reward_won": totals.reward_won},
    })


@routes.route("POST", "/complex-orders/{complex_order_id}/close",
              summary="Close now: one order per participant, the shipment, pick lists (coordinator, staff)",
              responses={200: {"type": "object"}})
async def close(request: Request) -> JSONResponse:
    user, complex_order = await load_managed(request, path_id(request, "complex_order_id"))
    try:
        result = await closing.close_complex_order(
            request.app.state.db, complex_order.id, actor=actor_of(user),
            payment_due_s=request.app.state.settings.payment_due_s, **_publisher(request),
        )
    except DomainError as error:
        raise domain_error(error) from None
    shipping = result.shipping
    return json_response({
        "status": result.status, "goods_total_won": result.goods_total_won, "order_ids": list(result.order_ids),
        "shipping": None if shipping is None else {"fee_won": shipping.fee_won, "waived": shipping.waived},
    })


@routes.route("GET", "/complex-orders/{complex_order_id}/pick-lists",
              summary="Consolidated purchase orders, one per supplier (coordinator, staff)",
              responses={200: {"type": "object", "properties": {"suppliers": {"type": "array"}}}})
async def pick_lists(request: Request) -> JSONResponse:
    _, complex_order = await load_managed(request, path_id(request, "complex_order_id"))
    rows = await fetch_roster(request.app.state.db, complex_order)
    return json_response({"suppliers": [
        {"supplier_id": pick.supplier_id, "supplier_name": pick.supplier_name, "units": pick.units,
         "amount_won": pick.amount_won,
         "lines": [{"item_id": line.item_id, "name": line.name, "unit": line.unit, "units": line.units,
                    "amount_won": line.amount_won} for line in pick.lines]}
        for pick in closing.pick_lists(complex_order, rows)
    ]})


@routes.route("GET", "/complex-orders/{complex_order_id}/deliveries",
              summary="The delivery sheet by building then unit, with subtotals (coordinator, staff)",
              responses={200: {"type": "object", "properties": {"buildings": {"type": "array"}}}})
async def deliveries(request: Request) -> JSONResponse:
    _, complex_order = await load_managed(request, path_id(request, "complex_order_id"))
    rows = await fetch_roster(request.app.state.db, complex_order)
    shipment = await request.app.state.db.fetchrow(
        "SELECT fee_won, waived FROM complex_shipments WHERE complex_order_id = $1", complex_order.id
    )
    sheet = closing.delivery_sheet(complex_order, rows)
    return json_response({
        "arrived_at": complex_order.arrived_at.isoformat() if complex_order.arrived_at else None,
        "shipment": dict(shipment) if shipment else None,
        "buildings": [
            {"building": building.building, "units": building.units, "amount_won": building.amount_won,
             "households": [
                 {"household_id": household.household_id, "unit": household.unit,
                  "handed_over": household.handed_over, "units": household.units,
                  "lines": [{"name": line.item_name, "unit": line.unit, "units": line.units,
                             "amount_won": line.amount_won} for line in household.lines]}
                 for household in building.households]}
            for building in sheet
        ],
    })


@routes.route("POST", "/complex-orders/{complex_order_id}/deliveries/arrived",
              summary="Mark the goods arrived and mail every participant once (coordinator, staff)",
              responses={200: {"type": "object", "properties": {"mails_queued": {"type": "integer"}}}})
async def arrived(request: Request) -> JSONResponse:
    user, complex_order = await load_managed(request, path_id(request, "complex_order_id"))
    try:
        queued = await closing.mark_arrived(request.app.state.db, actor_of(user), complex_order.id,
                                            **_publisher(request))
    except DomainError as error:
        raise domain_error(error) from None
    return json_response({"mails_queued": queued})


@routes.route("POST", "/complex-orders/{complex_order_id}/households/{household_id}/handover",
              summary="Tick a household as handed over, or untick it (coordinator, staff)",
              request_schema={"type": "object", "required": ["handed_over"],
                              "properties": {"handed_over": {"type": "boolean"}}},
              responses={200: {"type": "object"}})
async def handover(request: Request) -> JSONResponse:
    user, complex_order = await load_managed(request, path_id(request, "complex_order_id"))
    household_id = path_id(request, "household_id", "household_not_found")
    body = await read_json(request)
    handed_over = body.get("handed_over")
    if not isinstance(handed_over, bool):
        raise ApiError("invalid_field", field="handed_over")
    try:
        await closing.set_handed_over(request.app.state.db, actor_of(user), complex_order.id, household_id,
                                      handed_over, **_publisher(request))
    except DomainError as error:
        raise domain_error(error) from None
    return json_response({"household_id": household_id, "handed_over": handed_over})


@routes.route("POST", "/complex-orders/{complex_order_id}/refunds",
              summary="Refund a household's missing or damaged units (coordinator, staff)",
              request_schema=_REFUND_SCHEMA, responses={201: {"type": "object", "properties": {"refunds": {"type": "array"}}}})
async def refund(request: Request) -> JSONResponse:
    user, complex_order = await load_managed(request, path_id(request, "complex_order_id"))
    body = await read_json(request)
    try:
        parts = await closing.refund_shortage(
            request.app.state.db, actor_of(user), complex_order.id, **parse_refund(body), **_publisher(request),
        )
    except DomainError as error:
        raise domain_error(error) from None
    return json_response({"refunds": [
        {"participant_id": part.participant_id, "order_id": part.order_id, "amount_won": part.amount_won,
         "source_key": part.source_key} for part in parts
    ]}, 201)


def parse_refund(data: Any) -> dict[str, Any]:
    """Read a refund request from a JSON object or a form; raise DomainError on a bad field."""
    key = data.get("refund_key")
    if not isinstance(key, str) or not key or len(key) > 64 or not all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in key):
        raise DomainError("invalid_field", "refund_key must be 1 to 64 letters, digits, _ or -", field="refund_key")
    return {
        "household_id": rules.parse_count(data.get("household_id"), "household_id", minimum=1, maximum=2**62),
        "item_id": rules.parse_count(data.get("item_id"), "item_id", minimum=1, maximum=2**62),
        "units": rules.parse_count(data.get("units"), "units", minimum=1),
        "reason": rules.clean_text(data.get("reason"), "reason"),
        "refund_key": key,
    }


# -- messages to participants --------------------------------------------------------


@routes.route("POST", "/complex-orders/{complex_order_id}/messages",
              summary="Mail a message to every participant (coordinator, staff; at most 5 per hour)",
              request_schema={"type": "object", "required": ["subject", "body"],
                              "properties": {"subject": {"type": "string", "maxLength": messages.MAX_SUBJECT_CHARS,
                                                         "description": "One line, no CR or LF."},
                                             "body": {"type": "string", "maxLength": messages.MAX_BODY_CHARS}}},
              responses={201: {"type": "object", "properties": {"message_id": {"type": "integer"},
                                                                 "recipients": {"type": "integer"}}}})
async def send_message(request: Request) -> JSONResponse:
    user, complex_order = await load_managed(request, path_id(request, "complex_order_id"))
    body = await read_json(request)
    try:
        sent = await messages.send_message(request.app.state.db, actor_of(user), complex_order.id,
                                           subject=body.get("subject"), body=body.get("body"))
    except DomainError as error:
        raise domain_error(error) from None
    return json_response({"message_id": sent.message_id, "recipients": sent.recipients}, 201)

"""Staff actions on user accounts over JSON: suspension, which ends the user's sessions at once."""

from __future__ import annotations

import logging
from typing import Any

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse

from engine.errors import DomainError
from engine.members import suspend_user
from web.api import ApiRoutes, json_response, read_json
from web.errors import ApiError, register_error
from web.i18n import N_
from web.live.bids import actor_of, api_error_for
from web.security import require_role
from web.sessions import revoke_user_sessions

log = logging.getLogger("jangteo.web.users")

routes = ApiRoutes(tag="users")

_require_staff = require_role("staff")

register_error("user_not_found", 404, N_("No such user."))
register_error("cannot_suspend_self", 409, N_("You cannot suspend your own account."))

_SUSPEND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"reason": {"type": "string", "maxLength": 500, "description": "Kept in the audit log."}},
}
_SUSPENDED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "user_id": {"type": "integer"},
        "status": {"type": "string", "enum": ["suspended"]},
        "changed": {"type": "boolean", "description": "False when the account was already suspended."},
        "sessions_revoked": {
            "type": ["integer", "null"],
            "description": "Sessions ended; null when Redis was unreachable (they then end within 60 s).",
        },
    },
}


def _user_id(request: Request) -> int:
    value = str(request.path_params["user_id"])
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise ApiError("user_not_found")
    return int(value)


@routes.route("POST", "/users/{user_id}/suspend", summary="Staff: suspend an account and end its sessions (audited)",
              request_schema=_SUSPEND_SCHEMA, responses={200: _SUSPENDED_SCHEMA})
async def suspend(request: Request) -> JSONResponse:
    user = _require_staff(request)
    user_id = _user_id(request)
    body = await read_json(request) if await request.body() else {}
    reason = body.get("reason") if isinstance(body.get("reason"), str) else ""
    state = request.app.state
    try:
        changed = await suspend_user(state.db, actor_of(user), user_id, reason)
    except DomainError as error:
        raise api_error_for(error.code, error.detail) from None
    try:
        revoked: int | None = await revoke_user_sessions(state.redis, state.keys, user_id)
    except RedisError as error:
        # The suspension is committed; the session's periodic re-read applies it later.
        log.error("session revoke failed user_id=%s error=%s", user_id, type(error).__name__)
        revoked = None
    return json_response({"user_id": user_id, "status": "suspended", "changed": changed, "sessions_revoked": revoked})

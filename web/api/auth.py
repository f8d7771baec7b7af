"""Registration, the login session and the signed-in user's language over JSON.

Signing in (registration included) sets the `lang` cookie to the member's stored
locale, so the pages of that browser follow it until the visitor switches with `?lang=`.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from engine.accounts import is_locale
from web.api import ApiRoutes, read_json
from web.errors import ERRORS, ApiError
from web.i18n import INVALID_LOCALE_MSGID, LOCALES, switch_locale, translate_all
from web.ratelimit import check_rate, client_ip
from web.security import current_user, require_user
from web.users import (
    EmailTakenError,
    RegistrationForm,
    authenticate,
    create_member,
    login_user,
    logout_user,
    update_locale,
)

log = logging.getLogger("jangteo.web.auth")

routes = ApiRoutes(tag="auth")

USER_REF = {"$ref": "#/components/schemas/User"}

_SESSION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["user", "csrf_token"],
    "properties": {
        "user": {"oneOf": [USER_REF, {"type": "null"}]},
        "csrf_token": {"type": "string", "description": "Send it as X-CSRF-Token on unsafe requests."},
    },
}
_REGISTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["email", "password", "display_name"],
    "properties": {
        "email": {"type": "string", "format": "email", "maxLength": 254},
        "password": {"type": "string", "minLength": 8, "maxLength": 256},
        "display_name": {"type": "string", "minLength": 1, "maxLength": 30},
        "locale": {
            "type": "string",
            "enum": list(LOCALES),
            "description": "Language of the member's pages and mails. Without it, the request's page language"
            " (the `lang` cookie or `?lang=`, else ko).",
        },
    },
}
_ME_PATCH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["locale"],
    "additionalProperties": False,
    "properties": {
        "locale": {"type": "string", "enum": list(LOCALES), "description": "Language of the member's pages and mails."},
    },
}
_LOGIN_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["email", "password"],
    "properties": {"email": {"type": "string"}, "password": {"type": "string"}},
}


def session_payload(request: Request) -> dict[str, Any]:
    user = current_user(request)
    return {
        "user": user.to_dict() if user else None,
        "csrf_token": request.state.session.csrf_token,
    }


@routes.route(
    "POST",
    "/register",
    summary="Register a member account, sign it in and set the `lang` cookie to its locale",
    request_schema=_REGISTER_SCHEMA,
    responses={201: _SESSION_SCHEMA},
    idempotent=False,  # anonymous, and it sets the session cookie
)
async def register(request: Request) -> JSONResponse:
    data = await read_json(request)
    form = RegistrationForm.from_values(
        data.get("email"), data.get("password"), data.get("display_name"), data.get("locale"),
        page_locale=request.state.locale,
    )
    if not form.validate():
        fields = {name: {"message": translate_all(msgid)} for name, msgid in form.errors.items()}
        raise ApiError("validation_failed", fields=fields)
    try:
        user = await create_member(request.app.state.db, form)
    except EmailTakenError:
        fields = {"email": {"message": translate_all(ERRORS["email_taken"].msgid)}}
        raise ApiError("email_taken", fields=fields) from None
    login_user(request, user)
    switch_locale(request, user.locale)
    return JSONResponse(session_payload(request), status_code=201)


@routes.route(
    "GET",
    "/session",
    summary="Return the signed-in user (or null) and the session's CSRF token",
    responses={200: _SESSION_SCHEMA},
)
async def get_session(request: Request) -> JSONResponse:
    return JSONResponse(session_payload(request))


@routes.route(
    "POST",
    "/session",
    summary="Log in with email and password (rate-limited per address, and per address and email);"
    " sets the `lang` cookie to the member's stored locale",
    request_schema=_LOGIN_SCHEMA,
    responses={200: _SESSION_SCHEMA},
    idempotent=False,  # sets the session cookie, which a stored response would not
)
async def login(request: Request) -> JSONResponse:
    data = await read_json(request)
    email = data.get("email") if isinstance(data.get("email"), str) else ""
    password = data.get("password") if isinstance(data.get("password"), str) else ""
    settings = request.app.state.settings
    await check_rate(request, "login_ip", settings.login_ip_rate, client_ip(request))
    await check_rate(request, "login", settings.login_rate, f"{client_ip(request)}|{email.strip().lower()}")
    user = await authenticate(request.app.state.db, email, password)
    if user is None:
        raise ApiError("invalid_credentials")
    login_user(request, user)
    # As on the login page: the pages switch to the member's stored language.
    switch_locale(request, user.locale)
    return JSONResponse(session_payload(request))


@routes.route(
    "DELETE",
    "/session",
    summary="Log out; the response carries the new anonymous session's CSRF token",
    responses={200: _SESSION_SCHEMA},
    idempotent=False,  # sets the session cookie, which a stored response would not
)
async def logout(request: Request) -> JSONResponse:
    require_user(request, active=False)
    logout_user(request)
    return JSONResponse(session_payload(request))


@routes.route(
    "GET",
    "/me",
    summary="Return the signed-in user, including a suspended one (401 when anonymous)",
    responses={200: USER_REF},
)
async def get_me(request: Request) -> JSONResponse:
    user = require_user(request, active=False)
    return JSONResponse(user.to_dict())


@routes.route(
    "PATCH",
    "/me",
    summary="Change the signed-in member's language of pages and mails; also sets this browser's `lang` cookie",
    request_schema=_ME_PATCH_SCHEMA,
    responses={200: USER_REF},
    # Storing a locale twice has the effect of storing it once, and a stored response
    # would not set the cookie again.
    idempotent=False,
)
async def patch_me(request: Request) -> JSONResponse:
    user = require_user(request)
    data = await read_json(request)
    unknown = sorted(name for name in data if name != "locale")
    if unknown:
        raise ApiError("validation_failed", unknown_fields=unknown)
    locale = data.get("locale")
    if not is_locale(locale):
        raise ApiError("validation_failed", fields={"locale": {"message": translate_all(INVALID_LOCALE_MSGID)}})

    updated = await update_locale(request.app.state.db, user.id, locale)
    if updated is None:
        # The row was deleted after the session loaded it, so the session ends here.
        log.warning("locale not saved, user not found user_id=%s", user.id)
        logout_user(request)
        raise ApiError("not_authenticated")
    request.state.session.set_user(updated)
    request.state.user = updated
    switch_locale(request, locale)
    log.info("locale saved user_id=%s locale=%s", user.id, locale)
    return JSONResponse(updated.to_dict())

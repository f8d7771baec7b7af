"""Role guards, the websocket Origin check and the request body size limit."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.config import Settings
from web.errors import ApiError, error_response
from web.sessions import CurrentUser

log = logging.getLogger("jangteo.web.security")

Endpoint = Callable[[Request], Awaitable[Response]]

ROLES = ("member", "coordinator", "supplier", "staff")


# -- guards ------------------------------------------------------------------------

def current_user(request: Request) -> CurrentUser | None:
    return getattr(request.state, "user", None)


def require_user(request: Request, *, active: bool = True) -> CurrentUser:
    """Return the signed-in user or raise 401 `not_authenticated`.

    With `active` (the default) a suspended account raises 403 `account_suspended`.
    Pages turn the 401 into a redirect to the login form.
    """
    user = current_user(request)
    if user is None:
        raise ApiError("not_authenticated")
    if active and not user.is_active:
        raise ApiError("account_suspended")
    return user


def require_role(*roles: str) -> Callable[[Request], CurrentUser]:
    """Build a guard that returns the signed-in, active user if their role is one of `roles`."""
    unknown = set(roles) - set(ROLES)
    if not roles or unknown:
        raise ValueError(f"require_role expects roles from {ROLES}, got {roles}")

    def guard(request: Request) -> CurrentUser:
        user = require_user(request)
        if user.role not in roles:
            raise ApiError("forbidden")
        return user

    return guard


def login_required(endpoint: Endpoint) -> Endpoint:
    """Decorate an endpoint so that it runs only for a signed-in, active user."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        require_user(request)
        return await endpoint(request)

    return wrapper


def role_required(*roles: str) -> Callable[[Endpoint], Endpoint]:
    """Decorate an endpoint so that it runs only for an active user with one of `roles`."""
    guard = require_role(*roles)

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapper(request: Request) -> Response:
            guard(request)
            return await endpoint(request)

        return wrapper

    return decorate


# -- websocket Origin ----------------------------------------------------------------

def origin_allowed(headers: Mapping[str, str] | Headers, settings: Settings) -> bool:
    """Return whether the request's Origin is one of `settings.origins`.

    Browsers always send Origin on a websocket handshake, so a missing Origin is
    rejected too; non-browser clients must send one of the allowed origins.
    """
    origin = headers.get("origin")
    if not origin:
        return False
    return origin.rstrip("/") in {allowed.rstrip("/") for allowed in settings.origins}


# -- body size -----------------------------------------------------------------------

class BodyTooLarge(Exception):
    """The request body grew past the limit while it was being read."""


class BodySizeLimitMiddleware:
    """Reject request bodies over the limit with 413 `body_too_large`.

    A declared Content-Length over the limit is rejected before any body is read. A
    chunked or understated body is counted as it streams, and rejected once it passes
    the limit. `limits_by_prefix` sets other limits for path prefixes (longest wins).
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, limits_by_prefix: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.limits_by_prefix = sorted((limits_by_prefix or {}).items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int:
        for prefix, limit in self.limits_by_prefix:
            if path.startswith(prefix):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        limit_bytes = self.limit_for(scope["path"])
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await self._reject(scope, receive, send, ApiError("bad_request", reason="invalid Content-Length"))
                return
            if int(declared) > limit_bytes:
                await self._reject(scope, receive, send, ApiError("body_too_large", limit_bytes=limit_bytes))
                return

        received_bytes = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received_bytes
            message = await receive()
            if message["type"] == "http.request":
                received_bytes += len(message.get("body", b""))
                if received_bytes > limit_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if response_started:
                # The endpoint responded before reading the whole body, so there is nothing to add.
                log.warning("body over limit after response start path=%s", scope["path"])
                return
            await self._reject(scope, receive, send, ApiError("body_too_large", limit_bytes=limit_bytes))

    @staticmethod
    async def _reject(scope: Scope, receive: Receive, send: Send, error: ApiError) -> None:
        response = error_response(Request(scope, receive), error)
        # The unread body stays in the socket; closing makes the server drop it.
        response.headers["connection"] = "close"
        await response(scope, receive, send)

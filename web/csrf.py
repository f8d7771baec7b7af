"""Synchronizer-token CSRF check for every unsafe request (pages and API).

The token lives in the session (`Session.csrf_token`; anonymous sessions get one
too, for the login and registration forms). A POST, PUT, PATCH or DELETE must carry
it in the `X-CSRF-Token` header (htmx sends it from `hx-headers` on `<body>`, API
clients from `GET /api/v1/session`) or in the form field `csrf_token`. A missing or
wrong token gets 403 `csrf_failed` before the endpoint runs, so nothing is
written.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection
from urllib.parse import parse_qsl

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.errors import ApiError, error_response

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """Return a receive callable that yields `body` once, then defers to `receive`."""
    sent = False

    async def replay_receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay_receive


async def _token_from_form(scope: Scope, body: bytes, receive: Receive) -> str | None:
    content_type = Headers(scope=scope).get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        for name, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
            if name == CSRF_FIELD:
                return value
        return None
    if content_type.startswith("multipart/form-data"):
        request = Request(scope, _replay(body, receive))
        async with request.form() as form:
            value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


class CSRFMiddleware:
    """Reject unsafe requests without the session's CSRF token (runs after sessions).

    The body of a form request is read here, bounded by the body-size middleware that
    runs before this one, and replayed to the endpoint. Paths starting with one of
    `exempt_prefixes` (for example server-to-server webhooks) are not checked.
    """

    def __init__(self, app: ASGIApp, *, exempt_prefixes: Collection[str] = ()) -> None:
        self.app = app
        self.exempt_prefixes = tuple(exempt_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in UNSAFE_METHODS
            or scope["path"].startswith(self.exempt_prefixes)
        ):
            await self.app(scope, receive, send)
            return

        session = scope["state"]["session"]
        expected = session.data.get("csrf")
        supplied = Headers(scope=scope).get(CSRF_HEADER)
        if supplied is None:
            body = await _read_body(receive)
            receive = _replay(body, receive)
            supplied = await _token_from_form(scope, body, receive)

        if not expected or not supplied or not hmac.compare_digest(expected.encode(), supplied.encode()):
            response = error_response(Request(scope, receive), ApiError("csrf_failed"))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

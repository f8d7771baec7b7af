"""The protocol `/ws/bids` and `/ws/pledges` share: a checked handshake, a hello, then one ack per command.

An API client that sends many commands opens one socket instead of one HTTP
request per command. Each route passes its commands (one coroutine per message
type) to `serve_ack_socket`, which runs the protocol (JSON text frames):

1. The handshake needs an allowed Origin and the cookie of a signed-in, active
   session. Otherwise the socket is closed with 1008 before it is accepted, which
   the client sees as HTTP 403.
2. The first message must be `{"type": "hello", "csrf_token": T}` with the
   session's CSRF token (as in `X-CSRF-Token`). The reply is `{"type": "ready"}`.
   A missing or wrong token gets a `csrf_failed` error and a 1008 close, and so does
   no hello within `ws_hello_timeout_s` seconds, so an idle socket that never signs
   in does not stay open.
3. Each later message is one command, answered in order by
   `{"type": "ack", "client_id": C, "accepted": true, ...}` with the fields the
   command returns, or by `{"type": "ack", "client_id": C, "accepted": false,
   "error": {...}}` with the `ApiError` body the matching HTTP route sends. `C` is
   the message's `client_id`, or null when it has none. A binary frame, or a text
   frame that is not a JSON object with a known `type`, is answered
   `{"type": "error", "error": {...}}` (`invalid_json`), and the socket stays open.
   A text frame over `max_ws_frame_bytes` bytes of UTF-8 closes the socket with 1009.
   uvicorn's `ws_max_size`, set to the same limit in `web.__main__`, closes the
   socket on any larger frame before the app reads it. So the check here applies
   only when the app runs under a server with a larger limit.
4. `accepted: false` means the command was not confirmed. For most codes it was
   rejected and changed nothing. For `not_confirmed`, `pledge_not_confirmed` and
   `result_unknown` it may have been applied, so the client sends it again with the
   same `client_id`. The bid and pledge commands apply one client id at most once,
   and a retry returns the first receipt. `result_unknown` is the ack of a command
   that failed with an unexpected error (a PostgreSQL error, for example). The
   error is logged, and the socket stays open.

Messages of one socket are handled one at a time, in order. The session and its
user are read at the handshake. Before each command the socket checks that the
session still exists (one batched EXISTS): once the session was revoked
(suspension, role change) or ended by a logout, the next command is answered with
an `{"type": "error"}` message of code `not_authenticated`, and the socket is
closed with 1008.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from engine.auction.service import CLIENT_ID_PATTERN
from web.errors import ApiError, register_error
from web.i18n import N_
from web.security import origin_allowed
from web.sessions import SessionCheck, SessionEnded

log = logging.getLogger("jangteo.web.ack_socket")

register_error("result_unknown", 500, N_(
    "The server failed while handling this request, so it may or may not have been applied."
    " Send it again with the same client_id."
))

CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
# Message fields logged with a failed command, such as `lot_id` and `campaign_id`.
_ID_FIELD_PATTERN = re.compile(r"[a-z_]{1,32}_id")

# A command gets the socket, the parsed message and the session check, which it
# must await (through the place_* functions) before it changes anything. It returns
# the fields of an accepted ack, raises ApiError to reject the command, or raises
# SessionEnded.
Command = Callable[[WebSocket, dict[str, Any], SessionCheck], Awaitable[dict[str, Any]]]


async def serve_ack_socket(websocket: WebSocket, commands: Mapping[str, Command], *, expected: str) -> None:
    """Run the protocol on `websocket` until the client leaves.

    `expected` names the accepted message types in the `invalid_json` error's detail.
    """
    state = websocket.scope.get("state", {})
    settings = websocket.app.state.settings
    user = state.get("user")
    reason = _handshake_rejection(websocket, user)
    if reason is not None:
        log.info("ws rejected path=%s reason=%s", websocket.url.path, reason)
        await websocket.close(CLOSE_POLICY_VIOLATION)
        return
    await websocket.accept()
    try:
        if not await _hello(websocket, state.get("session")):
            return
        failures = _FailureLog(websocket.url.path, user.id)
        while True:
            text = await _receive_text(websocket)
            if text is None:
                await _send_error(websocket, ApiError("invalid_json", expected="a text frame"))
                continue
            if len(text.encode()) > settings.max_ws_frame_bytes:
                await websocket.close(CLOSE_MESSAGE_TOO_BIG)
                return
            app_state = websocket.app.state
            check = SessionCheck.submit(app_state.batcher, app_state.keys, state.get("session"))
            try:
                reply: bytes | None = await _answer(websocket, text, commands, expected, check, failures)
            except SessionEnded:
                reply = None
            # A command that changes anything awaited the check first. A command
            # rejected before that, or an invalid message, gets its reply only while
            # the session is alive.
            if reply is None or not await check.alive():
                await _send_error(websocket, ApiError("not_authenticated"))
                await websocket.close(CLOSE_POLICY_VIOLATION)
                return
            await websocket.send_text(reply.decode())
    except WebSocketDisconnect:
        return


def _handshake_rejection(websocket: WebSocket, user: Any) -> str | None:
    """Return why the handshake is rejected, or None to accept it."""
    if not origin_allowed(websocket.headers, websocket.app.state.settings):
        return "origin"
    if user is None:
        return "not_authenticated"
    if not user.is_active:
        return "account_suspended"
    return None


async def _hello(websocket: WebSocket, session: Any) -> bool:
    """Check the first message's CSRF token against the session's, and close with 1008 when it does not match."""
    try:
        text = await asyncio.wait_for(_receive_text(websocket), websocket.app.state.settings.ws_hello_timeout_s)
    except TimeoutError:
        log.info("ws hello timed out path=%s", websocket.url.path)
        text = None
    message = _parse_message(text) if text is not None else None
    expected = session.data.get("csrf") if session is not None else None
    token = message.get("csrf_token") if message is not None and message.get("type") == "hello" else None
    if not expected or not isinstance(token, str) or not hmac.compare_digest(token, expected):
        await _send_error(websocket, ApiError("csrf_failed"))
        await websocket.close(CLOSE_POLICY_VIOLATION)
        return False
    await websocket.send_text('{"type":"ready"}')
    return True


async def _answer(
    websocket: WebSocket,
    text: str,
    commands: Mapping[str, Command],
    expected: str,
    check: SessionCheck,
    failures: _FailureLog,
) -> bytes:
    message = _parse_message(text)
    kind = message.get("type") if message is not None else None
    command = commands.get(kind) if isinstance(kind, str) else None
    if message is None or command is None:
        return orjson.dumps({"type": "error", **ApiError("invalid_json", expected=expected).to_json()})
    client_id = message.get("client_id")
    try:
        fields = await command(websocket, message, check)
    except ApiError as error:
        return orjson.dumps({"type": "ack", "client_id": client_id, "accepted": False, **error.to_json()})
    except SessionEnded:
        raise
    except Exception as error:
        # The command may have changed state before it failed, so the ack must not
        # say that it was rejected. The ack carries no detail of the error, because
        # its text may contain SQL or row values. Only the log gets the text.
        failures.record(error, message)
        fields = ApiError("result_unknown").to_json()
        return orjson.dumps({"type": "ack", "client_id": client_id, "accepted": False, **fields})
    return orjson.dumps({"type": "ack", "client_id": client_id, "accepted": True, **fields})


class _FailureLog:
    """Error log of one socket's commands that failed with an unexpected exception.

    The first failure is logged with its traceback, and each later one as one line
    with the running count, so a client that repeats a failing command cannot flood
    the log with tracebacks.
    """

    def __init__(self, path: str, user_id: int) -> None:
        self.path = path
        self.user_id = user_id
        self.count = 0

    def record(self, error: Exception, message: dict[str, Any]) -> None:
        self.count += 1
        # Only the message's type, a well-formed client id and its integer ids are
        # logged, because the other fields are whatever the client sent.
        kind = message.get("type")
        client_id = message.get("client_id")
        if not isinstance(client_id, str) or not CLIENT_ID_PATTERN.fullmatch(client_id):
            client_id = None
        ids = " ".join(
            f"{name}={value}" for name, value in message.items()
            if _ID_FIELD_PATTERN.fullmatch(name) and isinstance(value, int) and not isinstance(value, bool)
        )
        log.error(
            "ws command failed path=%s user_id=%d type=%s client_id=%s %s error=%s failures=%d",
            self.path, self.user_id, kind, client_id, ids, type(error).__name__, self.count,
            exc_info=error if self.count == 1 else None,
        )


async def _send_error(websocket: WebSocket, error: ApiError) -> None:
    await websocket.send_text(orjson.dumps({"type": "error", **error.to_json()}).decode())


async def _receive_text(websocket: WebSocket) -> str | None:
    """Return the next text frame, or None for a binary frame; raise WebSocketDisconnect on close."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    return text if isinstance(text, str) else None


def _parse_message(text: str) -> dict[str, Any] | None:
    """Return the JSON object in `text`, or None when it is not valid JSON or not an object."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None

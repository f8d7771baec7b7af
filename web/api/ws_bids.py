"""`/ws/bids`: bids over one websocket, for API clients that bid often.

The pages bid over HTTP (`POST /api/v1/lots/{id}/bids`), so a bid typed while
offline is never replayed. This socket runs the same code per bid as that route
(`web.live.bids.place_bid`: signed-in check, rate limit per user, the engine's
checks, one Lua script call, the receipt), without an HTTP request per bid.

Protocol (JSON text frames):

1. The handshake needs an allowed Origin and a signed-in session cookie; otherwise
   the server responds 403 (a close with 1008 before accepting).
2. The first message must be `{"type": "hello", "csrf_token": T}` with the
   session's CSRF token (as in `X-CSRF-Token`); the answer is `{"type": "ready"}`,
   and a wrong token closes the socket with 1008.
3. Then `{"type": "bid", "lot_id": N, "amount_won": A, "client_id": C}` (or
   `"type": "buy_now"` without an amount); each is answered in order by
   `{"type": "ack", "client_id": C, "accepted": true, "receipt": ..., "live": ...}`
   or `{"type": "ack", "client_id": C, "accepted": false, "error": {...}}` with the
   error body of the HTTP route. `not_confirmed` means the bid may or may not have
   been applied: send it again with the same client id. A `lot_id` that is not an
   integer in 1..2^63-1 is acked with `not_found`, and a binary frame or a frame
   that is not a bid message is answered `{"type": "error", ...}` (`invalid_json`);
   the socket stays open.

Messages of one socket are handled one at a time, in order. The session and its
user are read at the handshake, and before each bid the socket checks that the
session still exists: once it was revoked (suspension, role change) or ended by a
logout, the next bid is answered `not_authenticated` and the socket is closed with 1008.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import asdict
from typing import Any

import orjson
from redis.exceptions import RedisError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from web.api.lots import live_json
from web.errors import ApiError
from web.ids import is_row_id
from web.live.bids import BidAccepted, place_bid, place_buy_now
from web.security import origin_allowed

log = logging.getLogger("jangteo.web.ws_bids")

CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009


async def bid_socket(websocket: WebSocket) -> None:
    state = websocket.scope.get("state", {})
    settings = websocket.app.state.settings
    user = state.get("user")
    if not origin_allowed(websocket.headers, settings) or user is None or not user.is_active:
        log.info("ws bids rejected reason=%s", "origin" if user is not None else "not_authenticated")
        await websocket.close(CLOSE_POLICY_VIOLATION)
        return
    await websocket.accept()
    try:
        if not await _hello(websocket, state.get("session")):
            return
        while True:
            text = await _receive_text(websocket)
            if text is None:
                error = ApiError("invalid_json", expected="a text frame")
                await websocket.send_text(orjson.dumps({"type": "error", **error.to_json()}).decode())
                continue
            if len(text) > settings.max_ws_frame_bytes:
                await websocket.close(CLOSE_MESSAGE_TOO_BIG)
                return
            if not await _session_alive(websocket, state.get("session")):
                error = ApiError("not_authenticated")
                await websocket.send_text(orjson.dumps({"type": "error", **error.to_json()}).decode())
                await websocket.close(CLOSE_POLICY_VIOLATION)
                return
            reply = await _answer(websocket, text)
            await websocket.send_text(reply.decode())
    except WebSocketDisconnect:
        return


async def _session_alive(websocket: WebSocket, session: Any) -> bool:
    """Return whether the socket's session still exists in Redis (one batched EXISTS per bid)."""
    if session is None or session.id is None:
        return False
    app_state = websocket.app.state
    try:
        return bool(await app_state.batcher.command("EXISTS", app_state.keys.session(session.id)))
    except RedisError:
        # The bid itself needs Redis and is answered not_confirmed.
        return True


async def _hello(websocket: WebSocket, session: Any) -> bool:
    """Check the first message's CSRF token against the session's; close with 1008 when wrong."""
    text = await _receive_text(websocket)
    message = _parse(text) if text is not None else None
    expected = session.data.get("csrf") if session is not None else None
    token = message.get("csrf_token") if message is not None and message.get("type") == "hello" else None
    if not expected or not isinstance(token, str) or not hmac.compare_digest(token, expected):
        await websocket.send_text(orjson.dumps({"type": "error", **ApiError("csrf_failed").to_json()}).decode())
        await websocket.close(CLOSE_POLICY_VIOLATION)
        return False
    await websocket.send_text('{"type":"ready"}')
    return True


async def _answer(websocket: WebSocket, text: str) -> bytes:
    message = _parse(text)
    if message is None or message.get("type") not in ("bid", "buy_now"):
        error = ApiError("invalid_json", expected="bid or buy_now message")
        return orjson.dumps({"type": "error", **error.to_json()})
    client_id = message.get("client_id")
    lot_id = message.get("lot_id")
    if not is_row_id(lot_id):
        error = ApiError("not_found")
        return orjson.dumps({"type": "ack", "client_id": client_id, "accepted": False, **error.to_json()})
    try:
        if message["type"] == "bid":
            accepted = await place_bid(websocket, lot_id, message.get("amount_won"), client_id)  # type: ignore[arg-type]
        else:
            accepted = await place_buy_now(websocket, lot_id, client_id)  # type: ignore[arg-type]
    except ApiError as error:
        return orjson.dumps({"type": "ack", "client_id": client_id, "accepted": False, **error.to_json()})
    return orjson.dumps({"type": "ack", "client_id": client_id, "accepted": True, **_accepted_json(accepted)})


def _accepted_json(accepted: BidAccepted) -> dict[str, Any]:
    return {
        "receipt": asdict(accepted.receipt),
        "live": live_json(accepted.snapshot) if accepted.snapshot else None,
    }


async def _receive_text(websocket: WebSocket) -> str | None:
    """Return the next text frame, or None for a binary frame; raise WebSocketDisconnect on close."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    return text if isinstance(text, str) else None


def _parse(text: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


routes = [WebSocketRoute("/ws/bids", bid_socket, name="bid_socket")]

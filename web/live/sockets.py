"""Websocket endpoints: `/ws/lots/{lot_id}` (a lot page) and `/ws/staff` (the console).

The sockets only push; bids go over HTTP, so nothing typed while disconnected is
queued and replayed later. A frame from the client is read and ignored, except
that one larger than `settings.max_ws_frame_bytes` closes the socket with 1009
(uvicorn's `ws_max_size` refuses larger frames before they reach the app).
"""

from __future__ import annotations

import logging

import asyncpg
from redis.exceptions import RedisError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from web import ids  # noqa: F401  (registers the {lot_id:id} convertor used below)
from web.live.connection import CLOSE_MESSAGE_TOO_BIG, CLOSE_POLICY_VIOLATION, Watcher
from web.live.hub import LiveHub, LotNotFound
from web.security import origin_allowed

log = logging.getLogger("jangteo.web.live")

CLOSE_INTERNAL_ERROR = 1011


async def lot_socket(websocket: WebSocket) -> None:
    user = websocket.scope.get("state", {}).get("user")
    await _serve(websocket, lot_id=int(websocket.path_params["lot_id"]), staff=False,
                 user_id=user.id if user is not None and user.is_active else None)


async def staff_socket(websocket: WebSocket) -> None:
    user = websocket.scope.get("state", {}).get("user")
    if user is None or not user.is_active or not user.is_staff:
        # Closing before accept makes the server reply 403 to the handshake.
        await websocket.close(CLOSE_POLICY_VIOLATION)
        return
    await _serve(websocket, lot_id=None, staff=True, user_id=user.id)


async def _serve(websocket: WebSocket, *, lot_id: int | None, staff: bool, user_id: int | None) -> None:
    app = websocket.app
    settings = app.state.settings
    if not origin_allowed(websocket.headers, settings):
        log.info("ws rejected reason=origin path=%s", websocket.url.path)
        await websocket.close(CLOSE_POLICY_VIOLATION)
        return
    hub: LiveHub = app.state.hub
    locale = websocket.scope.get("state", {}).get("locale", "ko")
    await websocket.accept()
    watcher = Watcher(
        websocket, lot_id=lot_id, user_id=user_id, locale=locale, staff=staff, max_pending=hub.max_pending
    )
    # Registered before the snapshot is read, so no event falls between the two.
    hub.register(watcher)
    try:
        try:
            text, seqs = await hub.snapshot_for(watcher)
        except LotNotFound:
            watcher.close(CLOSE_POLICY_VIOLATION, "no such lot")
        except (RedisError, asyncpg.PostgresError, OSError) as error:
            log.warning("ws snapshot failed lot_id=%s error=%s", lot_id, type(error).__name__)
            watcher.close(CLOSE_INTERNAL_ERROR, "try again")
        else:
            watcher.prime(text, seqs)
        await _read_until_closed(websocket, watcher, settings.max_ws_frame_bytes)
    finally:
        hub.unregister(watcher)
        await watcher.stop()


async def _read_until_closed(websocket: WebSocket, watcher: Watcher, max_frame_bytes: int) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        size = len(text.encode()) if text is not None else len(message.get("bytes") or b"")
        if size > max_frame_bytes and not watcher.closed:
            log.info("ws closed reason=frame_too_big size=%d", size)
            watcher.close(CLOSE_MESSAGE_TOO_BIG, "frame too big")


routes = [
    WebSocketRoute("/ws/lots/{lot_id:id}", lot_socket, name="lot_socket"),
    WebSocketRoute("/ws/staff", staff_socket, name="staff_socket"),
]

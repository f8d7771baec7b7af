"""The coordinator's live roster of a complex order: a hub extension and its websocket.

`engine.complexorders` publishes `{"type": "complex", "complex_order_id", "event",
"participant_id"}` on the events channel after each join, change, close, arrival,
handover and refund. The hub hands those events to `RosterExtension`, which
renders the changed roster row (a join appends it, a change replaces it by id)
and the totals, once per locale, and offers them to the coordinator's sockets of
that complex order. Other events re-send the whole roster. The roster shows
names, phones and whole unit numbers, so only the order's coordinator and staff
may open `/ws/complex/{id}`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import asyncpg
from redis.exceptions import RedisError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from engine.complexorders.model import ComplexOrder, fetch_complex, fetch_roster, totals_of
from web.live.connection import CLOSE_MESSAGE_TOO_BIG, CLOSE_POLICY_VIOLATION, CLOSE_TRY_AGAIN_LATER, Outgoing, Watcher
from web.security import origin_allowed
from web.templating import LocalizedTemplates

log = logging.getLogger("jangteo.web.live")

CLOSE_INTERNAL_ERROR = 1011
_ROW_EVENTS = frozenset({"join", "change"})


class RosterExtension:
    """Live roster fan-out for the complex orders watched from this process."""

    event_type = "complex"

    def __init__(self, *, db: asyncpg.Pool, templates: LocalizedTemplates, max_pending: int = 32) -> None:
        self.db = db
        self.templates = templates
        self.max_pending = max_pending
        self._watchers: dict[int, set[Watcher]] = {}

    # -- watchers ------------------------------------------------------------------

    def register(self, complex_order_id: int, watcher: Watcher) -> None:
        self._watchers.setdefault(complex_order_id, set()).add(watcher)

    def unregister(self, complex_order_id: int, watcher: Watcher) -> None:
        group = self._watchers.get(complex_order_id)
        if group is None:
            return
        group.discard(watcher)
        if not group:
            self._watchers.pop(complex_order_id, None)

    def watchers(self) -> Iterable[Watcher]:
        for group in self._watchers.values():
            yield from group

    def _offer(self, complex_order_id: int, watcher: Watcher, text: str) -> None:
        if not watcher.offer(Outgoing(text, -1, 0)):
            log.warning("ws slow consumer closed complex_order_id=%s", complex_order_id)
            self.unregister(complex_order_id, watcher)
            watcher.close(CLOSE_TRY_AGAIN_LATER, "too slow, reconnect")

    # -- rendering -----------------------------------------------------------------

    def _context(self, complex_order: ComplexOrder, roster: list[Any]) -> dict[str, Any]:
        return {"order": complex_order, "roster": roster, "totals": totals_of(complex_order, roster)}

    async def snapshot(self, complex_order_id: int, locale: str) -> str | None:
        """Render the whole roster and totals as out-of-band swaps; None if the order is gone."""
        complex_order = await fetch_complex(self.db, complex_order_id)
        if complex_order is None:
            return None
        roster = await fetch_roster(self.db, complex_order)
        return self.templates.render("complex/_roster_snapshot.html", locale, oob=True,
                                     **self._context(complex_order, roster))

    # -- LiveExtension ---------------------------------------------------------------

    async def dispatch(self, event: dict[str, Any]) -> None:
        complex_order_id = int(event["complex_order_id"])
        watchers = list(self._watchers.get(complex_order_id, ()))
        if not watchers:
            return
        complex_order = await fetch_complex(self.db, complex_order_id)
        if complex_order is None:
            return
        roster = await fetch_roster(self.db, complex_order)
        context = self._context(complex_order, roster)
        kind = str(event.get("event"))
        participant_id = event.get("participant_id")
        row = next((row for row in roster if row.participant_id == participant_id), None)
        rendered: dict[str, str] = {}
        for watcher in watchers:
            locale = watcher.locale
            if locale not in rendered:
                if kind in _ROW_EVENTS and row is not None:
                    rendered[locale] = self.templates.render(
                        "complex/_roster_push.html", locale, row=row, appended=kind == "join", **context
                    )
                else:
                    rendered[locale] = self.templates.render("complex/_roster_snapshot.html", locale, oob=True,
                                                             **context)
            self._offer(complex_order_id, watcher, rendered[locale])

    async def resync(self) -> None:
        for complex_order_id, group in list(self._watchers.items()):
            for watcher in list(group):
                try:
                    text = await self.snapshot(complex_order_id, watcher.locale)
                except (asyncpg.PostgresError, OSError) as error:
                    log.warning("roster resync failed complex_order_id=%s error=%s", complex_order_id,
                                type(error).__name__)
                    return
                if text is not None:
                    self._offer(complex_order_id, watcher, text)


# -- the websocket -------------------------------------------------------------------


async def roster_socket(websocket: WebSocket) -> None:
    """Push the roster of one complex order to its coordinator (or staff); others get 403."""
    app = websocket.app
    complex_order_id = int(websocket.path_params["complex_order_id"])
    user = websocket.scope.get("state", {}).get("user")
    if not origin_allowed(websocket.headers, app.state.settings) or user is None or not user.is_active:
        await websocket.close(CLOSE_POLICY_VIOLATION)
        return
    coordinator_id = await app.state.db.fetchval(
        "SELECT coordinator_id FROM complex_orders WHERE id = $1", complex_order_id
    )
    if coordinator_id is None or (coordinator_id != user.id and not user.is_staff):
        log.info("ws rejected reason=not_coordinator complex_order_id=%s", complex_order_id)
        await websocket.close(CLOSE_POLICY_VIOLATION)
        return

    extension: RosterExtension = app.state.complex_roster  # set by web.live.start_live
    locale = websocket.scope.get("state", {}).get("locale", "ko")
    await websocket.accept()
    watcher = Watcher(websocket, lot_id=None, user_id=user.id, locale=locale, max_pending=extension.max_pending)
    # Registered before the snapshot is read, so no event falls between the two.
    extension.register(complex_order_id, watcher)
    try:
        try:
            text = await extension.snapshot(complex_order_id, locale)
        except (RedisError, asyncpg.PostgresError, OSError) as error:
            log.warning("ws snapshot failed complex_order_id=%s error=%s", complex_order_id, type(error).__name__)
            watcher.close(CLOSE_INTERNAL_ERROR, "try again")
        else:
            watcher.prime(text or "", {})
        max_frame_bytes = app.state.settings.max_ws_frame_bytes
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text_frame = message.get("text")
            size = len(text_frame.encode()) if text_frame is not None else len(message.get("bytes") or b"")
            if size > max_frame_bytes and not watcher.closed:
                watcher.close(CLOSE_MESSAGE_TOO_BIG, "frame too big")
    finally:
        extension.unregister(complex_order_id, watcher)
        await watcher.stop()


routes = [WebSocketRoute("/ws/complex/{complex_order_id:int}", roster_socket, name="complex_roster_socket")]

"""One websocket watcher: a small bounded outbox and the writer task that drains it.

The hub hands every message to `Watcher.offer`, which never awaits: it only puts
the message into the outbox and wakes the writer. The writer sends whatever is
pending as one websocket message, so a connection that is slower than the event
rate receives fewer, larger messages instead of falling behind.

Messages come in two kinds:

- coalescable ones carry a key (the public state of one lot): a newer message with
  the same key replaces the pending one in place, so rapidly changing prices cost a
  slow connection nothing;
- the others (history rows, private notices, close results) are never dropped.
  When `max_pending` of them wait, they are merged into one pending message (the
  writer sends everything pending as one message anyway), so a burst of bids costs
  a watcher that is only a little behind nothing. When the pending text
  passes `max_pending_chars` characters in all, `offer` returns False and the hub closes the
  connection with 1013 (try again later). The client reconnects and gets a fresh
  snapshot instead.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger("jangteo.web.live")

# Codes the htmx ws extension reconnects on by itself: 1006 (abnormal), 1011
# (server error), 1012 (service restart) and 1013 (try again later).
CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013

_unique_keys = itertools.count()


@dataclass(frozen=True)
class Outgoing:
    """One rendered piece for one watcher; `lot_id` and `seq` order it against snapshots."""

    text: str
    lot_id: int
    seq: int
    coalesce_key: object | None = None


class Watcher:
    """One websocket connection of a lot page (one lot) or of the staff console (every lot)."""

    def __init__(
        self,
        websocket: WebSocket,
        *,
        lot_id: int | None,
        user_id: int | None,
        locale: str,
        staff: bool = False,
        max_pending: int = 32,
        max_pending_chars: int = 64 * 1024,
    ) -> None:
        self.websocket = websocket
        self.lot_id = lot_id  # None: every lot (the staff console)
        self.user_id = user_id
        self.locale = locale
        self.staff = staff
        self.max_pending = max_pending
        self.max_pending_chars = max_pending_chars
        self.closed = False
        self.close_code: int | None = None
        self._pending: dict[object, Outgoing] = {}
        self._wakeup = asyncio.Event()
        self._primed = False
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None

    # -- the hub's side (never awaits) -----------------------------------------------

    def offer(self, item: Outgoing) -> bool:
        """Queue `item`; return False when the outbox is full (the caller closes us)."""
        if self.closed:
            return True
        key = item.coalesce_key
        if key is not None and key in self._pending:
            # Replacing in place keeps the older position: the regions a state message
            # swaps are independent of the rows and notices queued around it.
            self._pending[key] = item
        else:
            if len(self._pending) >= self.max_pending:
                self._merge_unkeyed()
            self._pending[key if key is not None else ("unique", next(_unique_keys))] = item
            if sum(len(pending.text) for pending in self._pending.values()) > self.max_pending_chars:
                return False
        if self._primed:
            self._wakeup.set()
        return True

    def _merge_unkeyed(self) -> None:
        """Merge the pending messages that have no coalesce key into one, in their order.

        State messages keep their own entries, so later state still replaces them. The
        merged rows and notices may then be sent before a state message that was queued
        between them, which is harmless: they swap independent regions.
        """
        unkeyed = [
            (key, item) for key, item in self._pending.items()
            if isinstance(key, tuple) and key[:1] == ("unique",)
        ]
        if len(unkeyed) < 2:
            return
        first_key, first = unkeyed[0]
        merged = Outgoing(
            "".join(item.text for _, item in unkeyed), first.lot_id, max(item.seq for _, item in unkeyed)
        )
        for key, _ in unkeyed[1:]:
            del self._pending[key]
        self._pending[first_key] = merged

    def prime(self, text: str, seqs: Mapping[int, int]) -> None:
        """Put the connect snapshot first and drop queued items it already covers.

        The watcher is registered before the snapshot is read, so events published in
        between are queued. Those with a sequence number at or below the snapshot's
        for their lot are older than the snapshot, so they are dropped.
        """
        kept = {
            key: item
            for key, item in self._pending.items()
            if item.seq > seqs.get(item.lot_id, -1)
        }
        self._pending = {("snapshot", next(_unique_keys)): Outgoing(text, -1, 0), **kept}
        self._primed = True
        self._wakeup.set()

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop(), name=f"ws-writer-{id(self):x}")

    def close(self, code: int, reason: str = "") -> None:
        """Stop writing and close the socket with `code`, without waiting for the client."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self._pending.clear()
        if self._writer is not None:
            self._writer.cancel()
        self._closer = asyncio.create_task(self._close_socket(code, reason), name=f"ws-close-{id(self):x}")

    # -- the connection's side -------------------------------------------------------

    async def stop(self) -> None:
        """Cancel the writer (the connection ended) and wait for it and any close in flight."""
        self.closed = True
        tasks = [task for task in (self._writer, self._closer) if task is not None]
        if self._writer is not None:
            self._writer.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _write_loop(self) -> None:
        try:
            while not self.closed:
                await self._wakeup.wait()
                self._wakeup.clear()
                if not self._pending:
                    continue
                batch, self._pending = self._pending, {}
                # One websocket message per wake-up: the htmx ws extension swaps every
                # top-level element of a message. Fragments must not start with table
                # parts (<tr>, <tbody>), which the HTML parser drops outside a table.
                await self.websocket.send_text("".join(item.text for item in batch.values()))
        except (WebSocketDisconnect, RuntimeError, OSError) as error:
            # The client went away mid-send. The receive loop gets the disconnect.
            log.debug("ws send stopped error=%s", type(error).__name__)

    async def _close_socket(self, code: int, reason: str) -> None:
        try:
            # A slow consumer's transport may be paused, so this can wait until the
            # client reads again or the server's keepalive gives up on it. It runs in
            # its own task, so the fan-out never waits for it.
            await self.websocket.close(code, reason)
        except (RuntimeError, OSError, WebSocketDisconnect) as error:
            log.debug("ws close failed code=%s error=%s", code, type(error).__name__)

"""One websocket watcher: a small bounded outbox, flushed once per event-loop pass.

The hub hands every message to `Watcher.offer`, which never awaits: it puts the
message into the outbox and marks the watcher for the next flush. One callback per
event-loop pass flushes every marked watcher: it sends whatever is pending as one
websocket message, started eagerly (`web.live.eager`), so a send to a connection
whose transport accepts it finishes in the call, with no task per watcher. Only a
send that must wait (the client does not read, its buffer is full) continues in a
task, and the watcher's outbox fills meanwhile. So a connection that is slower than
the event rate receives fewer, larger messages instead of falling behind, and the
others never wait for it.

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

Watchers that are up to date have the same pieces pending after an event, so
within one flush they share one joined string. Where the server offers it, they
also share one encoded frame (`web.live.ws_protocol`), written to each transport
unchanged.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.websockets import WebSocket, WebSocketDisconnect

from web.live.eager import start_eagerly
from web.live.ws_protocol import FrameWriter, frame_writer, text_frame

log = logging.getLogger("jangteo.web.live")

# Codes the htmx ws extension reconnects on by itself: 1006 (abnormal), 1011
# (server error), 1012 (service restart) and 1013 (try again later).
CLOSE_POLICY_VIOLATION = 1008
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_SERVICE_RESTART = 1012
CLOSE_TRY_AGAIN_LATER = 1013

_unique_keys = itertools.count()

# Exceptions a send raises when the client is gone (Starlette, uvicorn, the transport).
_SEND_ERRORS = (WebSocketDisconnect, RuntimeError, OSError)


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
        self._sending: asyncio.Task[None] | None = None  # a send that had to wait
        self._closer: asyncio.Task[None] | None = None
        self._flusher: _Flusher | None = None  # set by prime()
        self._write_frame: FrameWriter | None = None  # set by prime(), where the server offers it

    # -- the hub's side (never awaits) -----------------------------------------------

    def offer(self, *items: Outgoing) -> bool:
        """Queue `items` for one message; return False when the outbox is full (the caller closes us)."""
        if self.closed:
            return True
        for item in items:
            key = item.coalesce_key
            if key is not None and key in self._pending:
                # Replacing in place keeps the older position: the regions a state message
                # swaps are independent of the rows and notices queued around it.
                self._pending[key] = item
                continue
            if len(self._pending) >= self.max_pending:
                self._merge_unkeyed()
            self._pending[key if key is not None else ("unique", next(_unique_keys))] = item
        if self._flusher is not None and self._sending is None:
            # Sent at the end of this event-loop pass: the outbox cannot grow further.
            self._flusher.mark(self)
            return True
        # Not primed yet, or a send waits for the client: the outbox grows, within limits.
        return sum(len(pending.text) for pending in self._pending.values()) <= self.max_pending_chars

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
        """Put the connect snapshot first, drop queued items it already covers, start sending.

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
        self._write_frame = frame_writer(self.websocket.scope)
        self._flusher = _flusher_of(asyncio.get_running_loop())
        self._flusher.mark(self)

    def close(self, code: int, reason: str = "") -> None:
        """Stop writing and close the socket with `code`, without waiting for the client."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        self._pending.clear()
        if self._sending is not None:
            self._sending.cancel()
        self._closer = asyncio.create_task(self._close_socket(code, reason), name=f"ws-close-{id(self):x}")

    # -- sending ---------------------------------------------------------------------

    def flush(self, messages: _Messages) -> None:
        """Send everything pending as one message, unless a send is still waiting.

        `messages` shares joined texts and frames between the watchers of one flush.
        """
        if self.closed or self._sending is not None or not self._pending:
            return
        batch, self._pending = self._pending, {}
        # One websocket message per flush: the htmx ws extension swaps every top-level
        # element of a message. Fragments must not start with table parts (<tr>,
        # <tbody>), which the HTML parser drops outside a table.
        message = messages.of(tuple(batch.values()))
        try:
            if self._write_frame is not None and self._write_frame(message.frame()):
                return
            # Without shared frames, or when the transport cannot take one now, the
            # ASGI send waits for the client (in a task) or raises as usual.
            task = start_eagerly(self.websocket.send({"type": "websocket.send", "text": message.text}))
        except Exception as error:  # noqa: BLE001 - the batch is gone either way
            self._send_failed(error)
            return
        if task is not None:
            self._sending = task
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending = None
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._send_failed(error)
        elif self._pending and self._flusher is not None:
            self._flusher.mark(self)

    def _send_failed(self, error: BaseException) -> None:
        if isinstance(error, _SEND_ERRORS):
            # The client went away mid-send. The receive loop gets the disconnect.
            log.debug("ws send stopped error=%s", type(error).__name__)
            self.closed = True
            self._pending.clear()
            return
        # The batch is lost, so the client must reconnect for a fresh snapshot. The
        # htmx ws extension reconnects on 1011.
        log.error("ws send failed error=%s", type(error).__name__, exc_info=error)
        self.close(CLOSE_INTERNAL_ERROR, "try again")

    # -- the connection's side -------------------------------------------------------

    async def stop(self) -> None:
        """Stop sending (the connection ended) and wait for a send or close in flight."""
        self.closed = True
        self._pending.clear()
        tasks = [task for task in (self._sending, self._closer) if task is not None]
        if self._sending is not None:
            self._sending.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def _close_socket(self, code: int, reason: str) -> None:
        try:
            # A slow consumer's transport may be paused, so this can wait until the
            # client reads again or the server's keepalive gives up on it. It runs in
            # its own task, so the fan-out never waits for it.
            await self.websocket.close(code, reason)
        except (RuntimeError, OSError, WebSocketDisconnect) as error:
            log.debug("ws close failed code=%s error=%s", code, type(error).__name__)


class _Message:
    """The text of one batch of pieces, and its frame once a watcher needs it."""

    __slots__ = ("items", "text", "_frame")

    def __init__(self, items: tuple[Outgoing, ...]) -> None:
        self.items = items  # kept alive, so their ids stay unique while the message is cached
        self.text = "".join([item.text for item in items])
        self._frame: bytes | None = None

    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = text_frame(self.text)
        return self._frame


class _Messages:
    """The recent messages of one flush, by the identities of their pieces.

    After an event, every watcher that was up to date has the same `Outgoing`
    objects pending, so the 1,000th watcher reuses the first one's text and frame.
    Only the `MAX_KEPT` most recently used are kept. One event yields a few
    distinct messages (per locale, with or without a notice). The snapshots of a
    reconnect storm are each unique, and they must not pile up until the pass ends.
    """

    MAX_KEPT = 16

    __slots__ = ("_by_items",)

    def __init__(self) -> None:
        self._by_items: dict[tuple[int, ...], _Message] = {}

    def of(self, items: tuple[Outgoing, ...]) -> _Message:
        key = tuple(map(id, items))
        message = self._by_items.pop(key, None)
        if message is None:
            if len(self._by_items) >= self.MAX_KEPT:
                del self._by_items[next(iter(self._by_items))]
            message = _Message(items)
        self._by_items[key] = message  # now the most recently used
        return message


class _Flusher:
    """The watchers of one event loop that have something to send, flushed in one callback."""

    def __init__(self) -> None:
        # No reference to the loop: it is this flusher's key in `_flushers`, a weak one.
        self._marked: dict[Watcher, None] = {}
        self._scheduled = False

    def mark(self, watcher: Watcher) -> None:
        self._marked[watcher] = None
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        marked, self._marked = self._marked, {}
        self._scheduled = False
        messages = _Messages()
        for watcher in marked:
            try:
                watcher.flush(messages)
            except Exception:  # one watcher's failure must not stop the others' messages
                log.exception("ws flush failed")


_flushers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Flusher] = weakref.WeakKeyDictionary()


def _flusher_of(loop: asyncio.AbstractEventLoop) -> _Flusher:
    flusher = _flushers.get(loop)
    if flusher is None:
        flusher = _flushers[loop] = _Flusher()
    return flusher

"""The websocket hub of one web process: one Redis subscription, many watchers.

Every change of a lot is published by the Lua scripts on `Keys.events_channel`
(see `engine/auction/lua/`). Each web process subscribes once and fans the events
out to the websockets connected to it, so a bid accepted by any process reaches
the watchers of every process.

For each event the hub renders the public fragments once per locale in use and
offers the same string to every watcher of that lot. Only the private notices
("you are winning", "you have been outbid") are rendered per recipient. They go
only to the connections of the new leader and of the previous leader. User
ids never leave the server.

Under load:

- `Watcher.offer` never awaits, so the fan-out loop never waits for a client. At
  the end of the event-loop pass, what each watcher has pending goes out as one
  message (see `web.live.connection`); a send finishes in that call unless the
  client stopped reading.
- The public state of a lot is coalesced per watcher: a watcher that is behind
  gets only the newest state. History rows, private notices and close results
  are never dropped; they are merged while a watcher is behind, and a watcher
  with more than `max_pending_chars` of text waiting is a slow consumer and is
  closed with 1013 (try again later). It reconnects and gets a full snapshot,
  and the others never notice it.
- Text is encoded by the server once per connection (ASGI has no pre-encoded
  frames, unlike `websockets.broadcast`). Rendering happens once per event and
  locale, not per connection.

Under failure:

- If the subscription breaks (Redis restart, network), the hub reconnects with
  backoff. Events published meanwhile are lost for this process, so after it
  subscribes again it sends every watcher a fresh snapshot of its lots.
- A watcher's socket that fails while sending ends only that watcher.
- On shutdown every socket is closed with 1012 (service restart), and the pages
  reconnect, to another process if there is one. Each (re)connect starts with a
  full snapshot carrying the lot's current sequence number.
- A slow consumer's socket may stay open at the TCP level after it was cut off
  (its close frame waits behind unread data) until the server's keepalive ping
  times out; it receives nothing more meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any, Protocol

import asyncpg
import orjson
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.auction.live import AuctionLive, Snapshot
from engine.keys import Keys
from web.live.connection import CLOSE_SERVICE_RESTART, CLOSE_TRY_AGAIN_LATER, Outgoing, Watcher
from web.live.render import LotRenderer
from web.live.views import (
    fetch_listed_terms,
    fetch_terms,
    history_row_from_event,
    notice_kind,
    read_snapshot,
    recent_history,
    snapshot_from_event,
)
from web.metrics import FANOUT_SECONDS, WS_CONNECTIONS

log = logging.getLogger("jangteo.web.live")

WS_SLOW_CLOSES = Counter(
    "jangteo_ws_slow_consumer_closes",
    "Websockets this process closed because the client did not keep up.",
)
LIVE_EVENTS = Counter("jangteo_live_events", "Live events received from Redis pub/sub, by event.", ["event"])

# Events after which per-user notices are recomputed for every watcher that bid.
_FINAL_EVENTS = frozenset({"close", "settled", "cancel", "void"})
# Lots the staff console lists.
STAFF_STATUSES = ("scheduled", "open", "closing", "held")
RESUBSCRIBE_MAX_DELAY_S = 5.0
BID_RATE_WINDOW_MS = 60_000
# Events after which a lot takes no more bids, so its per-lot caches can go.
_LOT_DONE_EVENTS = frozenset({"settled", "cancel"})
USER_NAME_CACHE_SIZE = 4096


class LotNotFound(Exception):
    """A watcher asked for a lot that exists neither in Redis nor in PostgreSQL."""


class LiveExtension(Protocol):
    """Fan-out of one more event `type` on the events channel, to watchers the extension keeps.

    The hub calls `dispatch` for each event of that type, closes the extension's
    watchers on shutdown and calls `resync` after its subscription was restored.
    """

    event_type: str

    async def dispatch(self, event: dict[str, Any]) -> None: ...

    def watchers(self) -> Iterable[Watcher]: ...

    async def resync(self) -> None: ...


class LiveHub:
    """Fan-out of live lot events to this process's websockets (see the module docstring)."""

    def __init__(
        self,
        *,
        redis: Redis,
        keys: Keys,
        live: AuctionLive,
        db: asyncpg.Pool,
        renderer: LotRenderer,
        max_pending: int = 32,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.live = live
        self.db = db
        self.renderer = renderer
        self.max_pending = max_pending
        self._lot_watchers: dict[int, set[Watcher]] = {}
        self._staff_watchers: set[Watcher] = set()
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._stopping = False
        # For the staff console: recent bid times per lot and cached lot facts, both
        # dropped when the lot's `settled` or `cancel` event arrives, and leader names
        # in an LRU of USER_NAME_CACHE_SIZE entries.
        self._bid_times: dict[int, deque[int]] = {}
        self._staff_info: dict[int, dict[str, Any]] = {}
        self._user_names: OrderedDict[int, str] = OrderedDict()
        self._extensions: dict[str, LiveExtension] = {}

    # -- lifecycle -----------------------------------------------------------------

    async def start(self, *, subscribe_timeout_s: float = 5.0) -> None:
        """Start the subscription task and wait (bounded) until it is subscribed."""
        self._task = asyncio.create_task(self._subscription_loop(), name="live-hub")
        try:
            await asyncio.wait_for(self._subscribed.wait(), subscribe_timeout_s)
        except TimeoutError:
            log.warning("live hub not subscribed yet after %.1fs; it keeps retrying", subscribe_timeout_s)

    async def stop(self) -> None:
        """Close every socket with 1012 (service restart) and end the subscription."""
        self._stopping = True
        for watcher in list(self.watchers()):
            watcher.close(CLOSE_SERVICE_RESTART, "server restart")
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        log.info("live hub stopped")

    def add_extension(self, extension: LiveExtension) -> None:
        """Route events of `extension.event_type` to `extension` (call before `start`)."""
        if extension.event_type == "lot" or extension.event_type in self._extensions:
            raise ValueError(f"live event type {extension.event_type!r} already has a handler")
        self._extensions[extension.event_type] = extension

    def watchers(self) -> Iterable[Watcher]:
        for watchers in self._lot_watchers.values():
            yield from watchers
        yield from self._staff_watchers
        for extension in self._extensions.values():
            yield from extension.watchers()

    def watcher_count(self, lot_id: int | None = None) -> int:
        if lot_id is None:
            return sum(len(group) for group in self._lot_watchers.values()) + len(self._staff_watchers)
        return len(self._lot_watchers.get(lot_id, ()))

    # -- watchers --------------------------------------------------------------------

    def register(self, watcher: Watcher) -> None:
        if watcher.staff:
            self._staff_watchers.add(watcher)
        else:
            assert watcher.lot_id is not None
            self._lot_watchers.setdefault(watcher.lot_id, set()).add(watcher)
        WS_CONNECTIONS.inc()

    def unregister(self, watcher: Watcher) -> None:
        if watcher.staff:
            present = watcher in self._staff_watchers
            self._staff_watchers.discard(watcher)
        else:
            group = self._lot_watchers.get(watcher.lot_id or 0, set())
            present = watcher in group
            group.discard(watcher)
            if not group:
                self._lot_watchers.pop(watcher.lot_id or 0, None)
        if present:
            WS_CONNECTIONS.dec()

    def _cut(self, watcher: Watcher) -> None:
        WS_SLOW_CLOSES.inc()
        log.warning("ws slow consumer closed lot_id=%s staff=%s", watcher.lot_id, watcher.staff)
        self.unregister(watcher)
        watcher.close(CLOSE_TRY_AGAIN_LATER, "too slow, reconnect")

    def _offer(self, watcher: Watcher, *items: Outgoing) -> None:
        if not watcher.offer(*items):
            self._cut(watcher)

    # -- snapshots -------------------------------------------------------------------

    async def snapshot_for(self, watcher: Watcher) -> tuple[str, dict[int, int]]:
        """Render the full snapshot a watcher gets on (re)connect, with each lot's seq."""
        if watcher.staff:
            return await self._staff_snapshot(watcher.locale)
        assert watcher.lot_id is not None
        lot_id = watcher.lot_id
        snapshot = await read_snapshot(self.db, self.live, lot_id)
        if snapshot is None:
            raise LotNotFound(lot_id)
        history = await recent_history(self.db, self.redis, self.keys, lot_id)
        bidders = set(await self.live.bidders(lot_id)) if watcher.user_id is not None else set()
        renderer = self.renderer
        text = (
            renderer.state(snapshot, watcher.locale, announce=False)
            + renderer.history(lot_id, history, watcher.locale)
            + renderer.notice(lot_id, notice_kind(snapshot, watcher.user_id, bidders), watcher.locale)
        )
        return text, {lot_id: snapshot.seq}

    async def _staff_snapshot(self, locale: str) -> tuple[str, dict[int, int]]:
        terms = await fetch_listed_terms(self.db, statuses=STAFF_STATUSES, limit=200)
        rows: list[tuple[Snapshot, dict[str, Any]]] = []
        for lot in terms:
            snapshot = await read_snapshot(self.db, self.live, lot.lot_id)
            if snapshot is None:
                continue
            rows.append((snapshot, await self._staff_row_info(snapshot)))
        return self.renderer.staff_rows(rows, locale), {snapshot.lot_id: snapshot.seq for snapshot, _ in rows}

    async def _staff_row_info(self, snapshot: Snapshot) -> dict[str, Any]:
        lot_id = snapshot.lot_id
        info = self._staff_info.get(lot_id)
        if info is None:
            terms = await fetch_terms(self.db, lot_id)
            info = {
                "title": terms.title if terms else f"#{lot_id}",
                "supplier_name": terms.supplier_name if terms else "",
                "scheduled_end_ms": int(terms.end_at.timestamp() * 1000) if terms else snapshot.end_ms,
            }
            self._staff_info[lot_id] = info
        leader_name = ""
        if snapshot.leader_id:
            leader_name = await self._user_name(snapshot.leader_id)
        times = self._bid_times.get(lot_id, deque())
        recent = sum(1 for at_ms in times if at_ms > snapshot.server_ms - BID_RATE_WINDOW_MS)
        return {
            **info,
            "leader_name": leader_name,
            "leader_id": snapshot.leader_id,
            "bids_per_minute": recent,
            "extended_s": max(0, (snapshot.end_ms - info["scheduled_end_ms"]) // 1000),
            "watchers": self.watcher_count(lot_id),
        }

    async def _user_name(self, user_id: int) -> str:
        name = self._user_names.get(user_id)
        if name is not None:
            self._user_names.move_to_end(user_id)
            return name
        name = await self.db.fetchval("SELECT display_name FROM users WHERE id = $1", user_id) or ""
        self._user_names[user_id] = name
        if len(self._user_names) > USER_NAME_CACHE_SIZE:
            self._user_names.popitem(last=False)
        return name

    def _forget_lot(self, lot_id: int, kind: str) -> None:
        """Drop a finished lot's staff-console caches, and its ack mark once the close recorded it."""
        self._bid_times.pop(lot_id, None)
        self._staff_info.pop(lot_id, None)
        if kind == "settled":
            # The close compared the ledger with this mark before the lot was settled.
            self.live.acks.forget(lot_id)

    # -- the subscription ------------------------------------------------------------

    async def _subscription_loop(self) -> None:
        delay_s = 0.1
        first = True
        while not self._stopping:
            try:
                async with self.redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.keys.events_channel)
                    self._subscribed.set()
                    log.info("live hub subscribed channel=%s", self.keys.events_channel)
                    if not first:
                        await self._resync_all()
                    first = False
                    delay_s = 0.1
                    async for message in pubsub.listen():
                        if message is None or message.get("type") != "message":
                            continue
                        await self._handle_message(message["data"])
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as error:
                self._subscribed.clear()
                log.warning("live hub subscription lost error=%s retry_in_s=%.1f", type(error).__name__, delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, RESUBSCRIBE_MAX_DELAY_S)

    async def _handle_message(self, data: bytes | str) -> None:
        received = time.perf_counter()
        try:
            event = orjson.loads(data)
            if event.get("type") != "lot":
                extension = self._extensions.get(str(event.get("type")))
                if extension is not None:
                    await extension.dispatch(event)
                return
            await self.dispatch(event)
        except (RedisError, asyncpg.PostgresError, OSError) as error:
            # A snapshot read failed, so this event reached no watcher. Watchers catch
            # up with the next event of the lot or on their next (re)connect.
            log.warning("live event fan-out failed lot_id=%s error=%s", _lot_of(data), type(error).__name__)
            return
        except (ValueError, KeyError, TypeError) as error:
            log.error("live event unreadable error=%s", error)
            return
        FANOUT_SECONDS.observe(time.perf_counter() - received)

    async def _resync_all(self) -> None:
        """Send every watcher a fresh snapshot after events may have been missed."""
        for extension in self._extensions.values():
            await extension.resync()
        lot_watchers = [watcher for group in self._lot_watchers.values() for watcher in group]
        for watcher in [*lot_watchers, *self._staff_watchers]:
            try:
                text, seqs = await self.snapshot_for(watcher)
            except (LotNotFound, RedisError, asyncpg.PostgresError, OSError):
                continue
            self._offer(watcher, Outgoing(text, -1, max(seqs.values(), default=0)))

    # -- fan-out ---------------------------------------------------------------------

    async def dispatch(self, event: dict[str, Any]) -> None:
        """Render one published lot event and offer it to every local watcher.

        After a `settled` or `cancel` event the lot's cached staff-console facts are
        dropped, even when the fan-out fails.
        """
        lot_id = int(event["lot_id"])
        kind = str(event["event"])
        try:
            await self._dispatch_lot(event, lot_id, kind)
        finally:
            if kind in _LOT_DONE_EVENTS:
                self._forget_lot(lot_id, kind)

    async def _dispatch_lot(self, event: dict[str, Any], lot_id: int, kind: str) -> None:
        LIVE_EVENTS.labels(kind).inc()
        if kind in ("bid", "buy_now"):
            times = self._bid_times.setdefault(lot_id, deque(maxlen=600))
            times.append(int(event["server_ms"]))
        watchers = list(self._lot_watchers.get(lot_id, ()))
        staff = list(self._staff_watchers)
        if not watchers and not staff:
            return

        snapshot = snapshot_from_event(event)
        if snapshot is None:
            # Non-bid events lack the derived fields (minimum next bid, reserve).
            snapshot = await read_snapshot(self.db, self.live, lot_id)
            if snapshot is None:
                return
        seq = snapshot.seq

        if watchers:
            await self._fan_out_lot(event, kind, snapshot, watchers)
        if staff:
            info = await self._staff_row_info(snapshot)
            rendered: dict[str, str] = {}
            for watcher in staff:
                if watcher.locale not in rendered:
                    rendered[watcher.locale] = self.renderer.staff_row(snapshot, info, watcher.locale)
                self._offer(watcher, Outgoing(rendered[watcher.locale], lot_id, seq, ("staff", lot_id)))

    async def _fan_out_lot(self, event: dict[str, Any], kind: str, snapshot: Snapshot, watchers: list[Watcher]) -> None:
        lot_id, seq = snapshot.lot_id, snapshot.seq
        renderer = self.renderer
        row = history_row_from_event(event) if kind in ("bid", "buy_now") else None
        full_history = (
            await recent_history(self.db, self.redis, self.keys, lot_id) if kind == "void" else None
        )

        # On a bid only the new and the previous leader get a private notice. After a
        # close, cancel or void, every watcher who bid gets theirs again.
        recipients: dict[int, str | None] = {}
        if kind in _FINAL_EVENTS:
            bidders = set(await self.live.bidders(lot_id))
            for watcher in watchers:
                if watcher.user_id is not None and watcher.user_id not in recipients:
                    recipients[watcher.user_id] = notice_kind(snapshot, watcher.user_id, bidders)
        elif snapshot.leader_id:
            previous = int(event.get("previous_leader_id") or 0)
            if previous and previous != snapshot.leader_id:
                recipients[previous] = notice_kind(snapshot, previous, {previous})
            recipients[snapshot.leader_id] = notice_kind(snapshot, snapshot.leader_id, set())

        public: dict[str, list[Outgoing]] = {}
        notices: dict[tuple[str | None, str], str] = {}
        for watcher in watchers:
            locale = watcher.locale
            if locale not in public:
                items = [Outgoing(renderer.state(snapshot, locale, announce=True), lot_id, seq, ("state", lot_id))]
                if row is not None:
                    items.append(Outgoing(renderer.history_row(lot_id, row, locale), lot_id, seq))
                if full_history is not None:
                    items.append(
                        Outgoing(renderer.history(lot_id, full_history, locale), lot_id, seq, ("history", lot_id))
                    )
                public[locale] = items
            if watcher.user_id in recipients and not watcher.closed:
                notice = recipients[watcher.user_id]
                key = (notice, locale)
                if key not in notices:
                    notices[key] = renderer.notice(lot_id, notice, locale)
                self._offer(watcher, *public[locale], Outgoing(notices[key], lot_id, seq))
            else:
                self._offer(watcher, *public[locale])


def _lot_of(data: bytes | str) -> str:
    try:
        return str(orjson.loads(data).get("lot_id"))
    except (ValueError, AttributeError):
        return "?"

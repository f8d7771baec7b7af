"""Live campaign pages: a hub extension for `type: "campaign"` events and `/ws/campaigns/{id}`.

The campaign scripts (`engine/groupbuy/lua/`) publish every pledge, change,
cancellation, release, close and settlement on the events channel with the
campaign's whole snapshot. The hub hands those events to `CampaignExtension`,
which renders the public regions once per locale and offers them to the sockets
watching that campaign on this process. As on lot pages:

- the public state is coalesced per watcher (key `("campaign", id)`), so a slow
  connection gets only the newest counters;
- the polite screen-reader sentence is pushed only when the tier, the price, the
  minimum or the status changes, never for every unit, and is coalesced too;
- the member's own pledge is pushed only to that member's sockets. The event's
  `user_id` picks the recipients and is never sent to a browser;
- a watcher that stopped reading and has more than `max_pending_chars` of text
  waiting is closed with 1013.

The socket only pushes. Pledges go over HTTP, so nothing typed while offline is
replayed later at a price the member never saw.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import asyncpg
from prometheus_client import Counter
from redis.exceptions import RedisError
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from engine.groupbuy.live import CampaignLive, CampaignSnapshot
from web.live.campaign_views import (
    CampaignView,
    committed_before,
    fetch_campaign,
    member_units,
    read_campaign_snapshot,
    snapshot_from_event,
    state_context,
    tier_index,
)
from web.live.connection import (
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_POLICY_VIOLATION,
    CLOSE_TRY_AGAIN_LATER,
    Outgoing,
    Watcher,
)
from web.metrics import WS_CONNECTIONS
from web.security import origin_allowed
from web.templating import LocalizedTemplates

log = logging.getLogger("jangteo.web.live")

CLOSE_INTERNAL_ERROR = 1011
CAMPAIGN_EVENTS = Counter(
    "jangteo_campaign_live_events", "Campaign events received from Redis pub/sub, by event.", ["event"]
)


def campaign_live(app: Any) -> CampaignLive:
    """Return the app's `CampaignLive`, created on first use on the app's Redis pool."""
    live = getattr(app.state, "campaign_live", None)
    if live is None:
        live = CampaignLive(app.state.redis, app.state.keys, batcher=getattr(app.state, "batcher", None))
        app.state.campaign_live = live
    return live


def should_announce(view: CampaignView, event: dict[str, Any], snapshot: CampaignSnapshot) -> bool:
    """Return whether an event changes the screen-reader sentence: the tier, price, minimum or status."""
    # A pledge cancellation and a staff cancel are both "cancel" events, so the
    # status tells them apart: member pledges leave the campaign open.
    if event.get("event") not in ("pledge", "change", "cancel", "hold_expired") or snapshot.status != "open":
        return True
    before = committed_before(event)
    if tier_index(before, view.tiers) != tier_index(snapshot.committed_units, view.tiers):
        return True
    return (before >= view.min_total_units) != (snapshot.committed_units >= view.min_total_units)


class CampaignRenderer:
    """Fragment rendering of campaign regions for one app's templates."""

    def __init__(self, templates: LocalizedTemplates) -> None:
        self.templates = templates

    def state(self, snapshot: CampaignSnapshot, view: CampaignView, locale: str) -> str:
        """Render every public region that follows the live state, as out-of-band swaps."""
        return self.templates.render("campaigns/_state.html", locale, oob=True, **state_context(snapshot, view))

    def announce(self, snapshot: CampaignSnapshot, view: CampaignView, locale: str) -> str:
        return self.templates.render("campaigns/_announce.html", locale, oob=True, **state_context(snapshot, view))

    def mine(self, snapshot: CampaignSnapshot, view: CampaignView, units: int, locale: str) -> str:
        return self.templates.render(
            "campaigns/_mine.html", locale, oob=True, mine_units=units, **state_context(snapshot, view)
        )


class CampaignExtension:
    """Live fan-out of campaign events to the campaign pages watched from this process."""

    event_type = "campaign"

    def __init__(self, *, db: asyncpg.Pool, live: CampaignLive, templates: LocalizedTemplates,
                 max_pending: int = 32) -> None:
        self.db = db
        self.live = live
        self.renderer = CampaignRenderer(templates)
        self.max_pending = max_pending
        self._watchers: dict[int, set[Watcher]] = {}
        # The fixed facts of each watched campaign; dropped with its last watcher.
        self._views: dict[int, CampaignView] = {}

    # -- watchers ------------------------------------------------------------------

    def register(self, campaign_id: int, watcher: Watcher) -> None:
        self._watchers.setdefault(campaign_id, set()).add(watcher)
        WS_CONNECTIONS.inc()

    def unregister(self, campaign_id: int, watcher: Watcher) -> None:
        group = self._watchers.get(campaign_id)
        if group is None or watcher not in group:
            return
        group.discard(watcher)
        WS_CONNECTIONS.dec()
        if not group:
            self._watchers.pop(campaign_id, None)
            self._views.pop(campaign_id, None)

    def watchers(self) -> Iterable[Watcher]:
        for group in self._watchers.values():
            yield from group

    def watcher_count(self, campaign_id: int) -> int:
        return len(self._watchers.get(campaign_id, ()))

    def _offer(self, campaign_id: int, watcher: Watcher, item: Outgoing) -> None:
        if not watcher.offer(item):
            log.warning("ws slow consumer closed campaign_id=%s", campaign_id)
            self.unregister(campaign_id, watcher)
            watcher.close(CLOSE_TRY_AGAIN_LATER, "too slow, reconnect")

    async def view(self, campaign_id: int) -> CampaignView | None:
        view = self._views.get(campaign_id)
        if view is None:
            view = await fetch_campaign(self.db, campaign_id)
            if view is not None and campaign_id in self._watchers:
                self._views[campaign_id] = view
        return view

    # -- snapshots -----------------------------------------------------------------

    async def snapshot_for(self, campaign_id: int, watcher: Watcher) -> tuple[str, int] | None:
        """Render the full snapshot a watcher gets on (re)connect and its seq; None if no such campaign."""
        view = await self.view(campaign_id)
        if view is None:
            return None
        snapshot = await read_campaign_snapshot(self.db, self.live, campaign_id)
        if snapshot is None:
            return None
        text = self.renderer.state(snapshot, view, watcher.locale)
        if watcher.user_id is not None:
            units = await member_units(self.live, campaign_id, watcher.user_id)
            text += self.renderer.mine(snapshot, view, units, watcher.locale)
        return text, snapshot.seq

    # -- LiveExtension -------------------------------------------------------------

    async def dispatch(self, event: dict[str, Any]) -> None:
        campaign_id = int(event["campaign_id"])
        kind = str(event.get("event"))
        CAMPAIGN_EVENTS.labels(kind).inc()
        watchers = list(self._watchers.get(campaign_id, ()))
        if not watchers:
            return
        view = await self.view(campaign_id)
        if view is None:
            return
        snapshot = snapshot_from_event(event)
        seq = snapshot.seq
        announce = should_announce(view, event, snapshot)
        member_id = int(event.get("user_id") or 0)
        units = event.get("units")

        public: dict[str, list[Outgoing]] = {}
        private: dict[str, Outgoing] = {}
        for watcher in watchers:
            locale = watcher.locale
            if locale not in public:
                items = [Outgoing(self.renderer.state(snapshot, view, locale), campaign_id, seq,
                                  ("campaign", campaign_id))]
                if announce:
                    items.append(Outgoing(self.renderer.announce(snapshot, view, locale), campaign_id, seq,
                                          ("campaign-announce", campaign_id)))
                public[locale] = items
            for item in public[locale]:
                self._offer(campaign_id, watcher, item)
            if member_id and watcher.user_id == member_id and isinstance(units, int) and not watcher.closed:
                if locale not in private:
                    private[locale] = Outgoing(self.renderer.mine(snapshot, view, units, locale), campaign_id,
                                               seq, ("campaign-mine", campaign_id))
                self._offer(campaign_id, watcher, private[locale])

    async def resync(self) -> None:
        """Send every watcher a fresh snapshot after the hub's subscription was restored."""
        for campaign_id, group in list(self._watchers.items()):
            for watcher in list(group):
                try:
                    found = await self.snapshot_for(campaign_id, watcher)
                except (RedisError, asyncpg.PostgresError, OSError) as error:
                    log.warning("campaign resync failed campaign_id=%s error=%s", campaign_id,
                                type(error).__name__)
                    return
                if found is not None:
                    self._offer(campaign_id, watcher, Outgoing(found[0], -1, found[1]))


# -- the websocket -------------------------------------------------------------------


async def campaign_socket(websocket: WebSocket) -> None:
    """Push one campaign's live regions to its page; anyone may watch, members also get their own pledge."""
    app = websocket.app
    settings = app.state.settings
    campaign_id = int(websocket.path_params["campaign_id"])
    if not origin_allowed(websocket.headers, settings):
        log.info("ws rejected reason=origin path=%s", websocket.url.path)
        # Closing before accept makes the server reply 403 to the handshake.
        await websocket.close(CLOSE_POLICY_VIOLATION)
        return
    user = websocket.scope.get("state", {}).get("user")
    user_id = user.id if user is not None and user.is_active else None

    extension: CampaignExtension = app.state.campaign_hub  # set by web.live.start_live
    locale = websocket.scope.get("state", {}).get("locale", "ko")
    await websocket.accept()
    watcher = Watcher(websocket, lot_id=None, user_id=user_id, locale=locale, max_pending=extension.max_pending)
    # Registered before the snapshot is read, so no event falls between the two.
    extension.register(campaign_id, watcher)
    try:
        try:
            found = await extension.snapshot_for(campaign_id, watcher)
        except (RedisError, asyncpg.PostgresError, OSError) as error:
            log.warning("ws snapshot failed campaign_id=%s error=%s", campaign_id, type(error).__name__)
            watcher.close(CLOSE_INTERNAL_ERROR, "try again")
        else:
            if found is None:
                watcher.close(CLOSE_POLICY_VIOLATION, "no such campaign")
            else:
                text, seq = found
                watcher.prime(text, {campaign_id: seq})

        max_frame_bytes = settings.max_ws_frame_bytes
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            text_frame = message.get("text")
            size = len(text_frame.encode()) if text_frame is not None else len(message.get("bytes") or b"")
            if size > max_frame_bytes and not watcher.closed:
                log.info("ws closed reason=frame_too_big size=%d", size)
                watcher.close(CLOSE_MESSAGE_TOO_BIG, "frame too big")
    finally:
        extension.unregister(campaign_id, watcher)
        await watcher.stop()


routes = [WebSocketRoute("/ws/campaigns/{campaign_id:int}", campaign_socket, name="campaign_socket")]

"""Fan-out baseline: a bare `websockets` server that broadcasts each Redis event to everyone.

It subscribes to the benchmark's events channel (the one bid.lua publishes on) and
hands one message per event to `websockets.broadcast`, which writes the frame,
encoded once, to every open connection without waiting for any of them. This is
the least work a Python process can do per delivery.

The message is the one Jangteo's hubs send an anonymous Korean watcher, rendered
once per event by the hubs' own renderers:
- a bid on a lot: the state fragment and the new history row
  (`web.live.render.LotRenderer`), about 1,470 bytes;
- a campaign event, with `--database-url` (the campaign's title and tiers come
  from PostgreSQL, read once per campaign): the counter fragments and, when the
  sentence changes, the announcement (`web.live.campaign_hub.CampaignRenderer`).
With `--message raw`, and for any other event, it is the published event
unchanged (about 330 bytes for a bid).

Run: `python -m bench.baselines.ws_broadcast --port P --redis-url URL`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import asyncpg
import orjson
import uvloop
from redis.asyncio import Redis
from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.bidload import bench_keys
from engine.db.pool import create_pool
from web.live import campaign_views
from web.live.campaign_hub import CampaignRenderer, should_announce
from web.live.render import LotRenderer
from web.live.views import history_row_from_event, snapshot_from_event
from web.templating import LocalizedTemplates

log = logging.getLogger("jangteo.bench.ws_broadcast")


class HubMessages:
    """Render each event as Jangteo's hubs render it for an anonymous Korean watcher."""

    def __init__(self, db: asyncpg.Pool | None) -> None:
        templates = LocalizedTemplates()
        self.lots = LotRenderer(templates)
        self.campaigns = CampaignRenderer(templates)
        self.db = db
        self._views: dict[int, campaign_views.CampaignView | None] = {}

    async def render(self, payload: bytes) -> str:
        """Return the hub's message for a lot bid or a campaign event, else the payload as text."""
        event = orjson.loads(payload)
        if event.get("type") == "lot" and event.get("event") in ("bid", "buy_now"):
            snapshot = snapshot_from_event(event)
            if snapshot is not None:
                state = self.lots.state(snapshot, "ko", announce=True)
                return state + self.lots.history_row(snapshot.lot_id, history_row_from_event(event), "ko")
        if event.get("type") == "campaign" and self.db is not None:
            campaign_id = int(event["campaign_id"])
            if campaign_id not in self._views:
                self._views[campaign_id] = await campaign_views.fetch_campaign(self.db, campaign_id)
            view = self._views[campaign_id]
            if view is not None:
                snapshot = campaign_views.snapshot_from_event(event)
                text = self.campaigns.state(snapshot, view, "ko")
                if should_announce(view, event, snapshot):
                    text += self.campaigns.announce(snapshot, view, "ko")
                return text
        return payload.decode()


async def main(port: int, redis_url: str, message_kind: str, database_url: str | None) -> None:
    connections: set[ServerConnection] = set()
    # The app's pool, whose codecs decode the campaign's tiers as the hub reads them.
    db = await create_pool(database_url, min_size=1, max_size=2) if database_url else None
    messages = HubMessages(db) if message_kind == "rendered" else None

    async def handler(connection: ServerConnection) -> None:
        connections.add(connection)
        try:
            await connection.wait_closed()
        finally:
            connections.discard(connection)

    redis = Redis.from_url(redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(bench_keys().events_channel)
    async with serve(handler, "127.0.0.1", port, ping_interval=20, max_queue=16):
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            if messages is None:
                broadcast(connections, message["data"].decode())
            else:
                broadcast(connections, await messages.render(message["data"]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Bare websockets broadcast server (benchmark baseline).")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument(
        "--message", choices=("rendered", "raw"), default="rendered",
        help="rendered: the hub's HTML for a bid (default); raw: the published event unchanged",
    )
    parser.add_argument("--database-url", help="PostgreSQL URL for campaign titles and tiers (campaign events)")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    uvloop.run(main(arguments.port, arguments.redis_url, arguments.message, arguments.database_url))

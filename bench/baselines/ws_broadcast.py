"""Fan-out baseline: a bare `websockets` server that broadcasts each Redis event to everyone.

It subscribes to the benchmark's events channel (the one bid.lua publishes on) and
hands one message per event to `websockets.broadcast`, which writes the frame,
encoded once, to every open connection without waiting for any of them. This is
the least work a Python process can do per delivery.

The message is the one Jangteo's hub sends an anonymous Korean watcher of the lot:
the state fragment and the new history row, rendered once per event by the hub's
own renderer (`web.live.render.LotRenderer`), about 1,470 bytes. With
`--message raw` it is the published event unchanged (about 330 bytes), and so is
every event that is not a bid on a lot (campaign events).

Run: `python -m bench.baselines.ws_broadcast --port P --redis-url URL`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import orjson
import uvloop
from redis.asyncio import Redis
from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.bidload import bench_keys
from web.live.render import LotRenderer
from web.live.views import history_row_from_event, snapshot_from_event
from web.templating import LocalizedTemplates

log = logging.getLogger("jangteo.bench.ws_broadcast")


def render_like_hub(renderer: LotRenderer, payload: bytes) -> str:
    """Return the hub's message to an anonymous Korean watcher for a bid event, else the payload as text."""
    event = orjson.loads(payload)
    snapshot = snapshot_from_event(event) if event.get("type") == "lot" else None
    if snapshot is None or event.get("event") not in ("bid", "buy_now"):
        return payload.decode()
    state = renderer.state(snapshot, "ko", announce=True)
    return state + renderer.history_row(snapshot.lot_id, history_row_from_event(event), "ko")


async def main(port: int, redis_url: str, message_kind: str) -> None:
    connections: set[ServerConnection] = set()
    renderer = LotRenderer(LocalizedTemplates()) if message_kind == "rendered" else None

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
            if renderer is None:
                broadcast(connections, message["data"].decode())
            else:
                broadcast(connections, render_like_hub(renderer, message["data"]))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Bare websockets broadcast server (benchmark baseline).")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument(
        "--message", choices=("rendered", "raw"), default="rendered",
        help="rendered: the hub's HTML for a bid (default); raw: the published event unchanged",
    )
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    uvloop.run(main(arguments.port, arguments.redis_url, arguments.message))

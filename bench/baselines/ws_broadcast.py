"""Fan-out baseline: a bare `websockets` server that broadcasts each Redis event to everyone.

It subscribes to the benchmark's events channel (the one bid.lua publishes on) and
passes every payload unchanged to `websockets.broadcast`, which writes the frame,
encoded once, to every open connection without waiting for any of them. This is
the least work a Python process can do per delivery.

Run: `python -m bench.baselines.ws_broadcast --port P --redis-url URL`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging

import uvloop
from redis.asyncio import Redis
from websockets.asyncio.server import ServerConnection, broadcast, serve

from bench.bidload import bench_keys

log = logging.getLogger("jangteo.bench.ws_broadcast")


async def main(port: int, redis_url: str) -> None:
    connections: set[ServerConnection] = set()

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
            if message["type"] == "message":
                broadcast(connections, message["data"].decode())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Bare websockets broadcast server (benchmark baseline).")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    uvloop.run(main(arguments.port, arguments.redis_url))

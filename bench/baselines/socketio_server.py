"""Fan-out baseline: python-socketio's AsyncServer with AsyncRedisManager, emitting to a room.

Every client joins the room `lot:<lot>` (query parameter `lot`, default 1) on
connect. The benchmark emits from outside the server process, the way a bid
handler in another process would: `AsyncRedisManager(url, write_only=True).emit`,
which publishes on Redis; this server receives it and sends it to the room.

Run: `uvicorn --factory bench.baselines.socketio_server:create_app`, with
BENCH_REDIS_URL set.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs

import socketio

SOCKETIO_CHANNEL = "jtbench-socketio"


def create_app() -> socketio.ASGIApp:
    manager = socketio.AsyncRedisManager(os.environ["BENCH_REDIS_URL"], channel=SOCKETIO_CHANNEL)
    server = socketio.AsyncServer(async_mode="asgi", client_manager=manager, cors_allowed_origins="*")

    @server.event
    async def connect(sid: str, environ: dict, auth: object = None) -> None:
        lot = parse_qs(environ.get("QUERY_STRING", "")).get("lot", ["1"])[0]
        await server.enter_room(sid, f"lot:{lot}")

    return socketio.ASGIApp(server)


def create_emitter(redis_url: str) -> socketio.AsyncRedisManager:
    """Create the external emitter the benchmark uses (it only publishes on Redis)."""
    return socketio.AsyncRedisManager(redis_url, channel=SOCKETIO_CHANNEL, write_only=True)

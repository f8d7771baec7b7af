"""Baseline (b): a bare Starlette websocket endpoint doing one EVALSHA of bid.lua per message.

No session, no validation, no batching: each message `{"lot_id", "amount_won",
"client_id"}` becomes one `EVALSHA` with the keys and arguments `AuctionLive`
sends, and the script's raw JSON reply is sent back. The user id comes from the
`user` query parameter. `/ws/idle` accepts and then only waits, for the idle-memory
baseline.

Run: `uvicorn --factory bench.baselines.starlette_evalsha:create_app`, with
BENCH_REDIS_URL set.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import orjson
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bench.bidload import bench_keys
from engine.auction.live import BID_SCRIPT


def create_app() -> Starlette:
    redis = Redis.from_url(os.environ["BENCH_REDIS_URL"])
    keys = bench_keys()

    async def bid(websocket: WebSocket) -> None:
        await websocket.accept()
        user_id = int(websocket.query_params.get("user", "1"))
        try:
            while True:
                message = orjson.loads(await websocket.receive_text())
                lot_id = int(message["lot_id"])
                reply = await redis.evalsha(
                    BID_SCRIPT.sha, 5,
                    keys.lot_state(lot_id), keys.lot_bidders(lot_id), keys.lot_receipts(lot_id),
                    keys.ledger_stream_for_lot(lot_id), keys.ends_for_lot(lot_id),
                    "bid", user_id, message["client_id"], message["amount_won"], "입*자", 0,
                    keys.events_channel,
                )
                await websocket.send_text(reply.decode())
        except WebSocketDisconnect:
            pass

    async def idle(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await redis.script_load(BID_SCRIPT.source)
        yield
        await redis.aclose()

    return Starlette(routes=[WebSocketRoute("/ws/bid", bid), WebSocketRoute("/ws/idle", idle)], lifespan=lifespan)

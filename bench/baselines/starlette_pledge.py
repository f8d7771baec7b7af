"""Baseline (b) for pledges: a bare Starlette websocket endpoint doing one EVALSHA of pledge.lua per message.

No session, no hello, no validation, no rate limit and no batching: each message
`{"campaign_id", "units", "client_id"}` on `/ws/pledge?user=U` becomes one
`EVALSHA` with the keys and arguments `CampaignLive.pledge` sends, and the
script's raw JSON reply is sent back. Other fields of the message (the `type`
that `/ws/pledges` needs) are ignored.

This is `bench/baselines/starlette_evalsha.py` with pledge.lua in place of
bid.lua. The two scripts take different keys and arguments, so each baseline
builds its own call.

Run: `uvicorn --factory bench.baselines.starlette_pledge:create_app`, with
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
from engine.groupbuy.live import PLEDGE_SCRIPT


def create_app() -> Starlette:
    redis = Redis.from_url(os.environ["BENCH_REDIS_URL"])
    keys = bench_keys()

    async def pledge(websocket: WebSocket) -> None:
        await websocket.accept()
        user_id = int(websocket.query_params.get("user", "1"))
        try:
            while True:
                message = orjson.loads(await websocket.receive_text())
                campaign_id = int(message["campaign_id"])
                reply = await redis.evalsha(
                    PLEDGE_SCRIPT.sha, 5,
                    keys.campaign_state(campaign_id), keys.campaign_pledges(campaign_id),
                    keys.campaign_receipts(campaign_id), keys.campaign_ledger_stream_for(campaign_id),
                    keys.campaign_deadlines_for(campaign_id),
                    user_id, message["client_id"], str(message["units"]), 0, keys.events_channel,
                )
                await websocket.send_text(reply.decode())
        except WebSocketDisconnect:
            pass

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await redis.script_load(PLEDGE_SCRIPT.source)
        yield
        await redis.aclose()

    return Starlette(routes=[WebSocketRoute("/ws/pledge", pledge)], lifespan=lifespan)

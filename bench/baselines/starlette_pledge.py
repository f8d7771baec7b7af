"""Baseline (b) for pledges: a bare Starlette HTTP endpoint doing one EVALSHA of pledge.lua per request.

No session, CSRF check, rate limit, validation or batching: each
`POST /pledge/{campaign_id}?user=U` with the JSON body `{"units", "client_id"}`
becomes one `EVALSHA` with the keys and arguments `CampaignLive.pledge` sends, and
the script's raw JSON reply is the response body (status 200).

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
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.bidload import bench_keys
from engine.groupbuy.live import PLEDGE_SCRIPT


def create_app() -> Starlette:
    redis = Redis.from_url(os.environ["BENCH_REDIS_URL"])
    keys = bench_keys()

    async def pledge(request: Request) -> Response:
        campaign_id = int(request.path_params["campaign_id"])
        user_id = int(request.query_params.get("user", "1"))
        message = orjson.loads(await request.body())
        reply = await redis.evalsha(
            PLEDGE_SCRIPT.sha, 5,
            keys.campaign_state(campaign_id), keys.campaign_pledges(campaign_id),
            keys.campaign_receipts(campaign_id), keys.campaign_ledger_stream_for(campaign_id),
            keys.campaign_deadlines_for(campaign_id),
            user_id, message["client_id"], str(message["units"]), 0, keys.events_channel,
        )
        return Response(reply, media_type="application/json")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await redis.script_load(PLEDGE_SCRIPT.source)
        yield
        await redis.aclose()

    return Starlette(routes=[Route("/pledge/{campaign_id:int}", pledge, methods=["POST"])], lifespan=lifespan)

"""`check_user_rate`: the batched moving-window limit of the bid and pledge paths, against a real Redis."""

from __future__ import annotations

import asyncio
import secrets
from types import SimpleNamespace
from typing import Any

import pytest
import redis.asyncio

from engine.auction.batching import ScriptBatcher
from engine.keys import Keys
from web.errors import ApiError
from web.ratelimit import check_user_rate


class CountingBatcher(ScriptBatcher):
    """A ScriptBatcher that records the size of every pipeline it sends to Redis."""

    def __init__(self, redis_client: redis.asyncio.Redis) -> None:
        super().__init__(redis_client)
        self.pipelines: list[int] = []

    async def _pipeline(self, batch: list[Any]) -> list[Any]:
        self.pipelines.append(len(batch))
        return await super()._pipeline(batch)


def _request(batcher: ScriptBatcher, redis_prefix: str) -> Any:
    """A stand-in for a Starlette request: `check_user_rate` reads only `request.app.state`."""
    keys = Keys(f"{redis_prefix}:rate{secrets.token_hex(4)}", 4)
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(batcher=batcher, keys=keys)))


async def test_user_rate_rejects_past_limit(redis_client: redis.asyncio.Redis, redis_prefix: str) -> None:
    """Three hits of "3/minute" pass; the fourth is 429 rate_limited with Retry-After in 1..60 seconds."""
    request = _request(ScriptBatcher(redis_client), redis_prefix)
    for _ in range(3):
        await check_user_rate(request, "bid", "3/minute", "7")

    with pytest.raises(ApiError) as raised:
        await check_user_rate(request, "bid", "3/minute", "7")
    assert raised.value.code == "rate_limited"
    assert raised.value.status == 429
    retry_after_s = int(raised.value.headers["Retry-After"])
    assert 1 <= retry_after_s <= 60
    assert raised.value.detail["retry_after_s"] == retry_after_s


async def test_user_rate_counts_each_identity(redis_client: redis.asyncio.Redis, redis_prefix: str) -> None:
    """A user at the limit blocks only that user and that limit name."""
    request = _request(ScriptBatcher(redis_client), redis_prefix)
    await check_user_rate(request, "bid", "1/minute", "1")
    with pytest.raises(ApiError):
        await check_user_rate(request, "bid", "1/minute", "1")

    await check_user_rate(request, "bid", "1/minute", "2")
    await check_user_rate(request, "pledge", "1/minute", "1")


async def test_user_rate_concurrent_hits_one_pipeline(redis_client: redis.asyncio.Redis, redis_prefix: str) -> None:
    """Ten concurrent hits of one user share one pipeline, and exactly the limit of them pass."""
    batcher = CountingBatcher(redis_client)
    request = _request(batcher, redis_prefix)
    results = await asyncio.gather(
        *(check_user_rate(request, "bid", "4/minute", "9") for _ in range(10)), return_exceptions=True
    )
    assert batcher.pipelines == [10]
    assert results.count(None) == 4
    rejected = [result for result in results if result is not None]
    assert len(rejected) == 6
    assert all(isinstance(result, ApiError) and result.code == "rate_limited" for result in rejected)

"""Per-test Redis key spaces for the auction engine tests (under the run's `redis_prefix`)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio

from embedded.redis import PrivateRedis, start_private_redis
from engine.auction.live import AuctionLive
from engine.keys import Keys

SHARDS = 4


@pytest.fixture
def keys(redis_prefix: str) -> Keys:
    """Keys under a prefix of their own, so no two tests share a lot, stream or channel."""
    return Keys(f"{redis_prefix}:auction{secrets.token_hex(4)}", SHARDS)


@pytest.fixture
def live(redis_client: redis.asyncio.Redis, keys: Keys) -> AuctionLive:
    return AuctionLive(redis_client, keys)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A Redis of this test's own, for tests that flush, pause or kill it."""
    server = start_private_redis(tmp_path / "redis", appendonly=False)
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def private_client(private_redis: PrivateRedis) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(private_redis.url)
    yield client
    await client.aclose()

"""Per-test Redis key spaces for the auction engine tests (under the run's `redis_prefix`)."""

from __future__ import annotations

import secrets

import pytest
import redis.asyncio

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

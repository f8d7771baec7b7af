"""Fixtures for the campaign (group-buy) web tests: a `CampaignLive` of the test and a campaign factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest_asyncio
import redis.asyncio

from engine.actors import STAFF, Actor
from engine.auction.ledger import LedgerConsumer
from engine.config import Settings
from engine.groupbuy.campaigns import CampaignDraft, create_campaign
from engine.groupbuy.ledger import CAMPAIGN_LEDGER
from engine.groupbuy.live import CampaignLive
from engine.keys import Keys
from tests.web.live.conftest import World

CampaignFactory = Callable[..., Awaitable[int]]


@pytest_asyncio.fixture(scope="session")
async def engine_campaigns(redis_url: str, settings: Settings) -> AsyncIterator[CampaignLive]:
    """A `CampaignLive` of the test itself (its own Redis client), for seeding campaigns."""
    client = redis.asyncio.Redis.from_url(redis_url)
    yield CampaignLive(client, Keys(settings.redis_prefix, settings.redis_shards))
    await client.aclose()


@pytest_asyncio.fixture
async def make_campaign(pg_pool: asyncpg.Pool, engine_campaigns: CampaignLive, world: World) -> CampaignFactory:
    """Create an open campaign of the world's product (staff-created); keyword arguments override the draft.

    Defaults: list price 10,000원, tiers 5+ → 9,000원 and 10+ → 8,000원, minimum 5,
    stock cap 20, 6 per member, one hour to the deadline.
    """

    async def create(**overrides: object) -> int:
        now = datetime.now(timezone.utc)
        values: dict[str, object] = {
            "product_id": world.product_id,
            "title": "광산 햇김 공동구매",
            "list_price_won": 10_000,
            "tiers": [(5, 9_000), (10, 8_000)],
            "min_total_units": 5,
            "stock_cap_units": 20,
            "per_member_limit": 6,
            "start_at": now - timedelta(minutes=1),
            "deadline_at": now + timedelta(hours=1),
        }
        values.update(overrides)
        actor = Actor(world.staff.user_id, STAFF, world.staff.display_name)
        return await create_campaign(pg_pool, engine_campaigns, actor, CampaignDraft(**values))  # type: ignore[arg-type]

    return create


@pytest_asyncio.fixture
async def ledger_consumer(pg_pool: asyncpg.Pool, engine_campaigns: CampaignLive) -> AsyncIterator[LedgerConsumer]:
    """Store the campaign streams in `pledge_events` in the background, as the worker's consumer does."""
    consumer = LedgerConsumer(pg_pool, engine_campaigns.redis, engine_campaigns.keys, block_ms=50,
                              claim_idle_s=0.2, ledger=CAMPAIGN_LEDGER)
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            await consumer.drain()
            await asyncio.sleep(0.02)

    task = asyncio.create_task(loop())
    yield consumer
    stop.set()
    await task

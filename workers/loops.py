"""The worker's periodic loops; each turns a schedule into engine calls and survives outages.

A loop logs a failed round (first failure, then every 20th) and tries again after
a short pause, so a Redis or PostgreSQL outage delays work but stops nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from engine.auction.closing import GapWatch, close_due_lots, open_started_lots, reload_missing_shards
from engine.auction.live import AuctionLive
from engine.complexorders.closing import close_due_complex_orders
from engine.auction.ledger import LedgerConsumer
from engine.config import Settings
from engine.groupbuy.ledger import CAMPAIGN_LEDGER
from engine.keys import Keys
from engine.orders import cancel_unpaid_orders

log = logging.getLogger("jangteo.worker")

RECOVERABLE = (RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        pass


async def run_every(name: str, interval_s: float, stop: asyncio.Event, work: Callable[[], Awaitable[object]]) -> None:
    """Call `work` every `interval_s` (monotonic) until `stop` is set, logging failed rounds."""
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            await work()
            failures = 0
        except RECOVERABLE as error:
            failures += 1
            if failures == 1 or failures % 20 == 0:
                log.error("loop round failed loop=%s failures=%s error=%r", name, failures, error)
        elapsed = time.monotonic() - started
        await _pause(stop, max(0.0, interval_s - elapsed) if not failures else min(5.0, interval_s * (1 + failures)))


class Closer:
    """One closer round: keep Redis loaded, mark started lots open, close due lots."""

    def __init__(self, db: asyncpg.Pool, live: AuctionLive, settings: Settings, *, housekeeping_s: float = 1.0) -> None:
        self.db = db
        self.live = live
        self.settings = settings
        self.gaps = GapWatch()
        self.housekeeping_s = housekeeping_s
        self._next_housekeeping = 0.0

    async def round(self) -> None:
        if time.monotonic() >= self._next_housekeeping:
            self._next_housekeeping = time.monotonic() + self.housekeeping_s
            await reload_missing_shards(self.db, self.live, self.settings)
            await open_started_lots(self.db)
        await close_due_lots(self.db, self.live, self.settings, gaps=self.gaps)


async def cancel_unpaid_round(db: asyncpg.Pool) -> None:
    while len(await cancel_unpaid_orders(db)) > 0:
        pass


async def close_due_complex_round(
    db: asyncpg.Pool, settings: Settings, redis: Redis | None = None, keys: Keys | None = None
) -> None:
    """Close the complex orders whose closing time passed; each closes once even when several workers race."""
    await close_due_complex_orders(db, payment_due_s=settings.payment_due_s, redis=redis, keys=keys)


async def run_campaign_ledger(db: asyncpg.Pool, redis: Redis, keys: Keys, stop: asyncio.Event) -> None:
    """Move the campaign shard streams into `pledge_events` until `stop` is set, one loop per shard."""
    await LedgerConsumer(db, redis, keys, ledger=CAMPAIGN_LEDGER).run(stop)

"""The worker's periodic loops; each turns a schedule into engine calls and survives outages.

A loop logs a failed round (first failure, then every 20th) and tries again after
a short pause, so a Redis or PostgreSQL outage delays work but stops nothing. An
unexpected error ends only its round, and is logged with its traceback.

Loops that work through items (lots to close, orders to cancel) handle each item on
its own: an item that fails with anything but an outage is logged with its id and
skipped with a growing delay (`FailureBackoff`), and the round goes on with the
others, so one bad lot or order never stops the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from engine.auction.closing import GapWatch, close_lot, open_started_lots, reload_missing_shards, sync_held_lots
from engine.auction.live import AuctionLive
from engine.complexorders.closing import close_due_complex_orders
from engine.auction.ledger import LedgerConsumer
from engine.config import Settings
from engine.groupbuy.ledger import CAMPAIGN_LEDGER
from engine.keys import Keys
from engine.orders import cancel_unpaid_order, due_unpaid_order_ids

log = logging.getLogger("jangteo.worker")

RECOVERABLE = (RedisError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
# Errors that mean Redis or PostgreSQL is unreachable or refusing work, not that one
# item is bad: they end the round, which is retried after a pause.
OUTAGE = (
    RedisConnectionError,
    RedisTimeoutError,
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
)


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
        except Exception:
            failures += 1
            if failures == 1 or failures % 20 == 0:
                log.exception("loop round failed unexpectedly loop=%s failures=%s", name, failures)
        elapsed = time.monotonic() - started
        await _pause(stop, max(0.0, interval_s - elapsed) if not failures else min(5.0, interval_s * (1 + failures)))


async def keep_running(name: str, stop: asyncio.Event, run: Callable[[], Awaitable[object]], *, max_delay_s: float = 30.0) -> None:
    """Run a long-running loop until `stop` is set, restarting it after an unexpected error.

    The loop handles its own outages; this catches what it does not, logs it with the
    traceback and restarts it after a doubling delay (at most `max_delay_s`).
    """
    failures = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            await run()
            return
        except Exception:
            # A loop that ran for a minute before failing starts its delays over.
            failures = 1 if time.monotonic() - started > 60 else failures + 1
            delay_s = min(max_delay_s, 0.5 * 2 ** (failures - 1))
            log.exception("loop crashed, restarting loop=%s failures=%s restart_in_s=%.1f", name, failures, delay_s)
            await _pause(stop, delay_s)


class FailureBackoff:
    """When each failed item (a lot, an order) may be tried again: doubling delays, capped.

    Entries are dropped when their item succeeds; an item that keeps failing keeps its
    entry, so memory grows only with the number of items that fail for good.
    """

    def __init__(self, *, base_s: float = 1.0, max_s: float = 300.0) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self._failures: dict[int, int] = {}
        self._retry_at: dict[int, float] = {}

    def ready(self, item_id: int) -> bool:
        return time.monotonic() >= self._retry_at.get(item_id, 0.0)

    def waiting_ids(self) -> list[int]:
        now = time.monotonic()
        return [item_id for item_id, retry_at in self._retry_at.items() if retry_at > now]

    def failures(self, item_id: int) -> int:
        return self._failures.get(item_id, 0)

    def failed(self, item_id: int) -> float:
        """Record a failure; return the delay in seconds before the item is tried again."""
        failures = self._failures.get(item_id, 0) + 1
        self._failures[item_id] = failures
        delay_s = min(self.max_s, self.base_s * 2 ** (failures - 1))
        self._retry_at[item_id] = time.monotonic() + delay_s
        return delay_s

    def succeeded(self, item_id: int) -> None:
        self._failures.pop(item_id, None)
        self._retry_at.pop(item_id, None)


class Closer:
    """One closer round: keep Redis loaded, mark started lots open, close due lots one by one."""

    def __init__(
        self,
        db: asyncpg.Pool,
        live: AuctionLive,
        settings: Settings,
        *,
        housekeeping_s: float = 1.0,
        lots_per_shard: int = 100,
        backoff: FailureBackoff | None = None,
    ) -> None:
        self.db = db
        self.live = live
        self.settings = settings
        self.gaps = GapWatch()
        self.housekeeping_s = housekeeping_s
        self.lots_per_shard = lots_per_shard
        self.backoff = backoff or FailureBackoff()
        self._next_housekeeping = 0.0

    async def round(self) -> None:
        if time.monotonic() >= self._next_housekeeping:
            self._next_housekeeping = time.monotonic() + self.housekeeping_s
            try:
                await reload_missing_shards(self.db, self.live, self.settings)
                await open_started_lots(self.db)
                await sync_held_lots(self.db, self.live)
            except OUTAGE:
                raise
            except Exception:
                # Closing due lots matters more than loading or relabelling others.
                log.exception("closer housekeeping failed")
        for shard in range(self.settings.redis_shards):
            # Read past the lots waiting out a backoff, so they never hide the others.
            limit = self.lots_per_shard + len(self.backoff.waiting_ids())
            for lot_id in await self.live.due_lots(shard, limit=limit):
                if self.backoff.ready(lot_id):
                    await self.close_one(lot_id)

    async def close_one(self, lot_id: int) -> None:
        """Close one due lot; an error other than an outage is logged and the lot backs off."""
        try:
            await close_lot(self.db, self.live, self.settings, lot_id, gaps=self.gaps)
        except OUTAGE:
            raise
        except Exception:
            delay_s = self.backoff.failed(lot_id)
            log.exception(
                "lot close failed lot_id=%s failures=%s retry_in_s=%.1f",
                lot_id, self.backoff.failures(lot_id), delay_s,
            )
            return
        self.backoff.succeeded(lot_id)


class UnpaidCanceller:
    """One round of cancelling lapsed bank-transfer orders, one order per transaction."""

    def __init__(self, db: asyncpg.Pool, *, batch_size: int = 100, backoff: FailureBackoff | None = None) -> None:
        self.db = db
        self.batch_size = batch_size
        self.backoff = backoff or FailureBackoff(base_s=30.0, max_s=3600.0)

    async def round(self) -> int:
        """Cancel every lapsed order not waiting out a backoff; return how many were cancelled."""
        cancelled = 0
        while True:
            order_ids = await due_unpaid_order_ids(
                self.db, limit=self.batch_size, exclude_ids=self.backoff.waiting_ids()
            )
            cancelled_now = 0
            for order_id in order_ids:
                cancelled_now += await self.cancel_one(order_id)
            cancelled += cancelled_now
            # A short batch was the last one; a batch with no progress (orders locked by
            # another worker, or all failing) would repeat itself.
            if len(order_ids) < self.batch_size or cancelled_now == 0:
                return cancelled

    async def cancel_one(self, order_id: int) -> bool:
        try:
            done = await cancel_unpaid_order(self.db, order_id)
        except OUTAGE:
            raise
        except Exception:
            delay_s = self.backoff.failed(order_id)
            log.exception(
                "order cancel failed order_id=%s failures=%s retry_in_s=%.1f",
                order_id, self.backoff.failures(order_id), delay_s,
            )
            return False
        self.backoff.succeeded(order_id)
        return done


async def close_due_complex_round(
    db: asyncpg.Pool, settings: Settings, redis: Redis | None = None, keys: Keys | None = None
) -> None:
    """Close the complex orders whose closing time passed; each closes once even when several workers race."""
    await close_due_complex_orders(db, payment_due_s=settings.payment_due_s, redis=redis, keys=keys)


async def run_campaign_ledger(db: asyncpg.Pool, redis: Redis, keys: Keys, stop: asyncio.Event) -> None:
    """Move the campaign shard streams into `pledge_events` until `stop` is set, one loop per shard."""
    await LedgerConsumer(db, redis, keys, ledger=CAMPAIGN_LEDGER).run(stop)

"""The worker's group-buy loops: close due campaigns, expire up-front holds, cancel lapsed orders.

Each class runs one round per call, for `workers.loops.run_every`. Like the lot
closer, each round handles every campaign, payment or order on its own. An outage
(`OUTAGE`) ends the round, which is retried after a pause. Any other error is logged
with the item's id, and that item backs off (`FailureBackoff`) while the round goes
on with the others. An item whose campaign Redis lost waits for the campaign's
rebuild grace (`CampaignRebuildPending`) without backing off, and is tried again
next round.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import asyncpg

from engine.auction.closing import GapWatch
from engine.config import Settings
from engine.groupbuy.campaigns import CampaignRebuildPending
from engine.groupbuy.closing import close_campaign, keep_campaigns_loaded
from engine.groupbuy.live import CampaignLive
from engine.groupbuy.payments import (
    cancel_unpaid_campaign_order,
    due_hold_ids,
    due_unpaid_campaign_order_ids,
    expire_hold,
)
from workers.loops import OUTAGE, FailureBackoff

log = logging.getLogger("jangteo.worker")


async def _attempt(backoff: FailureBackoff, action: str, item_id: int, work: Callable[[], Awaitable[object]]) -> object:
    """Run `work` for one item; an error other than an outage is logged and the item backs off."""
    try:
        result = await work()
    except OUTAGE:
        raise
    except CampaignRebuildPending as pending:
        log.info("%s waiting for campaign rebuild id=%s campaign_id=%s retry_in_ms=%s", action, item_id,
                 pending.detail["campaign_id"], pending.detail["retry_after_ms"])
        return None
    except Exception:
        delay_s = backoff.failed(item_id)
        log.exception("%s failed id=%s failures=%s retry_in_s=%.1f", action, item_id, backoff.failures(item_id), delay_s)
        return None
    backoff.succeeded(item_id)
    return result


class CampaignCloser:
    """One round: keep Redis loaded, mark started campaigns open, close due campaigns one by one."""

    def __init__(
        self,
        db: asyncpg.Pool,
        live: CampaignLive,
        settings: Settings,
        *,
        housekeeping_s: float = 1.0,
        campaigns_per_shard: int = 100,
        backoff: FailureBackoff | None = None,
    ) -> None:
        self.db = db
        self.live = live
        self.settings = settings
        self.gaps = GapWatch()
        self.housekeeping_s = housekeeping_s
        self.campaigns_per_shard = campaigns_per_shard
        self.backoff = backoff or FailureBackoff()
        self._next_housekeeping = 0.0

    async def round(self) -> None:
        if time.monotonic() >= self._next_housekeeping:
            self._next_housekeeping = time.monotonic() + self.housekeeping_s
            try:
                await keep_campaigns_loaded(self.db, self.live)
            except OUTAGE:
                raise
            except Exception:
                # Closing due campaigns matters more than loading or relabelling others.
                log.exception("campaign closer housekeeping failed")
        for shard in range(self.live.keys.shards):
            # Read past the campaigns waiting out a backoff, so they never hide the others.
            limit = self.campaigns_per_shard + len(self.backoff.waiting_ids())
            for campaign_id in await self.live.due_campaigns(shard, limit=limit):
                if self.backoff.ready(campaign_id):
                    await _attempt(
                        self.backoff, "campaign close", campaign_id,
                        lambda campaign_id=campaign_id: close_campaign(
                            self.db, self.live, self.settings, campaign_id, gaps=self.gaps
                        ),
                    )


class HoldExpirer:
    """One round of expiring up-front bank-transfer holds, one payment per transaction."""

    def __init__(
        self, db: asyncpg.Pool, live: CampaignLive, *, batch_size: int = 100, backoff: FailureBackoff | None = None
    ) -> None:
        self.db = db
        self.live = live
        self.batch_size = batch_size
        self.backoff = backoff or FailureBackoff(base_s=5.0, max_s=600.0)

    async def round(self) -> int:
        """Expire every lapsed hold not waiting out a backoff; return how many were expired."""
        return await _work_through(
            lambda: due_hold_ids(self.db, limit=self.batch_size, exclude_ids=self.backoff.waiting_ids()),
            lambda payment_id: _attempt(self.backoff, "hold expiry", payment_id,
                                        lambda: expire_hold(self.db, self.live, payment_id)),
            self.batch_size,
        )


class CampaignOrderCanceller:
    """One round of cancelling lapsed group-buy orders, one order per transaction."""

    def __init__(self, db: asyncpg.Pool, *, batch_size: int = 100, backoff: FailureBackoff | None = None) -> None:
        self.db = db
        self.batch_size = batch_size
        self.backoff = backoff or FailureBackoff(base_s=30.0, max_s=3600.0)

    async def round(self) -> int:
        """Cancel every lapsed order not waiting out a backoff; return how many were cancelled."""
        return await _work_through(
            lambda: due_unpaid_campaign_order_ids(
                self.db, limit=self.batch_size, exclude_ids=self.backoff.waiting_ids()
            ),
            lambda order_id: _attempt(self.backoff, "campaign order cancel", order_id,
                                      lambda: cancel_unpaid_campaign_order(self.db, order_id)),
            self.batch_size,
        )


async def _work_through(
    fetch_ids: Callable[[], Awaitable[list[int]]],
    handle: Callable[[int], Awaitable[object]],
    batch_size: int,
) -> int:
    done = 0
    while True:
        item_ids = await fetch_ids()
        done_now = 0
        for item_id in item_ids:
            done_now += bool(await handle(item_id))
        done += done_now
        # A short batch was the last one; a batch with no progress (items locked by
        # another worker, or all failing) would repeat itself.
        if len(item_ids) < batch_size or done_now == 0:
            return done

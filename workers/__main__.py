"""`python -m workers`: run the ledger consumers, closers, mail sender, cancellers and purges.

Reads the settings from the environment (`DATABASE_URL`, `REDIS_URL`, `SMTP_URL`,
`REDIS_PREFIX`, ...), applies migrations, loads the active lots into Redis, then runs
every loop until SIGTERM or SIGINT, after which each loop finishes its current round.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from redis.asyncio import Redis

from engine.auction.closing import reload_missing_shards
from engine.auction.ledger import LedgerConsumer
from engine.auction.live import AuctionLive
from engine.auction.lots import load_active_lots
from engine.config import Settings, get_settings
from engine.db import apply_migrations, create_pool
from engine.groupbuy.campaigns import load_active_campaigns, reload_missing_campaign_shards
from engine.groupbuy.live import CampaignLive
from engine.housekeeping import purge_idempotency_keys
from engine.keys import Keys
from engine.outbox import OutboxSender
from workers.campaigns import CampaignCloser, CampaignOrderCanceller, HoldExpirer
from workers.loops import Closer, UnpaidCanceller, close_due_complex_round, keep_running, run_campaign_ledger, run_every

log = logging.getLogger("jangteo.worker")

CLOSE_INTERVAL_S = 0.25
CANCEL_INTERVAL_S = 30.0
HOLD_EXPIRY_INTERVAL_S = 5.0
COMPLEX_CLOSE_INTERVAL_S = 1.0
PURGE_INTERVAL_S = 600.0


def configure_logging() -> None:
    """Configure logging to write one line per event: time, level, logger, then key=value pairs."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s level=%(levelname)s logger=%(name)s %(message)s",
        stream=sys.stderr,
    )


async def run(settings: Settings) -> None:
    if not settings.database_url or not settings.redis_url or not settings.smtp_url:
        raise SystemExit(
            "the worker needs DATABASE_URL, REDIS_URL and SMTP_URL; "
            "start it through `python -m embedded` (which sets them) or set them yourself"
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    db = await create_pool(settings.database_url, min_size=2, max_size=10)
    # Each shard's consumer (one for lots, one for campaigns) blocks one connection in
    # XREADGROUP, so the pool must hold more than twice the shard count.
    redis = Redis.from_url(settings.redis_url, max_connections=2 * settings.redis_shards + 16)
    try:
        await apply_migrations(db)
        keys = Keys(settings.redis_prefix, settings.redis_shards)
        live = AuctionLive(redis, keys)
        # Shards whose loaded marker is missing (Redis started empty) are rebuilt with the
        # acknowledgement check first; then any other active lot Redis lacks is loaded.
        loaded = await reload_missing_shards(db, live, settings)
        loaded_now, waiting = await load_active_lots(db, live)
        loaded += loaded_now
        log.info("worker started lots_loaded=%s lots_waiting=%s shards=%s", loaded, waiting, settings.redis_shards)

        consumer = LedgerConsumer(db, redis, keys)
        closer = Closer(db, live, settings)
        sender = OutboxSender(db, smtp_url=settings.smtp_url, mail_from=settings.mail_from)
        canceller = UnpaidCanceller(db)
        campaigns = CampaignLive(redis, keys)
        # Shards whose loaded marker is missing are rebuilt as for lots. Then campaigns
        # Redis lacks (added while it kept its data, such as a new demo round) are
        # loaded, so the closer finds their deadlines. Campaigns Redis lost wait for
        # their rebuild grace, and their shards stay without a loaded marker, so the
        # campaign closer's housekeeping loads them once the grace has passed.
        campaigns_loaded = await reload_missing_campaign_shards(db, campaigns)
        loaded_now, waiting = await load_active_campaigns(db, campaigns)
        campaigns_loaded += loaded_now
        log.info("worker campaigns loaded count=%s waiting=%s", campaigns_loaded, waiting)
        campaign_closer = CampaignCloser(db, campaigns, settings)
        hold_expirer = HoldExpirer(db, campaigns)
        campaign_canceller = CampaignOrderCanceller(db)
        # One supervised loop per ledger shard, so a crash restarts only its shard.
        shard_loops = [
            keep_running(f"ledger_shard_{shard}", stop, lambda shard=shard: consumer.run_shard(shard, stop))
            for shard in range(settings.redis_shards)
        ]
        await asyncio.gather(
            *shard_loops,
            run_campaign_ledger(db, redis, keys, stop),
            run_every("closer", CLOSE_INTERVAL_S, stop, closer.round),
            run_every("complex_orders", COMPLEX_CLOSE_INTERVAL_S, stop,
                      lambda: close_due_complex_round(db, settings, redis, keys)),
            keep_running("mail_sender", stop, lambda: sender.run(stop)),
            run_every("unpaid_orders", CANCEL_INTERVAL_S, stop, canceller.round),
            run_every("campaign_closer", CLOSE_INTERVAL_S, stop, campaign_closer.round),
            run_every("campaign_holds", HOLD_EXPIRY_INTERVAL_S, stop, hold_expirer.round),
            run_every("campaign_unpaid_orders", CANCEL_INTERVAL_S, stop, campaign_canceller.round),
            run_every("idempotency_keys", PURGE_INTERVAL_S, stop,
                      lambda: purge_idempotency_keys(db, retention_s=settings.idempotency_retention_s)),
        )
    finally:
        await redis.aclose()
        await db.close()
        log.info("worker stopped")


def main() -> None:
    configure_logging()
    asyncio.run(run(get_settings()))


if __name__ == "__main__":
    main()

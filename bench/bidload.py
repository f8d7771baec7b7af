"""The data every bid benchmark shares: lots loaded into Redis, bidders, amounts.

Lots are loaded with `AuctionLive.load` (the same script the web process uses), so
the bid script sees exactly the state it sees in production. They open a minute ago
and end in a day, so no soft-close extension happens during a run.

Amounts: every bidder of a lot takes the next amount of that lot's counter
(`BASE_AMOUNT_WON + n * STEP_AMOUNT_WON`). The step is larger than any increment
below 2,000,000,000 won, so a bid that arrives after a higher one is usually still
accepted as a raise of the price and almost every bid is accepted.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis

from engine.auction.live import AuctionLive, LotLoad
from engine.keys import Keys

BASE_AMOUNT_WON = 1_000_000
STEP_AMOUNT_WON = 50_000
BENCH_PREFIX = "jtbench"
SUPPLIER_ID = 1


def bench_keys(shards: int = 16) -> Keys:
    return Keys(BENCH_PREFIX, shards)


async def load_lots(redis: Redis, keys: Keys, first_lot_id: int, count: int) -> None:
    """Load `count` open lots with ids first_lot_id.. into Redis (pipelined in chunks of 500)."""
    live = AuctionLive(redis, keys)
    now = datetime.now(UTC)
    for start in range(first_lot_id, first_lot_id + count, 500):
        chunk = range(start, min(start + 500, first_lot_id + count))
        await _gather([
            live.load(
                LotLoad(
                    lot_id=lot_id, supplier_id=SUPPLIER_ID, start_price_won=10_000,
                    reserve_won=None, buy_now_won=None, start_at=now - timedelta(minutes=1),
                    end_at=now + timedelta(days=1), hard_cap_at=None,
                    soft_close_window_s=120, extension_s=120,
                )
            )
            for lot_id in chunk
        ])


async def _gather(awaitables: list[Any]) -> None:
    import asyncio

    await asyncio.gather(*awaitables)


async def create_bidders(db: asyncpg.Pool, redis: Redis, keys: Keys, count: int) -> list[dict[str, Any]]:
    """Insert `count` member accounts and one signed-in session each; return their cookies and tokens.

    The sessions are written the way `web.sessions.SessionStore.save` writes them, so
    the web app's session middleware loads them as signed-in users.
    """
    tag = secrets.token_hex(4)
    rows = await db.fetch(
        """
        INSERT INTO users (email, password_hash, display_name, role)
        SELECT 'bench-' || $1 || '-' || n || '@example.invalid', 'x', '입찰자' || n, 'member'
        FROM generate_series(1, $2) AS n
        RETURNING id, email, display_name, role, supplier_id, status, locale
        """,
        tag, count,
    )
    bidders = []
    pipe = redis.pipeline(transaction=False)
    for row in rows:
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(32)
        data = {
            "csrf": csrf,
            "user": {name: row[name] for name in ("id", "email", "display_name", "role", "supplier_id", "status", "locale")},
            "user_loaded_at": time.time(),
        }
        pipe.set(keys.session(session_id), orjson.dumps(data), ex=3600)
        bidders.append({"user_id": row["id"], "session_id": session_id, "csrf_token": csrf})
    await pipe.execute()
    return bidders


def redis_benchmark_command(keys: Keys, lot_id: int) -> list[str]:
    """EVALSHA of bid.lua as `AuctionLive.place_bid` sends it, for redis-benchmark.

    redis-benchmark replaces each `__rand_int__` with its own 12-digit random number,
    so the user id and client id vary per call. The amount is fixed, because the
    script rejects amounts of more than 11 digits and redis-benchmark has no counter:
    the first call is accepted and the rest take the rejection path (`bid_too_low`),
    which does every read and check but none of the writes. The driver reports the
    accepted share, so the baseline is known to be the cheaper path.
    """
    from engine.auction.live import BID_SCRIPT

    return [
        "EVALSHA", BID_SCRIPT.sha, "5",
        keys.lot_state(lot_id), keys.lot_bidders(lot_id), keys.lot_receipts(lot_id),
        keys.ledger_stream_for_lot(lot_id), keys.ends_for_lot(lot_id),
        "bid", "__rand_int__", "c__rand_int__", str(BASE_AMOUNT_WON), "입*자", "0", keys.events_channel,
    ]

"""Acknowledged sequence numbers survive a Redis that lost its tail."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from engine.auction.live import AuctionLive
from engine.auction.lots import load_lot
from engine.auction.service import submit_bid
from engine.errors import DomainError
from worker_testkit import Market

GRACE_MS = 300


async def submit_after_grace(db, live, actor, lot_id, amount, client_id):  # type: ignore[no-untyped-def]
    """Submit a bid on a lot Redis lost: the first try waits for the rebuild grace."""
    live.rebuild_grace_ms = GRACE_MS
    with pytest.raises(DomainError) as pending:
        await submit_bid(db, live, actor, lot_id, amount, client_id)
    assert pending.value.code == "lot_rebuilding"
    await asyncio.sleep(GRACE_MS / 1000 + 0.1)
    return await submit_bid(db, live, actor, lot_id, amount, client_id)


async def test_acks_flush_keeps_the_highest_seq(db: asyncpg.Pool, live: AuctionLive, market: Market) -> None:
    """Flushing writes each lot's highest acknowledged seq and never lowers a stored mark."""
    lot_id = await market.lot(duration_s=60)
    members = [await market.member() for _ in range(3)]
    for step, member in enumerate(members):
        await market.accepted_bid(lot_id, member, 10_000 + step * 1_000)

    assert await live.acks.flush(db) == 1
    assert await db.fetchval("SELECT seq FROM lot_ack_marks WHERE lot_id = $1", lot_id) == 3

    await db.execute("UPDATE lot_ack_marks SET seq = 9 WHERE lot_id = $1", lot_id)
    live.acks.note(lot_id, 4)
    await live.acks.flush(db)
    assert await db.fetchval("SELECT seq FROM lot_ack_marks WHERE lot_id = $1", lot_id) == 9
    assert await live.acks.flush(db) == 0


async def test_rebuild_after_lost_tail_holds_lot(
    db: asyncpg.Pool, live: AuctionLive, market: Market, consumer
) -> None:  # type: ignore[no-untyped-def]
    """A lot whose acknowledged bids never reached the ledger is rebuilt as held and takes no bid."""
    lot_id = await market.lot(duration_s=60)
    first, second, third = [await market.member() for _ in range(3)]
    await market.accepted_bid(lot_id, first, 10_000)
    await consumer.drain()
    await market.accepted_bid(lot_id, second, 12_000)

    # Redis loses the lot, and the stream entry of the second bid with it.
    keys = live.keys
    await live.redis.delete(keys.lot_state(lot_id), keys.lot_bidders(lot_id), keys.lot_receipts(lot_id))
    await live.redis.delete(keys.ledger_stream_for_lot(lot_id))

    outcome = await submit_after_grace(db, live, third, lot_id, "20000", "after-restart")

    assert not outcome.accepted
    assert outcome.code == "lot_held"
    assert await db.fetchval("SELECT status FROM lots WHERE id = $1", lot_id) == "held"
    assert await db.fetchval("SELECT seq FROM lot_ack_marks WHERE lot_id = $1", lot_id) == 2


async def test_rebuild_with_complete_ledger_accepts_bids(
    db: asyncpg.Pool, live: AuctionLive, market: Market, consumer
) -> None:  # type: ignore[no-untyped-def]
    """A lot whose ledger holds every acknowledged bid is rebuilt live and keeps its price."""
    lot_id = await market.lot(duration_s=60)
    first, second, third = [await market.member() for _ in range(3)]
    await market.accepted_bid(lot_id, first, 10_000)
    await market.accepted_bid(lot_id, second, 12_000)
    await consumer.drain()

    keys = live.keys
    await live.redis.delete(keys.lot_state(lot_id), keys.lot_bidders(lot_id), keys.lot_receipts(lot_id))

    outcome = await submit_after_grace(db, live, third, lot_id, "20000", "after-restart")

    assert outcome.accepted, outcome.code
    assert outcome.receipt is not None
    assert outcome.receipt.seq == 3
    assert outcome.receipt.price_won == 12_500


async def test_load_of_live_lot_never_holds(db: asyncpg.Pool, live: AuctionLive, market: Market) -> None:
    """A lot Redis still has is left alone by a load, even when the ledger lags behind its marks."""
    lot_id = await market.lot(duration_s=60)
    first, second = [await market.member() for _ in range(2)]
    await market.accepted_bid(lot_id, first, 10_000)
    await market.accepted_bid(lot_id, second, 12_000)
    await live.acks.flush(db)  # marks at seq 2, ledger still empty (no consumer ran)

    assert await load_lot(db, live, lot_id) is False

    assert await db.fetchval("SELECT status FROM lots WHERE id = $1", lot_id) == "open"
    outcome = await market.bid(lot_id, first, 20_000)
    assert outcome.accepted, outcome.code


async def test_held_lot_stops_bids_in_redis(db: asyncpg.Pool, live: AuctionLive, market: Market) -> None:
    """After sync_held_lots, a lot PostgreSQL holds rejects bids with lot_held."""
    from engine.auction.closing import sync_held_lots

    lot_id = await market.lot(duration_s=60)
    member = await market.member()
    await market.accepted_bid(lot_id, member, 10_000)
    await db.execute("UPDATE lots SET status = 'held', held_reason = 'test' WHERE id = $1", lot_id)

    assert await sync_held_lots(db, live) == 1
    assert await sync_held_lots(db, live) == 0

    outcome = await market.bid(lot_id, member, 30_000)
    assert outcome.code == "lot_held"


async def test_extend_after_end_rejected(live: AuctionLive, market: Market) -> None:
    """A staff extend arriving after the end but before the closer ran leaves the lot ended."""
    lot_id = await market.lot(duration_s=0.3)
    member = await market.member()
    await asyncio.sleep(0.4)
    new_end_ms = await live.server_time_ms() + 600_000

    reply = await live.admin(lot_id, "extend", str(new_end_ms), 1)

    assert reply == {"ok": False, "code": "lot_ended"}
    outcome = await market.bid(lot_id, member, 10_000)
    assert outcome.code == "lot_ended"

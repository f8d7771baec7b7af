"""Acknowledged sequence numbers survive a Redis that lost its tail."""

from __future__ import annotations

import asyncpg

from engine.auction.live import AuctionLive
from engine.auction.service import submit_bid
from worker_testkit import Market


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

    outcome = await submit_bid(db, live, third, lot_id, "20000", "after-restart")

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

    outcome = await submit_bid(db, live, third, lot_id, "20000", "after-restart")

    assert outcome.accepted, outcome.code
    assert outcome.receipt is not None
    assert outcome.receipt.seq == 3
    assert outcome.receipt.price_won == 12_500

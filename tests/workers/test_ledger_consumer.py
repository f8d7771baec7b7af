"""The ledger consumer: every stream entry reaches lot_events once, whatever fails in between."""

from __future__ import annotations

import asyncio
from datetime import timezone

import asyncpg

from engine.auction.ledger import LedgerConsumer, LedgerEntry, StoreResult, parse_entry


async def test_entries_reach_ledger_and_leave_stream(db, live, consumer, market):
    """Drained entries are stored with UTC times and the shard stream is left empty with nothing pending."""
    lot_id = await market.lot(duration_s=30)
    bidder = await market.member()
    outcome = await market.accepted_bid(lot_id, bidder, 20_000)
    assert outcome.receipt is not None

    assert await consumer.drain() == 1

    row = await db.fetchrow("SELECT * FROM lot_events WHERE lot_id = $1", lot_id)
    assert (row["seq"], row["kind"], row["user_id"], row["amount_won"], row["price_won"]) == (
        1, "bid", bidder.user_id, 20_000, 10_000,
    )
    assert row["leader_id"] == bidder.user_id
    assert row["server_at"].tzinfo is not None
    assert int(row["server_at"].astimezone(timezone.utc).timestamp() * 1000) == outcome.receipt.server_ms
    stream = live.keys.ledger_stream_for_lot(lot_id)
    assert await live.redis.xlen(stream) == 0
    assert (await live.redis.xpending(stream, live.keys.ledger_group))["pending"] == 0


async def test_redelivered_entries_are_duplicates(db, live, consumer, market):
    """Storing the same entries again inserts nothing and holds nothing."""
    lot_id = await market.lot(duration_s=30)
    await market.accepted_bid(lot_id, await market.member(), 20_000)
    stream = live.keys.ledger_stream_for_lot(lot_id)
    raw = await live.redis.xrange(stream)
    entries = [parse_entry(entry_id, fields) for entry_id, fields in raw]
    first = await consumer.store_entries(entries)
    second = await consumer.store_entries(entries + entries)

    assert (first.inserted, first.conflicts) == (1, 0)
    assert (second.inserted, second.duplicates, second.conflicts) == (0, 2, 0)
    assert await db.fetchval("SELECT status FROM lots WHERE id = $1", lot_id) == "open"


async def test_reissued_sequence_holds_lot(db, live, consumer, market):
    """An entry whose (lot, seq) is stored with other content holds the lot as a sequence conflict."""
    lot_id = await market.lot(duration_s=30)
    first, second = await market.member(), await market.member()
    await market.accepted_bid(lot_id, first, 20_000)
    await db.execute(
        "INSERT INTO lot_events (lot_id, seq, kind, user_id, amount_won, price_won, leader_id, server_at)"
        " VALUES ($1, 1, 'bid', $2, 30000, 10000, $2, now())",
        lot_id, second.user_id,
    )

    await consumer.drain()

    lot = await db.fetchrow("SELECT status, held_reason FROM lots WHERE id = $1", lot_id)
    assert (lot["status"], lot["held_reason"]) == ("held", "sequence conflict")
    assert await live.redis.xlen(live.keys.ledger_stream_for_lot(lot_id)) == 0


async def test_dead_consumer_entries_are_claimed(db, live, consumer, market):
    """Entries read by a consumer that died are claimed by another after the idle time and stored."""
    lot_id = await market.lot(duration_s=30)
    await market.accepted_bid(lot_id, await market.member(), 20_000)
    shard = live.keys.shard_of(lot_id)
    stream = live.keys.ledger_stream(shard)
    await consumer.ensure_group(shard)
    dead = await live.redis.xreadgroup(live.keys.ledger_group, "dead-consumer", {stream: ">"}, count=10)
    assert len(dead[0][1]) == 1
    assert await consumer.consume_once(shard) == 0

    await asyncio.sleep(consumer.claim_idle_s + 0.05)
    assert await consumer.claim_stale(shard) == 1

    assert await db.fetchval("SELECT count(*) FROM lot_events WHERE lot_id = $1", lot_id) == 1
    assert (await live.redis.xpending(stream, live.keys.ledger_group))["pending"] == 0


class FailingOnce(LedgerConsumer):
    """A consumer whose first store fails as if PostgreSQL were down."""

    failed = False

    async def store_entries(self, entries: list[LedgerEntry]) -> StoreResult:
        if not self.failed:
            self.failed = True
            raise asyncpg.CannotConnectNowError("the database system is starting up")
        return await super().store_entries(entries)


async def test_failed_store_is_retried_from_pending(db, live, market):
    """When storing fails nothing is acknowledged, and the next round stores the consumer's pending entries."""
    lot_id = await market.lot(duration_s=30)
    await market.accepted_bid(lot_id, await market.member(), 20_000)
    consumer = FailingOnce(db, live.redis, live.keys, block_ms=10)
    shard = live.keys.shard_of(lot_id)
    await consumer.ensure_group(shard)
    await consumer.consume_once(shard)  # its own pending list is empty at first
    stream = live.keys.ledger_stream(shard)

    try:
        await consumer.consume_once(shard)
    except asyncpg.CannotConnectNowError:
        pass
    assert (await live.redis.xpending(stream, live.keys.ledger_group))["pending"] == 1
    assert await db.fetchval("SELECT count(*) FROM lot_events") == 0

    assert await consumer.consume_once(shard) == 1
    assert await db.fetchval("SELECT count(*) FROM lot_events") == 1
    assert await live.redis.xlen(stream) == 0


async def test_missing_group_is_recreated(db, live, consumer, market):
    """When Redis lost the stream and its group, the consumer creates them again and carries on."""
    lot_id = await market.lot(duration_s=30)
    shard = live.keys.shard_of(lot_id)
    await consumer.drain()
    await live.redis.delete(live.keys.ledger_stream(shard))

    await market.accepted_bid(lot_id, await market.member(), 20_000)
    await consumer.drain()

    assert await db.fetchval("SELECT count(*) FROM lot_events WHERE lot_id = $1", lot_id) == 1


async def test_running_consumer_stores_bids_and_stops(db, live, consumer, market):
    """The running consumer stores bids as they come and returns once stop is set."""
    lot_id = await market.lot(duration_s=30)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    members = [await market.member() for _ in range(3)]
    for i, member in enumerate(members):
        await market.accepted_bid(lot_id, member, 20_000 + i * 5_000)

    while await db.fetchval("SELECT count(*) FROM lot_events WHERE lot_id = $1", lot_id) < 3:
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert [r["seq"] for r in await db.fetch("SELECT seq FROM lot_events ORDER BY seq")] == [1, 2, 3]

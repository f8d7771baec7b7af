"""A Redis killed during bidding: acknowledged bids survive, and the lot still closes once.

Each test runs with the bids sent as redis-py pipelines (`pool`, as the worker sends
them) and on a `PipelinedConnection` (`pipelined`, as the web app sends them).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from embedded.redis import PrivateRedis, start_private_redis
from engine.accounts import mask_name
from engine.auction.batching import ScriptBatcher
from engine.auction.closing import close_due_lots, reload_missing_shards
from engine.auction.ledger import LedgerConsumer, note_acknowledged
from engine.auction.live import AuctionLive, Receipt
from engine.auction.pipelined import PipelinedConnection
from engine.keys import Keys

from invariants import check_auction_invariants
from worker_testkit import close_until_final, make_market, send_all, wait_until_due

pytestmark = pytest.mark.slow


@pytest_asyncio.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    server = start_private_redis(tmp_path / "redis", appendonly=True)
    yield server
    server.stop()


@pytest_asyncio.fixture(params=["pool", "pipelined"])
async def private_live(
    request: pytest.FixtureRequest, private_redis: PrivateRedis, wk_settings
) -> AsyncIterator[AuctionLive]:
    client = redis.asyncio.Redis.from_url(private_redis.url, socket_timeout=5)
    connection = PipelinedConnection(client) if request.param == "pipelined" else None
    batcher = ScriptBatcher(client, connection=connection)
    yield AuctionLive(client, Keys(wk_settings.redis_prefix, wk_settings.redis_shards), batcher=batcher)
    if connection is not None:
        await connection.close()
    await client.aclose()


async def bid_until_answered(  # type: ignore[no-untyped-def]
    live: AuctionLive, lot_id: int, member, amount_won: int, client_id: str | None = None
) -> Receipt | None:
    """Bid as a browser would: retry with the same client id until Redis replies; None when rejected."""
    client_id = client_id or secrets.token_hex(8)
    while True:
        try:
            outcome = await live.place_bid(
                lot_id, user_id=member.user_id, client_id=client_id, amount_won=amount_won,
                bidder_masked=mask_name(member.display_name),
            )
        except (RedisConnectionError, RedisTimeoutError, OSError):
            await asyncio.sleep(0.05)
            continue
        return outcome.receipt if outcome.accepted else None


async def reload_after_grace(db, live: AuctionLive, settings) -> int:  # type: ignore[no-untyped-def]
    """Reload lost lots as a worker does: the first round only starts their rebuild grace."""
    live.rebuild_grace_ms = 300
    assert await reload_missing_shards(db, live, settings) == 0
    await asyncio.sleep(0.4)
    return await reload_missing_shards(db, live, settings)


async def restart(server: PrivateRedis, *, wipe: bool) -> None:
    server.kill()
    if wipe:
        for path in server.directory.iterdir():
            if path.name != "redis.log":
                if path.is_dir():
                    for inner in path.iterdir():
                        inner.unlink()
                    path.rmdir()
                else:
                    path.unlink()
    await asyncio.sleep(0.1)
    server.start()


async def assert_receipts_recorded(db, lot_id: int, receipts: list[Receipt]) -> None:  # type: ignore[no-untyped-def]
    rows = {r["seq"]: r for r in await db.fetch("SELECT * FROM lot_events WHERE lot_id = $1", lot_id)}
    for receipt in receipts:
        assert receipt.seq in rows, f"receipt seq {receipt.seq} missing from the ledger"
        assert rows[receipt.seq]["amount_won"] == receipt.amount_won


async def assert_closed_once(db, live: AuctionLive, lot_id: int, settings, smtp_sink) -> None:  # type: ignore[no-untyped-def]
    sale = await db.fetchrow("SELECT * FROM sales WHERE lot_id = $1", lot_id)
    lot = await db.fetchrow("SELECT * FROM lots WHERE id = $1", lot_id)
    snapshot = await live.snapshot(lot_id)
    assert snapshot is not None
    assert (snapshot.status, snapshot.price_won, snapshot.leader_id, snapshot.seq) == (
        "sold", sale["price_won"], sale["buyer_id"], lot["final_seq"],
    )
    assert await db.fetchval("SELECT count(*) FROM money_ledger WHERE entry = 'commission'") == 1
    assert await db.fetchval("SELECT count(*) FROM orders") == 1
    await send_all(db, settings)
    pairs = [(m.message["To"], str(m.message["Subject"])) for m in smtp_sink.messages]
    assert len(pairs) == len(set(pairs)) == await db.fetchval("SELECT count(*) FROM outbox")


async def test_killed_redis_keeps_acknowledged_bids(db, private_redis, private_live, wk_settings, smtp_sink):
    """Bids acknowledged before and after a SIGKILL of Redis (append-only, fsync always) are all recorded."""
    live = private_live
    market = await make_market(db, live)
    consumer = LedgerConsumer(db, live.redis, live.keys, block_ms=50)
    stop = asyncio.Event()
    consuming = asyncio.create_task(consumer.run(stop))
    lot_id = await market.lot(duration_s=6)
    members = [await market.member(name) for name in ("김가영", "이나래", "박다솜", "최라온")]
    receipts: list[Receipt] = []

    async def bidder(index: int) -> None:
        for round_no in range(12):
            receipt = await bid_until_answered(live, lot_id, members[index], 10_000 + 1_000 * (round_no * 4 + index))
            if receipt is not None:
                receipts.append(receipt)
            await asyncio.sleep(0.01)

    async def killer() -> None:
        while len(receipts) < 10:
            await asyncio.sleep(0.005)
        await restart(private_redis, wipe=False)

    await asyncio.gather(*(bidder(i) for i in range(4)), killer())
    assert len(receipts) > 10
    await wait_until_due(live, lot_id)
    try:
        status = await close_until_final(db, live, wk_settings, consumer, lot_id)
    finally:
        stop.set()
        await consuming

    assert status == "sold"
    await assert_receipts_recorded(db, lot_id, receipts)
    assert max(r.seq for r in receipts) < await db.fetchval("SELECT final_seq FROM lots WHERE id = $1", lot_id)
    await assert_closed_once(db, live, lot_id, wk_settings, smtp_sink)
    await check_auction_invariants(db, live, receipts=receipts, sink_messages=smtp_sink.messages)


async def test_empty_redis_is_rebuilt_before_bids(db, private_redis, private_live, wk_settings, smtp_sink):
    """A Redis restarted empty rejects nothing wrongly: bids fail while it is down, the lot is rebuilt, then closes once."""
    live = private_live
    market = await make_market(db, live)
    consumer = LedgerConsumer(db, live.redis, live.keys, block_ms=50)
    lot_id = await market.lot(duration_s=4)
    first, second = await market.member("김가영"), await market.member("이나래")
    receipts = [await bid_until_answered(live, lot_id, first, 20_000, client_id="first-bid"),
                await bid_until_answered(live, lot_id, second, 25_000)]
    await consumer.drain()
    await reload_missing_shards(db, live, wk_settings)  # sets the shard markers, as a worker does at start
    before = await live.snapshot(lot_id)

    private_redis.kill()
    with pytest.raises((RedisConnectionError, RedisTimeoutError, OSError)):
        await live.place_bid(lot_id, user_id=first.user_id, client_id="offline", amount_won=40_000,
                             bidder_masked="김*영")
    await restart(private_redis, wipe=True)
    assert await live.snapshot(lot_id) is None

    assert await reload_after_grace(db, live, wk_settings) == 1
    rebuilt = await live.snapshot(lot_id)
    assert rebuilt is not None and before is not None
    assert (rebuilt.seq, rebuilt.price_won, rebuilt.leader_id, rebuilt.end_ms) == (
        before.seq, before.price_won, before.leader_id, before.end_ms,
    )
    retried = await bid_until_answered(live, lot_id, first, 20_000, client_id="first-bid")
    assert retried is not None
    assert retried.retry
    assert retried.seq == receipts[0].seq  # the receipt was rebuilt from the ledger
    receipts.append(await bid_until_answered(live, lot_id, first, 40_000))
    assert all(receipts)

    await wait_until_due(live, lot_id)
    assert await close_until_final(db, live, wk_settings, consumer, lot_id) == "sold"
    await assert_receipts_recorded(db, lot_id, [r for r in receipts if r])
    sale = await db.fetchrow("SELECT buyer_id, price_won FROM sales WHERE lot_id = $1", lot_id)
    assert (sale["buyer_id"], sale["price_won"]) == (first.user_id, 25_500)
    await assert_closed_once(db, live, lot_id, wk_settings, smtp_sink)
    await check_auction_invariants(db, live, receipts=[*receipts, retried], sink_messages=smtp_sink.messages)


async def test_lost_tail_holds_lot(db, private_redis, private_live, wk_settings):
    """When Redis comes back empty before the ledger stored acknowledged bids, the lot is held, not sold."""
    live = private_live
    market = await make_market(db, live)
    consumer = LedgerConsumer(db, live.redis, live.keys, block_ms=50)
    lot_id = await market.lot(duration_s=3)
    first, second = await market.member("김가영"), await market.member("이나래")
    first_receipt = await bid_until_answered(live, lot_id, first, 20_000)
    await consumer.drain()
    lost = await bid_until_answered(live, lot_id, second, 25_000)
    assert lost is not None

    await restart(private_redis, wipe=True)
    async with db.acquire() as connection:
        # What a web process records for the receipts it gave out when it notices that Redis restarted.
        await note_acknowledged(connection, lot_id, lost.seq)
    await reload_after_grace(db, live, wk_settings)

    outcome = await bid_until_answered(live, lot_id, first, 40_000)
    assert outcome is None
    snapshot = await live.snapshot(lot_id)
    assert snapshot is not None
    assert snapshot.status == "held"
    await wait_until_due(live, lot_id)
    await close_due_lots(db, live, wk_settings)
    await consumer.drain()
    assert await db.fetchval("SELECT status FROM lots WHERE id = $1", lot_id) == "held"
    assert await db.fetchval("SELECT held_reason FROM lots WHERE id = $1", lot_id) == "acknowledged sequence missing"
    assert await db.fetchval("SELECT count(*) FROM sales") == 0
    await check_auction_invariants(db, live, receipts=[first_receipt, lost])

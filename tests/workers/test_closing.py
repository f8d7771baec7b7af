"""Closing lots: one sale, order, commission and mail set per lot, whatever races or dies."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import redis.asyncio

from engine.auction.closing import close_due_lots, finalize_lot
from engine.auction.live import AuctionLive
from engine.db import create_pool
from engine.keys import Keys
from invariants import check_auction_invariants
from worker_testkit import bid_three, close_until_final, counts, send_all, wait_until_due


async def test_close_sells_once_to_leader(db, live, wk_settings, consumer, market, smtp_sink):
    """A lot with bids closes into one sale, order, commission and one mail per (event, recipient)."""
    lot_id = await market.lot()
    a, b, c = await bid_three(market, lot_id)
    await wait_until_due(live, lot_id)

    assert await close_until_final(db, live, wk_settings, consumer, lot_id) == "sold"

    sale = await db.fetchrow("SELECT * FROM sales WHERE lot_id = $1", lot_id)
    assert sale["buyer_id"] == b.user_id
    assert sale["price_won"] == 13_500
    order = await db.fetchrow("SELECT * FROM orders WHERE sale_id = $1", sale["id"])
    assert order["status"] == "awaiting_payment"
    assert order["channel"] == "auction"
    assert order["payment_method"] == "bank_transfer"
    assert order["amount_won"] == 13_500
    assert order["order_no"].startswith("A")
    close_event = await db.fetchrow(
        "SELECT * FROM lot_events WHERE lot_id = $1 AND kind = 'close'", lot_id
    )
    assert order["payment_due_at"] - close_event["server_at"] == timedelta(hours=48)
    ledger = {row["entry"]: row for row in await db.fetch("SELECT * FROM money_ledger WHERE order_id = $1", order["id"])}
    assert ledger["sale"]["amount_won"] == 13_500
    assert ledger["commission"]["amount_won"] == 540  # 13,500 x 400 bp
    assert ledger["commission"]["rate_bp"] == 400

    lot = await db.fetchrow("SELECT * FROM lots WHERE id = $1", lot_id)
    snapshot = await live.snapshot(lot_id)
    assert snapshot is not None
    assert snapshot.status == "sold"
    assert snapshot.price_won == sale["price_won"]
    assert snapshot.leader_id == sale["buyer_id"]
    assert snapshot.seq == lot["final_seq"] == close_event["seq"]
    assert await live.redis.zscore(live.keys.ends_for_lot(lot_id), lot_id) is None

    assert await send_all(db, wk_settings) == 4
    received = {(m.message["To"], str(m.message["Subject"])) for m in smtp_sink.messages}
    assert len(smtp_sink.messages) == 4
    assert len(received) == 4
    by_recipient = {m.message["To"]: m.message for m in smtp_sink.messages}
    assert "낙찰되었습니다" in str(by_recipient[market.emails[b.user_id]]["Subject"])
    assert order["order_no"] in by_recipient[market.emails[b.user_id]].get_content()
    assert "13,500원" in by_recipient[market.emails[b.user_id]].get_content()
    for loser in (a, c):
        assert "경매가 종료되었습니다" in str(by_recipient[market.emails[loser.user_id]]["Subject"])
    assert "낙찰" in str(by_recipient[await market.supplier_email()]["Subject"])

    await close_due_lots(db, live, wk_settings)
    assert await send_all(db, wk_settings) == 0
    assert await counts(db, lot_id) == {"sales": 1, "orders": 1, "commissions": 1, "mails": 4}
    assert len(smtp_sink.messages) == 4
    await check_auction_invariants(db, live, sink_messages=smtp_sink.messages)


async def test_close_below_reserve_is_unsold(db, live, wk_settings, consumer, market):
    """A lot whose price stays below its hidden reserve closes unsold, without a sale."""
    lot_id = await market.lot(reserve_won=50_000)
    bidder = await market.member()
    await market.accepted_bid(lot_id, bidder, 20_000)
    await wait_until_due(live, lot_id)

    assert await close_until_final(db, live, wk_settings, consumer, lot_id) == "unsold"

    assert await counts(db, lot_id) == {"sales": 0, "orders": 0, "commissions": 0, "mails": 2}
    keys = {row["event_key"] for row in await db.fetch("SELECT event_key FROM outbox")}
    assert keys == {f"lot:{lot_id}:lost", f"lot:{lot_id}:supplier"}
    await check_auction_invariants(db, live)


async def test_close_without_bids_is_unsold(db, live, wk_settings, consumer, market):
    """A lot nobody bid on closes unsold and only its supplier is mailed."""
    lot_id = await market.lot()
    await wait_until_due(live, lot_id)

    assert await close_until_final(db, live, wk_settings, consumer, lot_id) == "unsold"

    assert await counts(db, lot_id) == {"sales": 0, "orders": 0, "commissions": 0, "mails": 1}
    snapshot = await live.snapshot(lot_id)
    assert snapshot is not None
    assert snapshot.status == "unsold"
    await check_auction_invariants(db, live)


async def test_close_racing_closers_sell_once(db, wk_dsn, live, wk_settings, consumer, market, redis_url):
    """Two closers with their own pools and Redis clients racing on one lot create one sale set."""
    lot_id = await market.lot()
    await bid_three(market, lot_id)
    await wait_until_due(live, lot_id)
    other_db = await create_pool(wk_dsn, min_size=1, max_size=4)
    other_redis = redis.asyncio.Redis.from_url(redis_url)
    other_live = AuctionLive(other_redis, Keys(wk_settings.redis_prefix, wk_settings.redis_shards))
    try:
        for _ in range(5):
            await asyncio.gather(
                close_due_lots(db, live, wk_settings),
                close_due_lots(other_db, other_live, wk_settings),
            )
            await consumer.drain()
    finally:
        await other_redis.aclose()
        await other_db.close()

    assert await db.fetchval("SELECT status FROM lots WHERE id = $1", lot_id) == "sold"
    assert await counts(db, lot_id) == {"sales": 1, "orders": 1, "commissions": 1, "mails": 4}
    snapshot = await live.snapshot(lot_id)
    assert snapshot is not None
    assert snapshot.status == "sold"
    await check_auction_invariants(db, live)


async def test_close_finishes_after_closer_died(db, live, wk_settings, consumer, market):
    """A closer that committed but died before settling Redis leaves work the next round finishes once."""
    lot_id = await market.lot()
    await bid_three(market, lot_id)
    await wait_until_due(live, lot_id)
    reply = await live.begin_close(lot_id)
    assert reply["ok"]
    await consumer.drain()

    outcome = await finalize_lot(db, wk_settings, lot_id, int(reply["state"]["seq"]))
    assert outcome.status == "sold"
    snapshot = await live.snapshot(lot_id)
    assert snapshot is not None
    assert snapshot.status == "closing"

    outcomes = await close_due_lots(db, live, wk_settings)
    assert [o.lot_id for o in outcomes] == [lot_id]
    snapshot = await live.snapshot(lot_id)
    assert snapshot is not None
    assert snapshot.status == "sold"
    assert await counts(db, lot_id) == {"sales": 1, "orders": 1, "commissions": 1, "mails": 4}
    assert await close_due_lots(db, live, wk_settings) == []
    await check_auction_invariants(db, live)


async def test_close_holds_lot_with_ledger_gap(db, live, wk_settings, consumer, market):
    """A lot whose ledger lost a sequence number is held for review and nothing is sold."""
    lot_id = await market.lot()
    await bid_three(market, lot_id)
    await consumer.drain()
    await db.execute("DELETE FROM lot_events WHERE lot_id = $1 AND seq = 2", lot_id)
    await wait_until_due(live, lot_id)

    assert await close_until_final(db, live, wk_settings, consumer, lot_id) == "held"

    lot = await db.fetchrow("SELECT status, held_reason FROM lots WHERE id = $1", lot_id)
    assert lot["held_reason"] == "ledger gap"
    assert await counts(db, lot_id) == {"sales": 0, "orders": 0, "commissions": 0, "mails": 0}
    await check_auction_invariants(db, live)


async def test_close_holds_lot_acknowledged_beyond_redis(db, live, wk_settings, consumer, market):
    """A lot whose ack mark names a sequence number beyond Redis's final one is held."""
    lot_id = await market.lot()
    await bid_three(market, lot_id)
    await db.execute("INSERT INTO lot_ack_marks (lot_id, seq) VALUES ($1, 9)", lot_id)
    await wait_until_due(live, lot_id)

    assert await close_until_final(db, live, wk_settings, consumer, lot_id) == "held"

    assert await db.fetchval("SELECT held_reason FROM lots WHERE id = $1", lot_id) == "acknowledged sequence missing"
    assert await db.fetchval("SELECT count(*) FROM sales WHERE lot_id = $1", lot_id) == 0
    await check_auction_invariants(db, live)


async def test_close_waits_while_ledger_is_behind(db, live, wk_settings, consumer, market):
    """With a grace period, a closer waits for the ledger instead of closing or holding early."""
    lot_id = await market.lot()
    await bid_three(market, lot_id)
    await wait_until_due(live, lot_id)
    patient = wk_settings.model_copy(update={"ledger_gap_grace_s": 3600})

    outcomes = await close_due_lots(db, live, patient)

    assert [o.status for o in outcomes] == ["waiting"]
    assert await db.fetchval("SELECT status FROM lots WHERE id = $1", lot_id) == "open"
    await consumer.drain()
    outcomes = await close_due_lots(db, live, patient)
    assert [o.status for o in outcomes] == ["sold"]
    await check_auction_invariants(db, live)

"""Staff actions on lots and orders: effects, one audit row each, and members refused."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.auction import staff
from engine.auction.closing import close_due_lots
from engine.errors import DomainError
from engine.orders import cancel_unpaid_orders, confirm_deposit

from invariants import check_auction_invariants
from worker_testkit import bid_three, close_until_final, wait_until_due


async def audit_actions(db, lot_id: int) -> list[str]:
    rows = await db.fetch("SELECT action FROM audit_log WHERE target_id = $1 ORDER BY id", lot_id)
    return [row["action"] for row in rows]


async def test_void_recomputes_price_from_remaining_bids(db, live, wk_settings, consumer, market):
    """Voiding the leader's bid makes the best remaining bidder lead at the recomputed price."""
    lot_id = await market.lot(duration_s=3)
    a, b, c = await bid_three(market, lot_id)
    await consumer.drain()
    b_seq = await db.fetchval("SELECT seq FROM lot_events WHERE lot_id = $1 AND user_id = $2", lot_id, b.user_id)

    void_seq = await staff.void_bid(db, live, market.staff, lot_id, b_seq)

    snapshot = await live.snapshot(lot_id)
    assert snapshot is not None
    assert snapshot.seq == void_seq
    assert snapshot.leader_id == c.user_id
    assert snapshot.price_won == 12_500  # A's 12,000 plus one 500 step, below C's 13,000
    assert snapshot.bid_count == 2
    assert await live.bidders(lot_id) == {a.user_id: 12_000, c.user_id: 13_000}
    assert await audit_actions(db, lot_id) == ["lot.void_bid"]

    await wait_until_due(live, lot_id)
    assert await close_until_final(db, live, wk_settings, consumer, lot_id) == "sold"
    sale = await db.fetchrow("SELECT buyer_id, price_won FROM sales WHERE lot_id = $1", lot_id)
    assert (sale["buyer_id"], sale["price_won"]) == (c.user_id, 12_500)
    void = await db.fetchrow("SELECT * FROM lot_events WHERE lot_id = $1 AND kind = 'void'", lot_id)
    assert void["voided_seq"] == b_seq
    assert void["user_id"] == market.staff.user_id
    await check_auction_invariants(db, live)


async def test_void_rejects_unknown_and_repeated(db, live, consumer, market):
    """Voiding a sequence number that is no bid, or a bid already void, raises DomainError."""
    lot_id = await market.lot(duration_s=30)
    await bid_three(market, lot_id)
    await consumer.drain()
    with pytest.raises(DomainError) as missing:
        await staff.void_bid(db, live, market.staff, lot_id, 99, ledger_wait_s=0.1)
    assert missing.value.code == "bid_not_found"

    await staff.void_bid(db, live, market.staff, lot_id, 1)
    await consumer.drain()
    with pytest.raises(DomainError) as repeated:
        await staff.void_bid(db, live, market.staff, lot_id, 1)
    assert repeated.value.code == "bid_already_voided"
    assert await audit_actions(db, lot_id) == ["lot.void_bid"]


async def test_cancel_stops_bids(db, live, wk_settings, consumer, market):
    """A cancelled lot rejects bids, is never sold, and the cancel is audited once."""
    lot_id = await market.lot(duration_s=1)
    bidder = await market.member()
    first = await market.accepted_bid(lot_id, bidder, 20_000)

    await staff.cancel_lot(db, live, market.staff, lot_id)

    outcome = await market.bid(lot_id, await market.member(), 30_000)
    assert not outcome.accepted
    assert outcome.code == "lot_cancelled"
    assert await db.fetchval("SELECT status FROM lots WHERE id = $1", lot_id) == "cancelled"
    assert await audit_actions(db, lot_id) == ["lot.cancel"]
    await wait_until_due(live, lot_id)
    await close_due_lots(db, live, wk_settings)
    await consumer.drain()
    assert await db.fetchval("SELECT count(*) FROM sales WHERE lot_id = $1", lot_id) == 0
    assert await db.fetchval("SELECT kind FROM lot_events WHERE lot_id = $1 AND seq = 2", lot_id) == "cancel"
    await check_auction_invariants(db, live, receipts=[first, outcome])


async def test_extend_moves_end(db, live, consumer, market):
    """Extending an open lot moves its live end, records an extend event and one audit row."""
    lot_id = await market.lot(duration_s=30)
    before = await live.snapshot(lot_id)
    assert before is not None
    now = await db.fetchval("SELECT now()")
    new_end = now + timedelta(hours=1)

    seq = await staff.extend_lot(db, live, market.staff, lot_id, new_end)

    after = await live.snapshot(lot_id)
    assert after is not None
    assert after.end_ms == int(new_end.timestamp() * 1000)
    assert after.seq == seq
    assert await audit_actions(db, lot_id) == ["lot.extend"]
    await consumer.drain()
    event = await db.fetchrow("SELECT kind, end_at FROM lot_events WHERE lot_id = $1 AND seq = $2", lot_id, seq)
    assert event["kind"] == "extend"
    assert abs(event["end_at"] - new_end) < timedelta(milliseconds=1)
    with pytest.raises(DomainError) as earlier:
        await staff.extend_lot(db, live, market.staff, lot_id, now + timedelta(minutes=5))
    assert earlier.value.code == "end_not_later"


async def test_member_cannot_use_staff_actions(db, live, consumer, market):
    """A member calling any staff action gets DomainError forbidden and nothing changes."""
    lot_id = await market.lot(duration_s=30)
    await bid_three(market, lot_id)
    await consumer.drain()
    member = await market.member()
    before = await live.snapshot(lot_id)
    now = await db.fetchval("SELECT now()")

    calls = [
        staff.cancel_lot(db, live, member, lot_id),
        staff.extend_lot(db, live, member, lot_id, now + timedelta(hours=1)),
        staff.void_bid(db, live, member, lot_id, 1),
        staff.second_chance_offer(db, None, member, lot_id),  # type: ignore[arg-type]
        staff.cancel_lot(db, live, market.supplier, lot_id),
    ]
    for call in calls:
        with pytest.raises(DomainError) as refused:
            await call
        assert refused.value.code == "forbidden"

    after = await live.snapshot(lot_id)
    assert before is not None and after is not None
    assert (after.seq, after.status, after.price_won, after.leader_id, after.end_ms) == (
        before.seq, before.status, before.price_won, before.leader_id, before.end_ms,
    )
    assert await db.fetchval("SELECT status FROM lots WHERE id = $1", lot_id) == "open"
    assert await db.fetchval("SELECT count(*) FROM audit_log") == 0
    await check_auction_invariants(db, live)


async def test_second_chance_offer_and_accept(db, live, wk_settings, consumer, market):
    """After the winner fails to pay, the runner-up is offered the lot at their maximum and can buy it."""
    lot_id = await market.lot()
    a, b, c = await bid_three(market, lot_id)
    await wait_until_due(live, lot_id)
    assert await close_until_final(db, live, wk_settings, consumer, lot_id) == "sold"
    with pytest.raises(DomainError) as early:
        await staff.second_chance_offer(db, wk_settings, market.staff, lot_id)
    assert early.value.code == "winner_order_active"
    await db.execute("UPDATE orders SET payment_due_at = now() - interval '1 minute'")

    offer_id = await staff.second_chance_offer(db, wk_settings, market.staff, lot_id)

    offer = await db.fetchrow("SELECT * FROM second_chance_offers WHERE id = $1", offer_id)
    assert (offer["user_id"], offer["price_won"]) == (c.user_id, 13_000)
    assert await db.fetchval("SELECT status FROM orders WHERE buyer_id = $1", b.user_id) == "cancelled"
    assert await db.fetchval("SELECT recipient FROM outbox WHERE event_key = $1", f"lot:{lot_id}:second_chance") \
        == market.emails[c.user_id]
    with pytest.raises(DomainError) as stranger:
        await staff.accept_second_chance(db, wk_settings, a, offer_id)
    assert stranger.value.code == "offer_not_found"

    order = await staff.accept_second_chance(db, wk_settings, c, offer_id)

    sales = await db.fetch("SELECT buyer_id, price_won, second_chance FROM sales WHERE lot_id = $1 ORDER BY id", lot_id)
    assert [(s["buyer_id"], s["price_won"], s["second_chance"]) for s in sales] == [
        (b.user_id, 13_500, False), (c.user_id, 13_000, True),
    ]
    assert order.commission_won == 520  # 13,000 x 400 bp
    entries = await db.fetch("SELECT entry, amount_won FROM money_ledger ORDER BY id")
    assert [(e["entry"], e["amount_won"]) for e in entries] == [
        ("sale", 13_500), ("commission", 540), ("sale_reversal", -13_500), ("commission_reversal", -540),
        ("sale", 13_000), ("commission", 520),
    ]
    with pytest.raises(DomainError) as again:
        await staff.accept_second_chance(db, wk_settings, c, offer_id)
    assert again.value.code == "offer_not_open"
    assert await audit_actions(db, lot_id) == ["lot.second_chance_offer"]
    await check_auction_invariants(db, live)


async def test_confirm_deposit_marks_paid_once(db, live, wk_settings, consumer, market):
    """Staff confirming a deposit marks the order paid, audits it and mails the buyer; a member is refused."""
    lot_id = await market.lot()
    await bid_three(market, lot_id)
    await wait_until_due(live, lot_id)
    await close_until_final(db, live, wk_settings, consumer, lot_id)
    order_id = await db.fetchval("SELECT id FROM orders")
    member = await market.member()

    with pytest.raises(DomainError) as refused:
        await confirm_deposit(db, member, order_id)
    assert refused.value.code == "forbidden"
    await confirm_deposit(db, market.staff, order_id)
    with pytest.raises(DomainError) as twice:
        await confirm_deposit(db, market.staff, order_id)
    assert twice.value.code == "order_not_awaiting_payment"

    order = await db.fetchrow("SELECT status, paid_at, confirmed_by FROM orders WHERE id = $1", order_id)
    assert order["status"] == "paid"
    assert order["confirmed_by"] == market.staff.user_id
    assert await audit_actions(db, order_id) == ["order.confirm_deposit"]
    subject = await db.fetchval("SELECT subject FROM outbox WHERE event_key = $1", f"order:{order_id}:paid")
    assert "입금이 확인되었습니다" in subject
    await check_auction_invariants(db, live)


async def test_unpaid_orders_lapse_at_due_time(db, live, wk_settings, consumer, market):
    """An auction order unpaid past its due time is cancelled once, its commission reversed, the buyer mailed."""
    lot_id = await market.lot()
    await bid_three(market, lot_id)
    await wait_until_due(live, lot_id)
    await close_until_final(db, live, wk_settings, consumer, lot_id)
    order_id = await db.fetchval("SELECT id FROM orders")
    assert await cancel_unpaid_orders(db) == []
    await db.execute("UPDATE orders SET payment_due_at = now() - interval '1 second'")

    assert await cancel_unpaid_orders(db) == [order_id]
    assert await cancel_unpaid_orders(db) == []

    assert await db.fetchval("SELECT status FROM orders WHERE id = $1", order_id) == "cancelled"
    assert await db.fetchval("SELECT sum(amount_won) FROM money_ledger WHERE entry LIKE 'commission%'") == 0
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE event_key = $1", f"order:{order_id}:cancelled") == 1
    await check_auction_invariants(db, live)


async def test_voided_bid_retry_rejected(db, live, consumer, market):
    """A retry of a voided bid with its client id is rejected as bid_voided, also after a rebuild."""
    lot_id = await market.lot(duration_s=30)
    leader, challenger = await market.member(), await market.member()
    await market.accepted_bid(lot_id, leader, 10_000)
    voided = await market.bid(lot_id, challenger, 15_000, client_id="to-be-voided")
    assert voided.accepted
    await consumer.drain()

    await staff.void_bid(db, live, market.staff, lot_id, voided.receipt.seq)
    retry = await market.bid(lot_id, challenger, 15_000, client_id="to-be-voided")
    assert retry.code == "bid_voided"

    await consumer.drain()
    keys = live.keys
    await live.redis.delete(keys.lot_state(lot_id), keys.lot_bidders(lot_id), keys.lot_receipts(lot_id))
    live.rebuild_grace_ms = 0
    from engine.auction.lots import load_lot

    assert await load_lot(db, live, lot_id)
    retry_after_rebuild = await market.bid(lot_id, challenger, 15_000, client_id="to-be-voided")
    assert retry_after_rebuild.code == "bid_voided"
    snapshot = await live.snapshot(lot_id)
    assert snapshot.leader_id == leader.user_id

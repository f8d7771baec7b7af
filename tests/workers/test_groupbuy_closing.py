"""Closing campaigns: one result per campaign, one order per pledge, one mail per participant."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import redis.asyncio

from engine.db import create_pool
from engine.groupbuy.closing import close_due_campaigns, finalize_campaign
from engine.groupbuy.live import CampaignLive
from engine.keys import Keys
from invariants import check_campaign_invariants
from groupbuy_testkit import (
    campaign_consumer,
    campaign_counts,
    campaigns,
    close_until_final,
    ledger_sums,
    make_campaign,
    orders_by_user,
    pledge,
    wait_until_deadline,
)
from worker_testkit import send_all
from workers.campaigns import CampaignCloser

__all__ = ["campaign_consumer", "campaigns"]  # fixtures


async def test_close_succeeds_at_inclusive_tier(db, campaigns, campaign_consumer, wk_settings, market, smtp_sink):
    """A total exactly at a tier threshold gets that tier: one order per pledge, awaiting a bank transfer."""
    campaign_id = await make_campaign(market, campaigns)
    first, second = await market.member("김가영"), await market.member("이나래")
    await pledge(market, campaigns, campaign_id, first, 4)
    await pledge(market, campaigns, campaign_id, second, 6)
    await wait_until_deadline(campaigns, campaign_id)

    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"

    campaign = await db.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)
    assert campaign["final_unit_price_won"] == 8_000
    assert campaign["final_units"] == 10
    close_event = await db.fetchrow(
        "SELECT * FROM pledge_events WHERE campaign_id = $1 AND kind = 'close'", campaign_id
    )
    assert campaign["final_seq"] == close_event["seq"]
    orders = await orders_by_user(db, campaign_id)
    assert set(orders) == {first.user_id, second.user_id}
    for member, units in ((first, 4), (second, 6)):
        order = orders[member.user_id]
        assert order["channel"] == "groupbuy"
        assert order["status"] == "awaiting_payment"
        assert order["payment_method"] == "bank_transfer"
        assert order["source_key"] == f"campaign:{campaign_id}:user:{member.user_id}"
        assert (order["units"], order["unit_price_won"], order["amount_won"]) == (units, 8_000, units * 8_000)
        assert order["payment_due_at"] - close_event["server_at"] == timedelta(seconds=172_800)
        assert order["order_no"].startswith("G")
        sums = await ledger_sums(db, order["id"])
        assert sums == {"sale": units * 8_000, "commission": units * 8_000 * 400 // 10_000}

    snapshot = await campaigns.snapshot(campaign_id)
    assert snapshot is not None
    assert snapshot.status == "succeeded"
    assert snapshot.seq == campaign["final_seq"]
    assert await campaigns.redis.zscore(campaigns.keys.campaign_deadlines_for(campaign_id), campaign_id) is None

    assert await send_all(db, wk_settings) == 3
    by_recipient = {m.message["To"]: m.message for m in smtp_sink.messages}
    assert len(by_recipient) == 3
    body = by_recipient[market.emails[first.user_id]].get_content()
    assert "공동구매가 성사되었습니다" in str(by_recipient[market.emails[first.user_id]]["Subject"])
    assert "수량: 4개" in body
    assert "최종 단가: 8,000원" in body
    assert "결제 금액: 32,000원" in body
    assert "무통장입금" in body
    assert orders[first.user_id]["order_no"] in body
    assert "(KST)" in body
    supplier_body = by_recipient[await market.supplier_email()].get_content()
    assert "준비할 수량: 10개" in supplier_body

    assert await close_due_campaigns(db, campaigns, wk_settings) == []
    assert await campaign_counts(db, campaign_id) == {"orders": 2, "commissions": 2, "mails": 3}
    await check_campaign_invariants(db, campaigns, sink_messages=smtp_sink.messages)


@pytest.mark.parametrize(
    ("units", "status", "price_won"),
    [(4, "failed", None), (5, "succeeded", 9_000), (9, "succeeded", 9_000), (10, "succeeded", 8_000),
     (11, "succeeded", 8_000)],
)
async def test_close_price_by_committed_total(
    db, campaigns, campaign_consumer, wk_settings, market, units, status, price_won
):
    """The final price is the highest tier the total reached (inclusive); below the minimum the campaign fails."""
    campaign_id = await make_campaign(market, campaigns)
    await pledge(market, campaigns, campaign_id, await market.member(), units)
    await wait_until_deadline(campaigns, campaign_id)

    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == status

    assert await db.fetchval("SELECT final_unit_price_won FROM campaigns WHERE id = $1", campaign_id) == price_won
    amounts = [row["amount_won"] for row in await db.fetch("SELECT amount_won FROM orders WHERE campaign_id = $1", campaign_id)]
    assert amounts == ([units * price_won] if price_won else [])
    await check_campaign_invariants(db, campaigns)


async def test_close_fails_below_minimum(db, campaigns, campaign_consumer, wk_settings, market, smtp_sink):
    """A campaign below its minimum fails: no orders, every participant and the supplier are mailed once."""
    campaign_id = await make_campaign(market, campaigns, min_total_units=20)
    members = [await market.member(name) for name in ("김가영", "이나래", "박다솜")]
    for member in members:
        await pledge(market, campaigns, campaign_id, member, 3)
    await wait_until_deadline(campaigns, campaign_id)

    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "failed"

    assert await campaign_counts(db, campaign_id) == {"orders": 0, "commissions": 0, "mails": 4}
    assert await db.fetchval("SELECT final_unit_price_won FROM campaigns WHERE id = $1", campaign_id) is None
    assert await send_all(db, wk_settings) == 4
    subjects = {m.message["To"]: str(m.message["Subject"]) for m in smtp_sink.messages}
    for member in members:
        assert "공동구매가 성사되지 않았습니다" in subjects[market.emails[member.user_id]]
    snapshot = await campaigns.snapshot(campaign_id)
    assert snapshot is not None
    assert snapshot.status == "failed"
    await check_campaign_invariants(db, campaigns, sink_messages=smtp_sink.messages)


async def test_close_fails_below_minimum_buyers(db, campaigns, campaign_consumer, wk_settings, market):
    """A total above the minimum still fails when fewer members than the minimum number of buyers pledged."""
    campaign_id = await make_campaign(market, campaigns, min_buyers=3)
    await pledge(market, campaigns, campaign_id, await market.member(), 10)
    await pledge(market, campaigns, campaign_id, await market.member(), 10)
    await wait_until_deadline(campaigns, campaign_id)

    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "failed"
    assert await campaign_counts(db, campaign_id) == {"orders": 0, "commissions": 0, "mails": 3}
    await check_campaign_invariants(db, campaigns)


async def test_close_when_sold_out_before_deadline(db, campaigns, campaign_consumer, wk_settings, market):
    """With "close when sold out" on, the campaign closes as soon as the cap is reached, long before its deadline."""
    campaign_id = await make_campaign(
        market, campaigns, duration_s=3600, stock_cap_units=10, close_when_sold_out=True
    )
    await pledge(market, campaigns, campaign_id, await market.member(), 6)
    assert await close_due_campaigns(db, campaigns, wk_settings) == []
    await pledge(market, campaigns, campaign_id, await market.member(), 4)

    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"

    campaign = await db.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)
    assert campaign["final_unit_price_won"] == 8_000
    assert campaign["closed_at"] < campaign["deadline_at"]
    assert (await campaign_counts(db, campaign_id))["orders"] == 2
    await check_campaign_invariants(db, campaigns)


async def test_close_waits_for_server_deadline(db, campaigns, campaign_consumer, wk_settings, market):
    """Nothing closes before the deadline by Redis time; a pledge at or after it is rejected even before the close."""
    campaign_id = await make_campaign(market, campaigns, duration_s=1.5)
    member = await market.member()
    await pledge(market, campaigns, campaign_id, member, 5)
    snapshot = await campaigns.snapshot(campaign_id)
    assert snapshot is not None
    assert snapshot.server_ms < snapshot.deadline_ms
    assert await close_due_campaigns(db, campaigns, wk_settings) == []
    assert (await campaigns.begin_close(campaign_id))["code"] == "not_due"

    await wait_until_deadline(campaigns, campaign_id)
    late = await campaigns.pledge(campaign_id, user_id=member.user_id, client_id="late", units=8)
    assert not late.accepted
    assert late.code == "campaign_closed"

    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"
    close_event = await db.fetchrow(
        "SELECT * FROM pledge_events WHERE campaign_id = $1 AND kind = 'close'", campaign_id
    )
    deadline = await db.fetchval("SELECT deadline_at FROM campaigns WHERE id = $1", campaign_id)
    assert close_event["server_at"] >= deadline
    assert close_event["committed_units"] == 5
    assert (await orders_by_user(db, campaign_id))[member.user_id]["units"] == 5
    await check_campaign_invariants(db, campaigns)


async def test_close_racing_closers_order_once(
    db, wk_dsn, campaigns, campaign_consumer, wk_settings, market, redis_url
):
    """Two closers with their own pools and Redis clients racing create one order per pledge and one mail each."""
    campaign_id = await make_campaign(market, campaigns)
    members = [await market.member() for _ in range(4)]
    for index, member in enumerate(members):
        await pledge(market, campaigns, campaign_id, member, index + 2)
    await wait_until_deadline(campaigns, campaign_id)
    other_db = await create_pool(wk_dsn, min_size=1, max_size=4)
    other_redis = redis.asyncio.Redis.from_url(redis_url)
    other_live = CampaignLive(other_redis, Keys(wk_settings.redis_prefix, wk_settings.redis_shards))
    try:
        for _ in range(5):
            await asyncio.gather(
                close_due_campaigns(db, campaigns, wk_settings),
                close_due_campaigns(other_db, other_live, wk_settings),
            )
            await campaign_consumer.drain()
    finally:
        await other_redis.aclose()
        await other_db.close()

    assert await db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == "succeeded"
    assert await campaign_counts(db, campaign_id) == {"orders": 4, "commissions": 4, "mails": 5}
    assert await db.fetchval("SELECT count(*) FROM pledge_events WHERE campaign_id = $1 AND kind = 'close'", campaign_id) == 1
    snapshot = await campaigns.snapshot(campaign_id)
    assert snapshot is not None
    assert snapshot.status == "succeeded"
    await check_campaign_invariants(db, campaigns)


async def test_close_finishes_after_closer_died(db, campaigns, campaign_consumer, wk_settings, market):
    """A closer that committed but died before settling Redis leaves work the next round finishes once."""
    campaign_id = await make_campaign(market, campaigns)
    await pledge(market, campaigns, campaign_id, await market.member(), 3)
    await pledge(market, campaigns, campaign_id, await market.member(), 4)
    await wait_until_deadline(campaigns, campaign_id)
    reply = await campaigns.begin_close(campaign_id)
    assert reply["ok"]
    await campaign_consumer.drain()

    outcome = await finalize_campaign(db, campaign_id, int(reply["state"]["seq"]))
    assert outcome.status == "succeeded"
    snapshot = await campaigns.snapshot(campaign_id)
    assert snapshot is not None
    assert snapshot.status == "closing"

    outcomes = await close_due_campaigns(db, campaigns, wk_settings)
    assert [(o.campaign_id, o.status) for o in outcomes] == [(campaign_id, "succeeded")]
    snapshot = await campaigns.snapshot(campaign_id)
    assert snapshot is not None
    assert snapshot.status == "succeeded"
    assert await campaign_counts(db, campaign_id) == {"orders": 2, "commissions": 2, "mails": 3}
    assert await close_due_campaigns(db, campaigns, wk_settings) == []
    await check_campaign_invariants(db, campaigns)


async def test_close_holds_campaign_with_ledger_gap(db, campaigns, campaign_consumer, wk_settings, market):
    """A campaign whose ledger lost a sequence number is held for review and nothing is ordered."""
    campaign_id = await make_campaign(market, campaigns)
    await pledge(market, campaigns, campaign_id, await market.member(), 3)
    await pledge(market, campaigns, campaign_id, await market.member(), 4)
    await campaign_consumer.drain()
    await db.execute("DELETE FROM pledge_events WHERE campaign_id = $1 AND seq = 1", campaign_id)
    await wait_until_deadline(campaigns, campaign_id)

    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "held"

    assert await db.fetchval("SELECT held_reason FROM campaigns WHERE id = $1", campaign_id) == "ledger gap"
    assert await campaign_counts(db, campaign_id) == {"orders": 0, "commissions": 0, "mails": 0}
    await check_campaign_invariants(db, campaigns)


async def test_closer_loop_skips_failing_campaign(db, campaigns, campaign_consumer, wk_settings, market):
    """The worker's closer logs and backs off a campaign that fails to close, and closes the others."""
    broken = await make_campaign(market, campaigns)
    healthy = await make_campaign(market, campaigns)
    await pledge(market, campaigns, broken, await market.member(), 5)
    await pledge(market, campaigns, healthy, await market.member(), 5)
    await db.execute("UPDATE campaigns SET tiers = '\"not a tier table\"' WHERE id = $1", broken)
    await wait_until_deadline(campaigns, healthy)
    closer = CampaignCloser(db, campaigns, wk_settings)

    for _ in range(5):
        await closer.round()
        await campaign_consumer.drain()

    assert await db.fetchval("SELECT status FROM campaigns WHERE id = $1", healthy) == "succeeded"
    assert await db.fetchval("SELECT status FROM campaigns WHERE id = $1", broken) == "open"
    assert closer.backoff.failures(broken) >= 1
    assert not closer.backoff.ready(broken)
    # The broken campaign's terms were corrupted on purpose, so only the healthy one is checked.
    await check_campaign_invariants(db, campaigns, campaign_ids=[healthy])

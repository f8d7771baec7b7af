"""Staff cancel of campaigns: every pledge released, every payment refunded once, one mail per member."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
import redis.asyncio

from engine.auction.ledger import LedgerConsumer
from engine.db import create_pool
from engine.errors import DomainError
from engine.groupbuy.closing import close_due_campaigns, finalize_campaign
from engine.groupbuy.live import CampaignLive
from engine.groupbuy.payments import CARD, record_up_front_payment
from engine.groupbuy.service import submit_pledge
from engine.groupbuy.staff import cancel_campaign
from engine.keys import Keys
from groupbuy_testkit import (
    AT_MOST_WON,
    campaign_consumer,
    campaign_counts,
    campaigns,
    close_until_final,
    make_campaign,
    pay_up_front,
    pledge,
    pledge_ledger,
    wait_until_deadline,
)
from invariants import check_campaign_invariants, check_orders_money
from worker_testkit import send_all
from workers.campaigns import CampaignCloser

__all__ = ["campaign_consumer", "campaigns"]  # fixtures

REASON = "산지 태풍 피해로 출하가 어렵습니다"


@contextlib.asynccontextmanager
async def draining(consumer: LedgerConsumer) -> AsyncIterator[None]:
    """Store the campaign streams in `pledge_events` in the background, as the worker's consumer does."""
    stop = asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            await consumer.drain()
            await asyncio.sleep(0.02)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        stop.set()
        await task


async def cancel_mails(db: asyncpg.Pool, campaign_id: int) -> list[str]:
    """Return the recipients of the campaign's member cancellation mails in the outbox."""
    rows = await db.fetch(
        "SELECT recipient FROM outbox WHERE event_key = $1 ORDER BY recipient", f"campaign:{campaign_id}:cancelled"
    )
    return [row["recipient"] for row in rows]


def cancel_body(smtp_sink, recipient: str) -> str:  # type: ignore[no-untyped-def]
    """Return the body of the one cancellation mail the SMTP sink received for `recipient`."""
    bodies = [m.message.get_content() for m in smtp_sink.messages
              if m.message["To"] == recipient and "공동구매가 취소되었습니다" in str(m.message["Subject"])]
    assert len(bodies) == 1, bodies
    return bodies[0]


async def campaign_snapshot_row(db: asyncpg.Pool, campaign_id: int) -> dict:
    """Everything a rejected cancel must leave as it was."""
    return {
        "campaign": dict(await db.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)),
        "events": await db.fetchval("SELECT count(*) FROM pledge_events WHERE campaign_id = $1", campaign_id),
        "audit": await db.fetchval(
            "SELECT count(*) FROM audit_log WHERE target_type = 'campaign' AND target_id = $1", campaign_id
        ),
        "refunds": await db.fetchval("SELECT count(*) FROM refunds"),
        "outbox": await db.fetchval("SELECT count(*) FROM outbox"),
        "ledger": await db.fetchval("SELECT count(*) FROM money_ledger"),
    }


async def test_cancel_refunds_up_front_payments_once(
    db, campaigns, campaign_consumer, wk_settings, market, smtp_sink
):
    """A cancel refunds each paid payment in full once, expires the unpaid one and mails each member once."""
    campaign_id = await make_campaign(market, campaigns, duration_s=3600, payment_timing="up_front")
    by_card, by_transfer, unpaid, quitter = [
        await market.member(name) for name in ("김가영", "이나래", "박다솜", "최보람")
    ]
    await pledge(market, campaigns, campaign_id, by_card, 2)
    card_payment = await record_up_front_payment(db, campaign_id, by_card.user_id, 2, 2 * AT_MOST_WON, method=CARD)
    transfer_payment = await pay_up_front(market, campaigns, campaign_id, by_transfer, 3, confirm=True)
    unpaid_payment = await pay_up_front(market, campaigns, campaign_id, unpaid, 4, confirm=False)
    quitter_payment = await pay_up_front(market, campaigns, campaign_id, quitter, 1, confirm=True)
    await pledge(market, campaigns, campaign_id, quitter, 0)

    async with draining(campaign_consumer):
        outcome = await cancel_campaign(db, campaigns, market.staff, campaign_id, f"  {REASON}  ")
    assert outcome.status == "cancelled"

    campaign = await db.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)
    cancel_event = await db.fetchrow(
        "SELECT * FROM pledge_events WHERE campaign_id = $1 ORDER BY seq DESC LIMIT 1", campaign_id
    )
    assert cancel_event["kind"] == "cancel"
    assert cancel_event["user_id"] == market.staff.user_id
    assert (campaign["status"], campaign["final_seq"], campaign["final_units"]) == (
        "cancelled", cancel_event["seq"], 9
    )
    assert (campaign["cancel_reason"], campaign["cancelled_by"]) == (REASON, market.staff.user_id)
    assert campaign["closed_at"] is not None
    audit = await db.fetch(
        "SELECT * FROM audit_log WHERE action = 'campaign.cancel' AND target_id = $1", campaign_id
    )
    assert [(row["actor_id"], row["detail"]["reason"], row["detail"]["seq"]) for row in audit] == [
        (market.staff.user_id, REASON, cancel_event["seq"])
    ]

    statuses = dict(await db.fetch("SELECT id, status FROM pledge_payments WHERE campaign_id = $1", campaign_id))
    assert statuses == {card_payment: "refunded", transfer_payment: "refunded", unpaid_payment: "expired",
                        quitter_payment: "refunded"}
    paid = [(card_payment, 2 * AT_MOST_WON), (transfer_payment, 3 * AT_MOST_WON), (quitter_payment, AT_MOST_WON)]
    expected_ledger = [(payment_id, "payment", won) for payment_id, won in paid]
    expected_ledger += [(payment_id, "refund", won) for payment_id, won in paid]
    assert await pledge_ledger(db, campaign_id) == expected_ledger
    refunds = await db.fetch("SELECT payment_id, order_id, amount_won, reason FROM refunds ORDER BY payment_id")
    assert [(r["payment_id"], r["order_id"], r["amount_won"], r["reason"]) for r in refunds] == [
        (payment_id, None, won, "campaign_cancelled") for payment_id, won in paid
    ]
    assert await campaign_counts(db, campaign_id) == {"orders": 0, "commissions": 0, "mails": 5}
    members = (by_card, by_transfer, unpaid, quitter)
    assert await cancel_mails(db, campaign_id) == sorted(market.emails[m.user_id] for m in members)

    snapshot = await campaigns.snapshot(campaign_id)
    assert snapshot is not None
    assert (snapshot.status, snapshot.seq) == ("cancelled", cancel_event["seq"])
    assert await campaigns.redis.zscore(campaigns.keys.campaign_deadlines_for(campaign_id), campaign_id) is None

    # A second settlement (a closer that saw the campaign due before the settle) changes nothing.
    before = await campaign_snapshot_row(db, campaign_id)
    assert (await finalize_campaign(db, campaign_id, cancel_event["seq"])).status == "cancelled"
    assert await close_due_campaigns(db, campaigns, wk_settings) == []
    assert await campaign_snapshot_row(db, campaign_id) == before

    await send_all(db, wk_settings)
    cancelled = [m.message for m in smtp_sink.messages if "공동구매가 취소되었습니다" in str(m.message["Subject"])]
    bodies = {message["To"]: message.get_content() for message in cancelled}
    assert len(cancelled) == len(bodies) == 5
    assert f"취소 사유: {REASON}" in bodies[market.emails[by_card.user_id]]
    assert "신청하신 2개는 취소되었습니다" in bodies[market.emails[by_card.user_id]]
    assert "18,000원은 전액 환불됩니다" in bodies[market.emails[by_card.user_id]]
    assert "27,000원은 전액 환불됩니다" in bodies[market.emails[by_transfer.user_id]]
    unpaid_body = bodies[market.emails[unpaid.user_id]]
    assert "신청하신 4개는 취소되었습니다" in unpaid_body
    assert "입금을 기다리던 36,000원은 더 이상 입금하지 않으셔도 됩니다" in unpaid_body
    assert "환불됩니다" not in unpaid_body
    quitter_body = bodies[market.emails[quitter.user_id]]
    assert "신청하신" not in quitter_body
    assert "9,000원은 전액 환불됩니다" in quitter_body
    supplier_body = bodies[await market.supplier_email()]
    assert "준비할 상품은 없습니다" in supplier_body
    assert "취소 시점 신청 9개" in supplier_body

    await check_campaign_invariants(db, campaigns, sink_messages=smtp_sink.messages)
    order_ids = [row["id"] for row in await db.fetch("SELECT id FROM orders WHERE campaign_id = $1", campaign_id)]
    assert order_ids == []
    await check_orders_money(db, order_ids)
    with pytest.raises(DomainError) as again:
        await cancel_campaign(db, campaigns, market.staff, campaign_id, REASON)
    assert again.value.code == "campaign_cancelled"
    assert await campaign_snapshot_row(db, campaign_id) == before


async def test_checker_fails_payment_kept_after_cancel(db, campaigns, campaign_consumer, market):
    """The invariant checker fails a cancelled campaign that still has a paid payment."""
    campaign_id = await make_campaign(market, campaigns, duration_s=3600, payment_timing="up_front")
    payment_id = await pay_up_front(market, campaigns, campaign_id, await market.member(), 3, confirm=True)
    async with draining(campaign_consumer):
        assert (await cancel_campaign(db, campaigns, market.staff, campaign_id, REASON)).status == "cancelled"
    await check_campaign_invariants(db, campaigns)

    async with db.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            await connection.execute("UPDATE pledge_payments SET status = 'paid' WHERE id = $1", payment_id)
            with pytest.raises(AssertionError) as broken:
                await check_campaign_invariants(connection, campaigns)
        finally:
            await transaction.rollback()
    assert "a failed or cancelled campaign keeps no payment" in str(broken.value)


async def test_cancel_releases_after_success_pledges(db, campaigns, campaign_consumer, wk_settings, market, smtp_sink):
    """An after-success campaign cancelled with the minimum met orders nothing and mails each pledger once."""
    campaign_id = await make_campaign(market, campaigns, duration_s=3600)
    first, second, gone = [await market.member(name) for name in ("김가영", "이나래", "박다솜")]
    await pledge(market, campaigns, campaign_id, first, 4)
    await pledge(market, campaigns, campaign_id, second, 6)
    await pledge(market, campaigns, campaign_id, gone, 2)
    await pledge(market, campaigns, campaign_id, gone, 0)

    async with draining(campaign_consumer):
        outcome = await cancel_campaign(db, campaigns, market.staff, campaign_id, REASON)

    assert outcome.status == "cancelled"
    assert await db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == "cancelled"
    assert await campaign_counts(db, campaign_id) == {"orders": 0, "commissions": 0, "mails": 3}
    assert await cancel_mails(db, campaign_id) == sorted(market.emails[m.user_id] for m in (first, second))
    await send_all(db, wk_settings)
    body = cancel_body(smtp_sink, market.emails[first.user_id])
    assert "신청하신 4개는 취소되었습니다" in body
    assert "환불" not in body
    await check_campaign_invariants(db, campaigns, sink_messages=smtp_sink.messages)


async def test_cancel_scheduled_campaign(db, campaigns, campaign_consumer, market):
    """A campaign that has not started yet can be cancelled, and then never opens."""
    now = await db.fetchval("SELECT now()")
    campaign_id = await make_campaign(
        market, campaigns, start_at=now + timedelta(hours=1), deadline_at=now + timedelta(hours=2)
    )
    assert await db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == "scheduled"

    async with draining(campaign_consumer):
        outcome = await cancel_campaign(db, campaigns, market.staff, campaign_id, REASON)

    assert outcome.status == "cancelled"
    assert await db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == "cancelled"
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE event_key = $1", f"campaign:{campaign_id}:supplier") == 1
    await check_campaign_invariants(db, campaigns)


async def test_pledges_after_cancel_rejected(db, campaigns, campaign_consumer, market):
    """After a cancel, pledges are rejected with campaign_cancelled and up-front payments with campaign_closed."""
    campaign_id = await make_campaign(market, campaigns, duration_s=3600, payment_timing="up_front")
    member = await market.member()
    await pay_up_front(market, campaigns, campaign_id, member, 2, confirm=True)
    async with draining(campaign_consumer):
        await cancel_campaign(db, campaigns, market.staff, campaign_id, REASON)

    for units in (3, 0):
        outcome = await submit_pledge(db, campaigns, member, campaign_id, units, f"after-cancel-{units}")
        assert (outcome.accepted, outcome.code) == (False, "campaign_cancelled")
    with pytest.raises(DomainError) as late:
        await record_up_front_payment(db, campaign_id, member.user_id, 2, 2 * AT_MOST_WON)
    assert late.value.code == "campaign_closed"
    await campaign_consumer.drain()
    assert await db.fetchval(
        "SELECT count(*) FROM pledge_events WHERE campaign_id = $1 AND kind = 'pledge'", campaign_id
    ) == 1
    await check_campaign_invariants(db, campaigns)


async def test_cancel_rejections_change_nothing(db, campaigns, campaign_consumer, wk_settings, market):
    """A member, an empty reason and a closed campaign are rejected with their own code and change nothing."""
    open_id = await make_campaign(market, campaigns, duration_s=3600)
    closed_id = await make_campaign(market, campaigns)
    member = await market.member()
    await pledge(market, campaigns, open_id, member, 2)
    await pledge(market, campaigns, closed_id, member, 5)
    await wait_until_deadline(campaigns, closed_id)
    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, closed_id) == "succeeded"

    cases = [
        (member, open_id, REASON, "forbidden"),
        (market.staff, open_id, "   ", "invalid_cancel_reason"),
        (market.staff, open_id, "가" * 501, "invalid_cancel_reason"),
        (market.staff, open_id, None, "invalid_cancel_reason"),
        (market.staff, closed_id, REASON, "campaign_not_open"),
        (market.staff, 10**12, REASON, "campaign_not_found"),
    ]
    for actor, campaign_id, reason, code in cases:
        before = await campaign_snapshot_row(db, open_id), await campaign_snapshot_row(db, closed_id)
        live_before = await campaigns.snapshot(open_id), await campaigns.snapshot(closed_id)
        with pytest.raises(DomainError) as rejected:
            await cancel_campaign(db, campaigns, actor, campaign_id, reason)
        assert rejected.value.code == code, (campaign_id, reason)
        await campaign_consumer.drain()
        assert (await campaign_snapshot_row(db, open_id), await campaign_snapshot_row(db, closed_id)) == before
        after = await campaigns.snapshot(open_id), await campaigns.snapshot(closed_id)
        assert [(s.status, s.seq) for s in after if s] == [(s.status, s.seq) for s in live_before if s]
    assert (await campaigns.snapshot(closed_id)).status == "succeeded"
    await check_campaign_invariants(db, campaigns)


async def test_cancel_loses_to_close_begun_first(db, campaigns, campaign_consumer, wk_settings, market):
    """A cancel after the closer began the close is rejected; the close finishes as if no cancel was asked."""
    campaign_id = await make_campaign(market, campaigns)
    await pledge(market, campaigns, campaign_id, await market.member(), 5)
    await wait_until_deadline(campaigns, campaign_id)
    assert (await campaigns.begin_close(campaign_id))["ok"]

    with pytest.raises(DomainError) as rejected:
        await cancel_campaign(db, campaigns, market.staff, campaign_id, REASON)
    assert (rejected.value.code, rejected.value.detail["campaign_status"]) == ("campaign_not_open", "closing")

    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"
    campaign = await db.fetchrow("SELECT cancel_reason, cancelled_by FROM campaigns WHERE id = $1", campaign_id)
    assert (campaign["cancel_reason"], campaign["cancelled_by"]) == (None, None)
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE action = 'campaign.cancel'") == 0
    assert await campaign_counts(db, campaign_id) == {"orders": 1, "commissions": 1, "mails": 2}
    await check_campaign_invariants(db, campaigns)


async def test_cancel_after_deadline_beats_closer(db, campaigns, campaign_consumer, wk_settings, market):
    """A cancel that reaches Redis before the closer wins even after the deadline; the closer then orders nothing."""
    campaign_id = await make_campaign(market, campaigns)
    await pledge(market, campaigns, campaign_id, await market.member(), 5)
    await wait_until_deadline(campaigns, campaign_id)

    outcome = await cancel_campaign(db, campaigns, market.staff, campaign_id, REASON, ledger_wait_s=0)
    assert outcome.status == "waiting"
    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "cancelled"

    assert await db.fetchval("SELECT count(*) FROM pledge_events WHERE campaign_id = $1 AND kind = 'close'",
                             campaign_id) == 0
    assert await campaign_counts(db, campaign_id) == {"orders": 0, "commissions": 0, "mails": 2}
    await check_campaign_invariants(db, campaigns)


async def test_cancel_racing_closers_one_outcome(
    db, wk_dsn, campaigns, campaign_consumer, wk_settings, market, redis_url
):
    """Cancels racing two closers at the deadline settle each campaign once, as either cancelled or closed."""
    campaign_ids = [await make_campaign(market, campaigns, duration_s=1.5, payment_timing="up_front")
                    for _ in range(4)]
    payments: dict[int, list[int]] = {}
    for campaign_id in campaign_ids:
        payments[campaign_id] = [
            await pay_up_front(market, campaigns, campaign_id, await market.member(), units, confirm=True)
            for units in (2, 3)
        ]
    for campaign_id in campaign_ids:
        await wait_until_deadline(campaigns, campaign_id)
    other_db = await create_pool(wk_dsn, min_size=1, max_size=4)
    other_redis = redis.asyncio.Redis.from_url(redis_url)
    other_live = CampaignLive(other_redis, Keys(wk_settings.redis_prefix, wk_settings.redis_shards))

    async def cancel(campaign_id: int) -> str:
        try:
            return (await cancel_campaign(db, campaigns, market.staff, campaign_id, REASON)).status
        except DomainError as error:
            return error.code

    try:
        async with draining(campaign_consumer):
            results = await asyncio.gather(
                *(cancel(campaign_id) for campaign_id in campaign_ids),
                close_due_campaigns(db, campaigns, wk_settings),
                close_due_campaigns(other_db, other_live, wk_settings),
            )
            for _ in range(5):
                await asyncio.gather(close_due_campaigns(db, campaigns, wk_settings),
                                     close_due_campaigns(other_db, other_live, wk_settings))
    finally:
        await other_redis.aclose()
        await other_db.close()

    for campaign_id, cancel_result in zip(campaign_ids, results):
        status = await db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id)
        finals = await db.fetch(
            "SELECT kind FROM pledge_events WHERE campaign_id = $1 AND kind IN ('close', 'cancel')", campaign_id
        )
        counts = await campaign_counts(db, campaign_id)
        ways_out = sorted(entry for _payment, entry, _won in await pledge_ledger(db, campaign_id)
                          if entry != "payment")
        if status == "cancelled":
            assert cancel_result in ("cancelled", "waiting"), (campaign_id, cancel_result)
            assert [row["kind"] for row in finals] == ["cancel"]
            assert counts == {"orders": 0, "commissions": 0, "mails": 3}
            assert ways_out == ["refund", "refund"]
        else:
            assert (status, cancel_result) == ("succeeded", "campaign_not_open"), campaign_id
            assert [row["kind"] for row in finals] == ["close"]
            assert counts == {"orders": 2, "commissions": 2, "mails": 3}
            assert ways_out == ["settlement", "settlement"]
        snapshot = await campaigns.snapshot(campaign_id)
        assert snapshot is not None
        assert snapshot.status == status
    await check_campaign_invariants(db, campaigns)
    orders = [row["id"] for row in await db.fetch("SELECT id FROM orders WHERE campaign_id = ANY($1::bigint[])",
                                                  campaign_ids)]
    await check_orders_money(db, orders)


async def test_closer_settles_cancel_after_canceller_died(
    db, campaigns, campaign_consumer, wk_settings, market, smtp_sink
):
    """A canceller that died right after the Redis cancel leaves a due campaign the worker's closer settles once."""
    campaign_id = await make_campaign(market, campaigns, duration_s=3600, payment_timing="up_front")
    payer, unpaid = await market.member("김가영"), await market.member("이나래")
    paid_payment = await pay_up_front(market, campaigns, campaign_id, payer, 3, confirm=True)
    unpaid_payment = await pay_up_front(market, campaigns, campaign_id, unpaid, 2, confirm=False)

    reply = await campaigns.admin(campaign_id, "cancel", "", market.staff.user_id)
    assert reply["ok"]
    assert await campaigns.due_campaigns(campaigns.keys.shard_of(campaign_id)) == [campaign_id]
    assert await db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == "open"

    closer = CampaignCloser(db, campaigns, wk_settings)
    for _ in range(10):
        await closer.round()
        await campaign_consumer.drain()
        if await campaigns.due_campaigns(campaigns.keys.shard_of(campaign_id)) == []:
            break
    assert await db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == "cancelled"
    snapshot = await campaigns.snapshot(campaign_id)
    assert snapshot is not None
    assert (snapshot.status, snapshot.seq) == ("cancelled", reply["seq"])
    statuses = dict(await db.fetch("SELECT id, status FROM pledge_payments WHERE campaign_id = $1", campaign_id))
    assert statuses == {paid_payment: "refunded", unpaid_payment: "expired"}
    assert await pledge_ledger(db, campaign_id) == [
        (paid_payment, "payment", 3 * AT_MOST_WON), (paid_payment, "refund", 3 * AT_MOST_WON),
    ]
    assert await campaign_counts(db, campaign_id) == {"orders": 0, "commissions": 0, "mails": 3}
    await closer.round()
    assert await campaign_counts(db, campaign_id) == {"orders": 0, "commissions": 0, "mails": 3}
    assert await db.fetchval("SELECT count(*) FROM refunds") == 1
    await send_all(db, wk_settings)
    body = cancel_body(smtp_sink, market.emails[payer.user_id])
    assert "27,000원은 전액 환불됩니다" in body
    assert "취소 사유" not in body
    await check_campaign_invariants(db, campaigns, sink_messages=smtp_sink.messages)


async def test_closer_settles_cancel_left_waiting(db, campaigns, campaign_consumer, wk_settings, market, smtp_sink):
    """A cancel that gave up waiting for the ledger keeps its reason, and the closer settles it with that reason.

    Then a settlement committed in PostgreSQL whose Redis settle never ran is finished by the next round.
    """
    campaign_id = await make_campaign(market, campaigns, duration_s=3600, payment_timing="up_front")
    payer = await market.member()
    paid_payment = await pay_up_front(market, campaigns, campaign_id, payer, 3, confirm=True)

    outcome = await cancel_campaign(db, campaigns, market.staff, campaign_id, REASON, ledger_wait_s=0)
    assert outcome.status == "waiting"
    campaign = await db.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)
    assert (campaign["status"], campaign["cancel_reason"]) == ("open", REASON)
    assert await db.fetchval("SELECT status FROM pledge_payments WHERE id = $1", paid_payment) == "paid"

    await campaign_consumer.drain()
    cancel_seq = await db.fetchval("SELECT max(seq) FROM pledge_events WHERE campaign_id = $1", campaign_id)
    assert (await finalize_campaign(db, campaign_id, cancel_seq)).status == "cancelled"
    assert (await campaigns.snapshot(campaign_id)).status == "cancelled"
    assert await campaigns.due_campaigns(campaigns.keys.shard_of(campaign_id)) == [campaign_id]

    outcomes = await close_due_campaigns(db, campaigns, wk_settings)
    assert [(o.campaign_id, o.status) for o in outcomes] == [(campaign_id, "cancelled")]
    assert await campaigns.due_campaigns(campaigns.keys.shard_of(campaign_id)) == []
    assert await close_due_campaigns(db, campaigns, wk_settings) == []
    assert await db.fetchval("SELECT count(*) FROM refunds WHERE payment_id = $1", paid_payment) == 1
    await send_all(db, wk_settings)
    body = cancel_body(smtp_sink, market.emails[payer.user_id])
    assert f"취소 사유: {REASON}" in body
    await check_campaign_invariants(db, campaigns, sink_messages=smtp_sink.messages)


async def test_cancel_held_when_ledger_totals_disagree(db, campaigns, campaign_consumer, wk_settings, market):
    """A cancel whose ledger does not add up is held, refunds nothing, and Redis follows to held."""
    campaign_id = await make_campaign(market, campaigns, duration_s=3600, payment_timing="up_front")
    paid_payment = await pay_up_front(market, campaigns, campaign_id, await market.member(), 3, confirm=True)
    await campaign_consumer.drain()
    await db.execute("UPDATE pledge_events SET units = 2 WHERE campaign_id = $1 AND seq = 1", campaign_id)

    async with draining(campaign_consumer):
        outcome = await cancel_campaign(db, campaigns, market.staff, campaign_id, REASON)

    assert outcome.status == "held"
    campaign = await db.fetchrow("SELECT status, held_reason FROM campaigns WHERE id = $1", campaign_id)
    assert (campaign["status"], campaign["held_reason"]) == ("held", "ledger totals disagree with pledges")
    assert await db.fetchval("SELECT status FROM pledge_payments WHERE id = $1", paid_payment) == "paid"
    assert (await campaigns.snapshot(campaign_id)).status == "held"
    assert await campaigns.due_campaigns(campaigns.keys.shard_of(campaign_id)) == []

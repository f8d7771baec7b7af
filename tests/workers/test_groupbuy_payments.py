"""Paying for campaigns: up-front holds, refunds of the difference, and lapsed orders."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
import redis.asyncio

from engine.db import create_pool
from engine.errors import DomainError
from engine.groupbuy.closing import close_due_campaigns
from engine.groupbuy.live import CampaignLive
from engine.groupbuy.payments import (
    CARD,
    confirm_pledge_deposit,
    expire_hold,
    record_pledge_ledger_entries,
    record_up_front_payment,
    release_key,
)
from engine.keys import Keys
from engine.orders import confirm_deposit
from workers.campaigns import CampaignOrderCanceller, HoldExpirer
from invariants import check_campaign_invariants, check_orders_money
from groupbuy_testkit import (
    AT_MOST_WON,
    campaign_consumer,
    campaigns,
    close_until_final,
    ledger_sums,
    make_campaign,
    orders_by_user,
    pay_up_front,
    pledge,
    pledge_ledger,
    wait_until_deadline,
)
from worker_testkit import send_all

__all__ = ["campaign_consumer", "campaigns"]  # fixtures


async def order_ledger_counts(db: asyncpg.Pool, order_id: int) -> dict[str, int]:
    """Count an order's money-ledger rows per entry kind."""
    rows = await db.fetch("SELECT entry, count(*) AS n FROM money_ledger WHERE order_id = $1 GROUP BY entry", order_id)
    return {row["entry"]: row["n"] for row in rows}


async def lapse_hold(db, payment_id: int) -> None:  # type: ignore[no-untyped-def]
    await db.execute(
        "UPDATE pledge_payments SET hold_expires_at = now() - interval '1 second' WHERE id = $1", payment_id
    )


async def test_up_front_payment_checks_amount(db, campaigns, market):
    """An up-front payment must be units times the "at most" price, and only on up-front campaigns."""
    campaign_id = await make_campaign(market, campaigns, duration_s=3600, payment_timing="up_front")
    member = await market.member()
    with pytest.raises(DomainError) as mismatch:
        await record_up_front_payment(db, campaign_id, member.user_id, 2, 2 * 8_000)
    assert mismatch.value.code == "payment_amount_mismatch"
    after_success = await make_campaign(market, campaigns, duration_s=3600)
    with pytest.raises(DomainError) as wrong_timing:
        await record_up_front_payment(db, after_success, member.user_id, 2, 2 * AT_MOST_WON)
    assert wrong_timing.value.code == "not_up_front"

    payment_id = await record_up_front_payment(db, campaign_id, member.user_id, 2, 2 * AT_MOST_WON)
    payment = await db.fetchrow("SELECT *, hold_expires_at - created_at AS hold FROM pledge_payments WHERE id = $1",
                                payment_id)
    assert payment["status"] == "awaiting_deposit"
    assert payment["hold"].total_seconds() == 86_400
    with pytest.raises(DomainError) as not_staff:
        await confirm_pledge_deposit(db, payment_id, member)
    assert not_staff.value.code == "forbidden"
    await check_campaign_invariants(db, campaigns)


async def test_expired_hold_releases_units(db, campaigns, campaign_consumer, market, smtp_sink, wk_settings):
    """An unconfirmed hold past its expiry releases its units once, with one ledger event, and mails the member."""
    campaign_id = await make_campaign(market, campaigns, duration_s=3600, payment_timing="up_front")
    confirmed, lapsed = await market.member("김가영"), await market.member("이나래")
    confirmed_payment = await pay_up_front(market, campaigns, campaign_id, confirmed, 3, confirm=True)
    lapsed_payment = await pay_up_front(market, campaigns, campaign_id, lapsed, 4, confirm=False)
    await lapse_hold(db, confirmed_payment)
    await lapse_hold(db, lapsed_payment)

    expirer = HoldExpirer(db, campaigns)
    assert await expirer.round() == 1
    assert await expirer.round() == 0

    assert await campaigns.pledges(campaign_id) == {confirmed.user_id: 3}
    snapshot = await campaigns.snapshot(campaign_id)
    assert snapshot is not None
    assert snapshot.committed_units == 3
    statuses = dict(await db.fetch("SELECT id, status FROM pledge_payments WHERE campaign_id = $1", campaign_id))
    assert statuses == {confirmed_payment: "paid", lapsed_payment: "expired"}
    await campaign_consumer.drain()
    released = await db.fetch(
        "SELECT * FROM pledge_events WHERE campaign_id = $1 AND kind = 'hold_expired'", campaign_id
    )
    assert [(e["user_id"], e["units"], e["delta_units"], e["client_id"]) for e in released] == [
        (lapsed.user_id, 0, -4, release_key(lapsed_payment))
    ]
    await send_all(db, wk_settings)
    subjects = [str(m.message["Subject"]) for m in smtp_sink.messages if m.message["To"] == market.emails[lapsed.user_id]]
    assert any("신청이 해제되었습니다" in subject for subject in subjects)
    await check_campaign_invariants(db, campaigns, sink_messages=smtp_sink.messages)


async def test_hold_release_survives_dead_expirer(db, campaigns, campaign_consumer, market):
    """An expirer that released in Redis but died before committing does not release the units a second time."""
    campaign_id = await make_campaign(market, campaigns, duration_s=3600, payment_timing="up_front")
    member = await market.member()
    await pledge(market, campaigns, campaign_id, member, 6)
    payment_id = await record_up_front_payment(db, campaign_id, member.user_id, 4, 4 * AT_MOST_WON)
    await lapse_hold(db, payment_id)
    # What the dead expirer did before its transaction was lost.
    first = await campaigns.release(campaign_id, member.user_id, 4, release_key=release_key(payment_id))
    assert first["ok"]

    assert await expire_hold(db, campaigns, payment_id)

    assert await campaigns.pledges(campaign_id) == {member.user_id: 2}
    assert await db.fetchval("SELECT status FROM pledge_payments WHERE id = $1", payment_id) == "expired"
    await campaign_consumer.drain()
    assert await db.fetchval(
        "SELECT count(*) FROM pledge_events WHERE campaign_id = $1 AND kind = 'hold_expired'", campaign_id
    ) == 1
    await check_campaign_invariants(db, campaigns)


async def test_close_refunds_difference_to_final_price(
    db, campaigns, campaign_consumer, wk_settings, market, smtp_sink
):
    """Paid up-front pledges become paid orders at the final price, and the difference is refunded once."""
    campaign_id = await make_campaign(market, campaigns, payment_timing="up_front")
    first, second = await market.member("김가영"), await market.member("이나래")
    await pay_up_front(market, campaigns, campaign_id, first, 4, confirm=True)
    await pay_up_front(market, campaigns, campaign_id, second, 6, confirm=True)
    await wait_until_deadline(campaigns, campaign_id)

    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"
    await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id)

    orders = await orders_by_user(db, campaign_id)
    for member, units in ((first, 4), (second, 6)):
        order = orders[member.user_id]
        assert order["status"] == "paid"
        assert order["amount_won"] == units * 8_000
        refunds = await db.fetch("SELECT * FROM refunds WHERE user_id = $1", member.user_id)
        assert [r["amount_won"] for r in refunds] == [units * (AT_MOST_WON - 8_000)]
        assert refunds[0]["order_id"] == order["id"]
        paid_won = await db.fetchval(
            "SELECT sum(amount_won) FROM pledge_payments WHERE campaign_id = $1 AND user_id = $2",
            campaign_id, member.user_id,
        )
        # Each order's sale rows sum to what its buyer paid minus the refund.
        sums = await ledger_sums(db, order["id"])
        assert sums["sale"] == paid_won - refunds[0]["amount_won"]
        assert sums["commission"] == order["amount_won"] * 400 // 10_000
        # The difference is received beyond the sale and paid back, both in the money ledger.
        assert sums["overpayment"] == refunds[0]["amount_won"]
        assert sums["refund"] == refunds[0]["amount_won"]
    statuses = {row["status"] for row in await db.fetch("SELECT status FROM pledge_payments")}
    assert statuses == {"settled"}

    await send_all(db, wk_settings)
    body = next(m.message.get_content() for m in smtp_sink.messages if m.message["To"] == market.emails[first.user_id]
                and "성사" in str(m.message["Subject"]))
    assert "결제 완료" in body
    assert "차액 4,000원" in body
    await check_campaign_invariants(db, campaigns, sink_messages=smtp_sink.messages)


async def test_hold_after_deadline_keeps_final_price(db, campaigns, campaign_consumer, wk_settings, market):
    """A hold lapsing after the deadline releases nothing: the close counts its units and the order lapses alone."""
    campaign_id = await make_campaign(market, campaigns, payment_timing="up_front")
    payer, late = await market.member("김가영"), await market.member("이나래")
    await pay_up_front(market, campaigns, campaign_id, payer, 6, confirm=True)
    late_payment = await pay_up_front(market, campaigns, campaign_id, late, 4, confirm=False)
    await wait_until_deadline(campaigns, campaign_id)
    await lapse_hold(db, late_payment)

    # The expirer runs after the deadline but before the closer.
    assert await HoldExpirer(db, campaigns).round() == 1
    assert await db.fetchval("SELECT status FROM pledge_payments WHERE id = $1", late_payment) == "expired"
    assert await campaigns.pledges(campaign_id) == {payer.user_id: 6, late.user_id: 4}

    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"
    assert await db.fetchval("SELECT final_unit_price_won FROM campaigns WHERE id = $1", campaign_id) == 8_000
    orders = await orders_by_user(db, campaign_id)
    assert orders[payer.user_id]["status"] == "paid"
    assert orders[late.user_id]["status"] == "awaiting_payment"
    assert orders[late.user_id]["amount_won"] == 32_000

    await db.execute("UPDATE orders SET payment_due_at = now() - interval '1 second' WHERE id = $1",
                     orders[late.user_id]["id"])
    assert await CampaignOrderCanceller(db).round() == 1
    after = await orders_by_user(db, campaign_id)
    assert after[late.user_id]["status"] == "cancelled"
    assert after[payer.user_id]["status"] == "paid"
    assert after[payer.user_id]["amount_won"] == 48_000
    assert await db.fetchval("SELECT final_unit_price_won FROM campaigns WHERE id = $1", campaign_id) == 8_000
    await check_campaign_invariants(db, campaigns)


async def test_failed_up_front_refunds_in_full(db, campaigns, campaign_consumer, wk_settings, market, smtp_sink):
    """A failed up-front campaign refunds every paid payment in full and expires the unpaid ones."""
    campaign_id = await make_campaign(
        market, campaigns, payment_timing="up_front", min_total_units=20, tiers=[[20, 9_000], [30, 8_000]]
    )
    payer, unpaid = await market.member("김가영"), await market.member("이나래")
    paid_payment = await pay_up_front(market, campaigns, campaign_id, payer, 3, confirm=True)
    unpaid_payment = await pay_up_front(market, campaigns, campaign_id, unpaid, 2, confirm=False)
    await wait_until_deadline(campaigns, campaign_id)

    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "failed"

    refunds = await db.fetch("SELECT * FROM refunds")
    assert [(r["payment_id"], r["user_id"], r["amount_won"]) for r in refunds] == [
        (paid_payment, payer.user_id, 3 * AT_MOST_WON)
    ]
    statuses = dict(await db.fetch("SELECT id, status FROM pledge_payments"))
    assert statuses == {paid_payment: "refunded", unpaid_payment: "expired"}
    assert await db.fetchval("SELECT count(*) FROM orders") == 0
    await send_all(db, wk_settings)
    body = next(m.message.get_content() for m in smtp_sink.messages if m.message["To"] == market.emails[payer.user_id]
                and "성사되지 않았습니다" in str(m.message["Subject"]))
    assert "27,000원은 전액 환불됩니다" in body
    await check_campaign_invariants(db, campaigns, sink_messages=smtp_sink.messages)


async def test_deposit_confirmed_after_close_pays_order(db, campaigns, campaign_consumer, wk_settings, market):
    """A deposit confirmed after the close pays the member's order and refunds the difference."""
    campaign_id = await make_campaign(market, campaigns, payment_timing="up_front")
    member = await market.member()
    payment_id = await pay_up_front(market, campaigns, campaign_id, member, 10, confirm=False)
    await wait_until_deadline(campaigns, campaign_id)
    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"
    order = (await orders_by_user(db, campaign_id))[member.user_id]
    assert order["status"] == "awaiting_payment"

    await confirm_pledge_deposit(db, payment_id, market.staff)

    order = (await orders_by_user(db, campaign_id))[member.user_id]
    assert order["status"] == "paid"
    assert await db.fetchval("SELECT amount_won FROM refunds WHERE order_id = $1", order["id"]) == 10_000
    assert await db.fetchval("SELECT status FROM pledge_payments WHERE id = $1", payment_id) == "settled"
    assert await db.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'pledge_payment.confirm_deposit' AND target_id = $1", payment_id
    ) == 1
    with pytest.raises(DomainError) as again:
        await confirm_pledge_deposit(db, payment_id, market.staff)
    assert again.value.code == "payment_not_awaiting_deposit"
    await check_campaign_invariants(db, campaigns)


async def test_unpaid_order_cancelled_without_price_change(
    db, campaigns, campaign_consumer, wk_settings, market, smtp_sink
):
    """An after-success order unpaid at its due time is cancelled and reversed; other orders keep the final price."""
    campaign_id = await make_campaign(market, campaigns)
    members = [await market.member(name) for name in ("김가영", "이나래", "박다솜")]
    for member, units in zip(members, (2, 3, 5)):
        await pledge(market, campaigns, campaign_id, member, units)
    await wait_until_deadline(campaigns, campaign_id)
    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"
    orders = await orders_by_user(db, campaign_id)
    lapsed = orders[members[2].user_id]
    await db.execute("UPDATE orders SET payment_due_at = now() - interval '1 second' WHERE id = $1", lapsed["id"])

    canceller = CampaignOrderCanceller(db)
    assert await canceller.round() == 1
    assert await canceller.round() == 0

    after = await orders_by_user(db, campaign_id)
    assert after[members[2].user_id]["status"] == "cancelled"
    sums = await ledger_sums(db, lapsed["id"])
    assert sums["sale"] + sums["sale_reversal"] == 0
    assert sums["commission"] + sums["commission_reversal"] == 0
    for member, units in zip(members[:2], (2, 3)):
        order = after[member.user_id]
        assert order["status"] == "awaiting_payment"
        assert (order["unit_price_won"], order["amount_won"]) == (8_000, units * 8_000)
    campaign = await db.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)
    assert (campaign["status"], campaign["final_unit_price_won"], campaign["final_units"]) == ("succeeded", 8_000, 10)
    await send_all(db, wk_settings)
    subjects = [str(m.message["Subject"]) for m in smtp_sink.messages if m.message["To"] == market.emails[members[2].user_id]]
    assert any("주문이 취소되었습니다" in subject for subject in subjects)
    await check_campaign_invariants(db, campaigns, sink_messages=smtp_sink.messages)


# -- the money ledger of pledge payments -----------------------------------------------


async def test_failed_campaign_refunds_in_ledger_once(db, campaigns, campaign_consumer, wk_settings, market):
    """A failed up-front campaign records each paid payment's receipt and full refund once, and no unpaid one."""
    campaign_id = await make_campaign(
        market, campaigns, payment_timing="up_front", min_total_units=20, tiers=[[20, 9_000], [30, 8_000]]
    )
    by_card, by_transfer, unpaid = [await market.member(name) for name in ("김가영", "이나래", "박다솜")]
    await pledge(market, campaigns, campaign_id, by_card, 2)
    card_payment = await record_up_front_payment(db, campaign_id, by_card.user_id, 2, 2 * AT_MOST_WON, method=CARD)
    transfer_payment = await pay_up_front(market, campaigns, campaign_id, by_transfer, 3, confirm=True)
    unpaid_payment = await pay_up_front(market, campaigns, campaign_id, unpaid, 4, confirm=False)
    assert await pledge_ledger(db, campaign_id) == [
        (card_payment, "payment", 2 * AT_MOST_WON), (transfer_payment, "payment", 3 * AT_MOST_WON),
    ]
    await wait_until_deadline(campaigns, campaign_id)

    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "failed"
    await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id)

    assert await pledge_ledger(db, campaign_id) == [
        (card_payment, "payment", 2 * AT_MOST_WON), (transfer_payment, "payment", 3 * AT_MOST_WON),
        (card_payment, "refund", 2 * AT_MOST_WON), (transfer_payment, "refund", 3 * AT_MOST_WON),
    ]
    refunds = await db.fetch("SELECT payment_id, order_id, amount_won FROM refunds ORDER BY payment_id")
    assert [(r["payment_id"], r["order_id"], r["amount_won"]) for r in refunds] == [
        (card_payment, None, 2 * AT_MOST_WON), (transfer_payment, None, 3 * AT_MOST_WON),
    ]
    assert await db.fetchval("SELECT status FROM pledge_payments WHERE id = $1", unpaid_payment) == "expired"
    assert await db.fetchval("SELECT count(*) FROM money_ledger WHERE pledge_payment_id = $1", unpaid_payment) == 0
    await check_campaign_invariants(db, campaigns)


async def test_close_difference_refund_in_ledger_once(db, campaigns, campaign_consumer, wk_settings, market):
    """A successful close moves each paid payment to its order once and refunds the difference once, on the order.

    A member who paid and then cancelled the pledge gets one full refund of the payment.
    """
    campaign_id = await make_campaign(market, campaigns, payment_timing="up_front")
    first, second, quitter = [await market.member(name) for name in ("김가영", "이나래", "박다솜")]
    first_payment = await pay_up_front(market, campaigns, campaign_id, first, 4, confirm=True)
    second_payment = await pay_up_front(market, campaigns, campaign_id, second, 6, confirm=True)
    quitter_payment = await pay_up_front(market, campaigns, campaign_id, quitter, 2, confirm=True)
    await pledge(market, campaigns, campaign_id, quitter, 0)
    await wait_until_deadline(campaigns, campaign_id)

    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"
    await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id)

    orders = await orders_by_user(db, campaign_id)
    assert set(orders) == {first.user_id, second.user_id}
    ledger = await pledge_ledger(db, campaign_id)
    assert sorted(ledger) == sorted([
        (first_payment, "payment", 4 * AT_MOST_WON), (first_payment, "settlement", 4 * AT_MOST_WON),
        (second_payment, "payment", 6 * AT_MOST_WON), (second_payment, "settlement", 6 * AT_MOST_WON),
        (quitter_payment, "payment", 2 * AT_MOST_WON), (quitter_payment, "refund", 2 * AT_MOST_WON),
    ])
    for member, payment_id, units in ((first, first_payment, 4), (second, second_payment, 6)):
        order = orders[member.user_id]
        assert await db.fetchval("SELECT order_id FROM pledge_payments WHERE id = $1", payment_id) == order["id"]
        assert await order_ledger_counts(db, order["id"]) == {"sale": 1, "commission": 1, "overpayment": 1, "refund": 1}
        sums = await ledger_sums(db, order["id"])
        assert sums["overpayment"] == sums["refund"] == units * (AT_MOST_WON - 8_000)
        # The payment moved to the order pays its sale and the difference refunded.
        assert sums["sale"] + sums["overpayment"] == units * AT_MOST_WON
    refund_rows = await db.fetchval("SELECT count(*) FROM money_ledger WHERE entry = 'refund'")
    assert refund_rows == await db.fetchval("SELECT count(*) FROM refunds") == 3
    await check_campaign_invariants(db, campaigns)
    await check_orders_money(db, [order["id"] for order in orders.values()])


async def test_deposit_confirmation_in_ledger_once(db, campaigns, campaign_consumer, wk_settings, market):
    """A deposit confirmed twice, one after the other or at once, is received in the money ledger once."""
    campaign_id = await make_campaign(market, campaigns, duration_s=3600, payment_timing="up_front")
    sequential, concurrent = await market.member("김가영"), await market.member("이나래")
    first_payment = await pay_up_front(market, campaigns, campaign_id, sequential, 3, confirm=True)
    with pytest.raises(DomainError) as again:
        await confirm_pledge_deposit(db, first_payment, market.staff)
    assert again.value.code == "payment_not_awaiting_deposit"

    second_payment = await pay_up_front(market, campaigns, campaign_id, concurrent, 2, confirm=False)
    results = await asyncio.gather(
        confirm_pledge_deposit(db, second_payment, market.staff),
        confirm_pledge_deposit(db, second_payment, market.staff),
        return_exceptions=True,
    )
    errors = [result for result in results if result is not None]
    assert len(errors) == 1
    assert isinstance(errors[0], DomainError)
    assert errors[0].code == "payment_not_awaiting_deposit"

    assert await pledge_ledger(db, campaign_id) == [
        (first_payment, "payment", 3 * AT_MOST_WON), (second_payment, "payment", 2 * AT_MOST_WON),
    ]
    assert await db.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'pledge_payment.confirm_deposit'"
    ) == 2
    # The unique indexes reject a second receipt, and a second way out once the payment left.
    async with db.acquire() as connection:
        with pytest.raises(asyncpg.UniqueViolationError):
            await record_pledge_ledger_entries(connection, [first_payment], "payment")
        transaction = connection.transaction()
        await transaction.start()
        try:
            await record_pledge_ledger_entries(connection, [first_payment], "refund")
            with pytest.raises(asyncpg.UniqueViolationError):
                await record_pledge_ledger_entries(connection, [first_payment], "settlement")
        finally:
            await transaction.rollback()
    await check_campaign_invariants(db, campaigns)


async def test_deposit_for_paid_order_refunded_once(db, campaigns, campaign_consumer, wk_settings, market):
    """A pledge deposit confirmed after its order was paid otherwise is received and refunded in full, once."""
    campaign_id = await make_campaign(market, campaigns, payment_timing="up_front")
    member = await market.member()
    payment_id = await pay_up_front(market, campaigns, campaign_id, member, 10, confirm=False)
    await wait_until_deadline(campaigns, campaign_id)
    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"
    order = (await orders_by_user(db, campaign_id))[member.user_id]
    await confirm_deposit(db, market.staff, order["id"])

    await confirm_pledge_deposit(db, payment_id, market.staff)

    assert await db.fetchval("SELECT status FROM pledge_payments WHERE id = $1", payment_id) == "refunded"
    assert await pledge_ledger(db, campaign_id) == [
        (payment_id, "payment", 10 * AT_MOST_WON), (payment_id, "refund", 10 * AT_MOST_WON),
    ]
    assert await db.fetchval("SELECT reason FROM refunds WHERE payment_id = $1", payment_id) == "nothing_to_pay"
    assert await order_ledger_counts(db, order["id"]) == {"sale": 1, "commission": 1}
    await check_campaign_invariants(db, campaigns)
    await check_orders_money(db, [order["id"]])


async def test_cancelled_order_refunds_payment_once(db, campaigns, campaign_consumer, wk_settings, market):
    """A lapsed order that its paid payment did not cover is cancelled, and the payment is refunded once."""
    campaign_id = await make_campaign(market, campaigns, payment_timing="up_front")
    member = await market.member()
    payment_id = await pay_up_front(market, campaigns, campaign_id, member, 4, confirm=True)
    await pledge(market, campaigns, campaign_id, member, 10)
    await wait_until_deadline(campaigns, campaign_id)
    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"
    order = (await orders_by_user(db, campaign_id))[member.user_id]
    assert (order["status"], order["amount_won"]) == ("awaiting_payment", 80_000)
    assert await pledge_ledger(db, campaign_id) == [(payment_id, "payment", 4 * AT_MOST_WON)]

    await db.execute("UPDATE orders SET payment_due_at = now() - interval '1 second' WHERE id = $1", order["id"])
    canceller = CampaignOrderCanceller(db)
    assert await canceller.round() == 1
    assert await canceller.round() == 0

    assert await pledge_ledger(db, campaign_id) == [
        (payment_id, "payment", 4 * AT_MOST_WON), (payment_id, "refund", 4 * AT_MOST_WON),
    ]
    assert await db.fetchval("SELECT order_id FROM pledge_payments WHERE id = $1", payment_id) is None
    await check_campaign_invariants(db, campaigns)
    await check_orders_money(db, [order["id"]])


async def test_racing_closers_ledger_rows_once(
    db, wk_dsn, campaigns, campaign_consumer, wk_settings, market, redis_url
):
    """Two closers with their own pools and Redis clients racing write each pledge payment's rows once."""
    succeeding = await make_campaign(market, campaigns, duration_s=2.0, payment_timing="up_front")
    failing = await make_campaign(
        market, campaigns, duration_s=2.0, payment_timing="up_front", min_total_units=20,
        tiers=[[20, 9_000], [30, 8_000]],
    )
    payments: dict[int, list[tuple[int, int]]] = {succeeding: [], failing: []}
    for campaign_id in (succeeding, failing):
        for units in (4, 6):
            member = await market.member()
            payment_id = await pay_up_front(market, campaigns, campaign_id, member, units, confirm=True)
            payments[campaign_id].append((payment_id, units * AT_MOST_WON))
    await wait_until_deadline(campaigns, succeeding)
    await wait_until_deadline(campaigns, failing)
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

    statuses = dict(await db.fetch("SELECT id, status FROM campaigns WHERE id = ANY($1::bigint[])",
                                   [succeeding, failing]))
    assert statuses == {succeeding: "succeeded", failing: "failed"}
    for campaign_id, way_out in ((succeeding, "settlement"), (failing, "refund")):
        expected = [(payment_id, "payment", won) for payment_id, won in payments[campaign_id]]
        expected += [(payment_id, way_out, won) for payment_id, won in payments[campaign_id]]
        assert sorted(await pledge_ledger(db, campaign_id)) == sorted(expected)
    orders = await orders_by_user(db, succeeding)
    for order in orders.values():
        assert await order_ledger_counts(db, order["id"]) == {"sale": 1, "commission": 1, "overpayment": 1, "refund": 1}
    assert await db.fetchval("SELECT count(*) FROM refunds") == 4
    await check_campaign_invariants(db, campaigns)
    await check_orders_money(db, [order["id"] for order in orders.values()])

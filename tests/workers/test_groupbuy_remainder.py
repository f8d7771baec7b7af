"""Up-front group-buy orders paid partly in advance, and pledge deposits that arrive after their hold expired.

A member who paid for some units up front and then raised the pledge gets an order
that awaits the remainder. Staff confirming that deposit settle the up-front
payments into the order, so no money stays held in the ledger.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import asyncpg
import pytest

from engine.auction.rules import MAX_AMOUNT_WON
from engine.db import migrate
from engine.errors import DomainError
from engine.groupbuy.payments import confirm_pledge_deposit, record_up_front_payment
from engine.orders import DepositConfirmation, confirm_deposit, order_balance
from workers.campaigns import HoldExpirer
from invariants import check_campaign_invariants, check_orders_money
from groupbuy_testkit import (
    AT_MOST_WON,
    campaign_consumer,
    campaigns,
    close_until_final,
    ledger_sums,
    make_campaign,
    orders_by_user,
    partly_prepaid_order,
    pay_up_front,
    pledge,
    pledge_ledger,
    wait_until_deadline,
)
from worker_testkit import database_before_migration, make_market

__all__ = ["campaign_consumer", "campaigns"]  # fixtures

PREPAID_MIGRATION = "0017_order_prepaid_deposit"
COMMISSION_WON = 80_000 * 400 // 10_000  # local farm goods: 400 bp


async def lapse_hold(db: asyncpg.Pool, payment_id: int) -> None:
    await db.execute(
        "UPDATE pledge_payments SET hold_expires_at = now() - interval '1 second' WHERE id = $1", payment_id
    )


async def mail_body(db: asyncpg.Pool, event_key: str) -> str:
    """Return the body of the one outbox mail queued for `event_key`."""
    [body] = [row["body_text"] for row in await db.fetch("SELECT body_text FROM outbox WHERE event_key = $1", event_key)]
    return body


async def audit_details(db: asyncpg.Pool, action: str, target_id: int) -> list[dict]:
    rows = await db.fetch(
        "SELECT detail FROM audit_log WHERE action = $1 AND target_id = $2 ORDER BY id", action, target_id
    )
    return [row["detail"] for row in rows]


# -- the deposit of the remainder --------------------------------------------------------


async def test_remainder_deposit_settles_prepayment(db, campaigns, campaign_consumer, wk_settings, market):
    """Confirming the 44,000 won remainder settles the 36,000 won paid up front into the 80,000 won order."""
    member = await market.member()
    payment_id, order = await partly_prepaid_order(db, campaigns, wk_settings, campaign_consumer, market, member)
    assert (order["status"], order["amount_won"]) == ("awaiting_payment", 80_000)
    assert order["prepaid_won"] == 4 * AT_MOST_WON
    balance = await order_balance(db, order["id"])
    assert balance is not None
    assert (balance.amount_won, balance.prepaid_won, balance.due_won) == (80_000, 36_000, 44_000)
    assert balance.deposit_won is None
    closed_mail = await mail_body(db, f"campaign:{order['campaign_id']}:succeeded")
    assert "이미 입금 확인된 금액: 36,000원" in closed_mail
    assert "입금하실 금액: 44,000원" in closed_mail
    await check_orders_money(db, [order["id"]])

    confirmation = await confirm_deposit(db, market.staff, order["id"])

    assert confirmation == DepositConfirmation(
        order_id=order["id"], order_no=order["order_no"], amount_won=80_000, prepaid_won=36_000, due_won=44_000,
        deposit_won=44_000, refund_won=0,
    )
    paid = await db.fetchrow("SELECT * FROM orders WHERE id = $1", order["id"])
    assert paid["status"] == "paid"
    assert (paid["prepaid_won"], paid["deposit_won"]) == (36_000, 44_000)
    assert paid["confirmed_by"] == market.staff.user_id
    payment = await db.fetchrow("SELECT status, order_id FROM pledge_payments WHERE id = $1", payment_id)
    assert (payment["status"], payment["order_id"]) == ("settled", order["id"])
    assert await pledge_ledger(db, order["campaign_id"]) == [
        (payment_id, "payment", 36_000), (payment_id, "settlement", 36_000),
    ]
    assert await ledger_sums(db, order["id"]) == {"sale": 80_000, "commission": COMMISSION_WON}
    assert await db.fetchval("SELECT count(*) FROM refunds") == 0
    [detail] = await audit_details(db, "order.confirm_deposit", order["id"])
    assert detail["settled_payment_ids"] == [payment_id]
    assert (detail["prepaid_won"], detail["due_won"], detail["deposit_won"]) == (36_000, 44_000, 44_000)
    balance = await order_balance(db, order["id"])
    assert balance is not None
    assert (balance.status, balance.prepaid_won, balance.deposit_won) == ("paid", 36_000, 44_000)
    paid_mail = await mail_body(db, f"order:{order['id']}:paid")
    assert "입금액 44,000원" in paid_mail
    assert "공동구매 선결제 금액: 36,000원 (주문 금액 80,000원)" in paid_mail
    assert "환불" not in paid_mail
    await check_campaign_invariants(db, campaigns)
    await check_orders_money(db, [order["id"]])


async def test_full_amount_transfer_refunds_excess(db, campaigns, campaign_consumer, wk_settings, market):
    """A member who sent the whole 80,000 won gets the 36,000 won beyond the remainder refunded on the order."""
    member = await market.member()
    payment_id, order = await partly_prepaid_order(db, campaigns, wk_settings, campaign_consumer, market, member)

    confirmation = await confirm_deposit(db, market.staff, order["id"], deposit_won=80_000)

    assert (confirmation.due_won, confirmation.deposit_won, confirmation.refund_won) == (44_000, 80_000, 36_000)
    assert await db.fetchval("SELECT deposit_won FROM orders WHERE id = $1", order["id"]) == 80_000
    refunds = await db.fetch("SELECT source_key, order_id, payment_id, user_id, amount_won, reason FROM refunds")
    assert [tuple(row.values()) for row in refunds] == [
        (f"order:{order['id']}:deposit_excess", order["id"], None, member.user_id, 36_000, "deposit_excess"),
    ]
    assert await ledger_sums(db, order["id"]) == {
        "sale": 80_000, "commission": COMMISSION_WON, "overpayment": 36_000, "refund": 36_000,
    }
    assert await db.fetchval("SELECT status FROM pledge_payments WHERE id = $1", payment_id) == "settled"
    paid_mail = await mail_body(db, f"order:{order['id']}:paid")
    assert "입금액 80,000원" in paid_mail
    assert "결제할 금액을 넘는 36,000원은 환불됩니다" in paid_mail
    await check_campaign_invariants(db, campaigns)
    await check_orders_money(db, [order["id"]])


async def test_short_or_invalid_deposit_rejected(db, campaigns, campaign_consumer, wk_settings, market):
    """A deposit below the remainder, or not a positive whole number of won, changes nothing."""
    member = await market.member()
    payment_id, order = await partly_prepaid_order(db, campaigns, wk_settings, campaign_consumer, market, member)

    with pytest.raises(DomainError) as short:
        await confirm_deposit(db, market.staff, order["id"], deposit_won=43_999)
    assert short.value.code == "deposit_short"
    assert (short.value.detail["due_won"], short.value.detail["deposit_won"]) == (44_000, 43_999)
    for invalid in (0, -44_000, True, 44_000.0, "44000", MAX_AMOUNT_WON + 1):
        with pytest.raises(DomainError) as wrong:
            await confirm_deposit(db, market.staff, order["id"], deposit_won=invalid)  # type: ignore[arg-type]
        assert wrong.value.code == "invalid_amount", invalid
    with pytest.raises(DomainError) as not_staff:
        await confirm_deposit(db, member, order["id"])
    assert not_staff.value.code == "forbidden"

    after = await db.fetchrow("SELECT status, prepaid_won, deposit_won FROM orders WHERE id = $1", order["id"])
    assert tuple(after.values()) == ("awaiting_payment", 36_000, None)
    assert await db.fetchval("SELECT status FROM pledge_payments WHERE id = $1", payment_id) == "paid"
    assert await pledge_ledger(db, order["campaign_id"]) == [(payment_id, "payment", 36_000)]
    assert await audit_details(db, "order.confirm_deposit", order["id"]) == []
    await check_campaign_invariants(db, campaigns)
    await check_orders_money(db, [order["id"]])


async def test_racing_confirmations_settle_once(db, campaigns, campaign_consumer, wk_settings, market):
    """Two confirmations at once and one after them settle the up-front payment and take the deposit once."""
    member = await market.member()
    payment_id, order = await partly_prepaid_order(db, campaigns, wk_settings, campaign_consumer, market, member)

    results = await asyncio.gather(
        confirm_deposit(db, market.staff, order["id"], deposit_won=44_000),
        confirm_deposit(db, market.staff, order["id"], deposit_won=80_000),
        return_exceptions=True,
    )
    confirmations = [result for result in results if isinstance(result, DepositConfirmation)]
    errors = [result for result in results if isinstance(result, DomainError)]
    assert len(confirmations) == 1
    assert [error.code for error in errors] == ["order_not_awaiting_payment"]
    with pytest.raises(DomainError) as again:
        await confirm_deposit(db, market.staff, order["id"])
    assert again.value.code == "order_not_awaiting_payment"

    assert await pledge_ledger(db, order["campaign_id"]) == [
        (payment_id, "payment", 36_000), (payment_id, "settlement", 36_000),
    ]
    assert await db.fetchval("SELECT deposit_won FROM orders WHERE id = $1", order["id"]) == (
        confirmations[0].deposit_won
    )
    assert await db.fetchval("SELECT count(*) FROM refunds") == (1 if confirmations[0].refund_won else 0)
    assert len(await audit_details(db, "order.confirm_deposit", order["id"])) == 1
    assert await db.fetchval("SELECT count(*) FROM outbox WHERE event_key = $1", f"order:{order['id']}:paid") == 1
    await check_campaign_invariants(db, campaigns)
    await check_orders_money(db, [order["id"]])


async def test_pledge_deposit_after_close_lowers_remainder(db, campaigns, campaign_consumer, wk_settings, market):
    """A pledge deposit confirmed after the close that does not cover the order lowers what is still due."""
    campaign_id = await make_campaign(market, campaigns, payment_timing="up_front")
    member = await market.member()
    payment_id = await pay_up_front(market, campaigns, campaign_id, member, 4, confirm=False)
    await pledge(market, campaigns, campaign_id, member, 10)
    await wait_until_deadline(campaigns, campaign_id)
    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"
    order = (await orders_by_user(db, campaign_id))[member.user_id]
    assert (order["status"], order["prepaid_won"]) == ("awaiting_payment", 0)

    await confirm_pledge_deposit(db, payment_id, market.staff)

    assert await db.fetchval("SELECT prepaid_won FROM orders WHERE id = $1", order["id"]) == 36_000
    balance = await order_balance(db, order["id"])
    assert balance is not None
    assert (balance.status, balance.due_won) == ("awaiting_payment", 44_000)
    await check_campaign_invariants(db, campaigns)

    confirmation = await confirm_deposit(db, market.staff, order["id"])

    assert (confirmation.prepaid_won, confirmation.deposit_won) == (36_000, 44_000)
    assert await db.fetchval("SELECT status FROM pledge_payments WHERE id = $1", payment_id) == "settled"
    await check_campaign_invariants(db, campaigns)
    await check_orders_money(db, [order["id"]])


async def test_remainder_deposit_leaves_unconfirmed_payment(db, campaigns, campaign_consumer, wk_settings, market):
    """A second up-front payment still awaiting its deposit is not settled, and its later deposit is refunded."""
    campaign_id = await make_campaign(market, campaigns, payment_timing="up_front")
    member = await market.member()
    paid_payment = await pay_up_front(market, campaigns, campaign_id, member, 4, confirm=True)
    await pledge(market, campaigns, campaign_id, member, 10)
    unconfirmed = await record_up_front_payment(db, campaign_id, member.user_id, 6, 6 * AT_MOST_WON)
    await wait_until_deadline(campaigns, campaign_id)
    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"
    order = (await orders_by_user(db, campaign_id))[member.user_id]

    await confirm_deposit(db, market.staff, order["id"])

    statuses = dict(await db.fetch("SELECT id, status FROM pledge_payments WHERE campaign_id = $1", campaign_id))
    assert statuses == {paid_payment: "settled", unconfirmed: "awaiting_deposit"}
    await confirm_pledge_deposit(db, unconfirmed, market.staff)
    assert await db.fetchval("SELECT status FROM pledge_payments WHERE id = $1", unconfirmed) == "refunded"
    assert await db.fetchval("SELECT reason FROM refunds WHERE payment_id = $1", unconfirmed) == "nothing_to_pay"
    assert await ledger_sums(db, order["id"]) == {"sale": 80_000, "commission": COMMISSION_WON}
    await check_campaign_invariants(db, campaigns)
    await check_orders_money(db, [order["id"]])


async def test_invariants_catch_unsettled_prepayment(db, campaigns, campaign_consumer, wk_settings, market):
    """The checker fails a paid order whose up-front payment stayed paid, as before staff settled it."""
    member = await market.member()
    payment_id, order = await partly_prepaid_order(db, campaigns, wk_settings, campaign_consumer, market, member)
    await confirm_deposit(db, market.staff, order["id"])

    async with db.acquire() as connection:
        transaction = connection.transaction()
        await transaction.start()
        try:
            await connection.execute(
                "DELETE FROM money_ledger WHERE pledge_payment_id = $1 AND entry = 'settlement'", payment_id
            )
            await connection.execute(
                "UPDATE pledge_payments SET status = 'paid', order_id = NULL WHERE id = $1", payment_id
            )
            await connection.execute("UPDATE orders SET prepaid_won = 0, deposit_won = 80000 WHERE id = $1",
                                     order["id"])
            with pytest.raises(AssertionError) as held:
                await check_campaign_invariants(connection, campaigns)
            assert "a paid pledge payment waits only for an order awaiting payment" in str(held.value)

            await connection.execute("UPDATE orders SET deposit_won = 44000 WHERE id = $1", order["id"])
            with pytest.raises(AssertionError) as short:
                await check_orders_money(connection, [order["id"]])
            assert "the money ledger receives what the buyer paid up front and by transfer" in str(short.value)
        finally:
            await transaction.rollback()


# -- pledge deposits after their hold expired -----------------------------------------------


async def test_late_deposit_after_release_refunded(db, campaigns, campaign_consumer, wk_settings, market):
    """A deposit confirmed after the hold expired and released its units is refunded in full, once."""
    campaign_id = await make_campaign(market, campaigns, duration_s=3600, payment_timing="up_front")
    member = await market.member()
    payment_id = await pay_up_front(market, campaigns, campaign_id, member, 4, confirm=False)
    await lapse_hold(db, payment_id)
    assert await HoldExpirer(db, campaigns).round() == 1
    await campaign_consumer.drain()
    assert await campaigns.pledges(campaign_id) == {}

    await confirm_pledge_deposit(db, payment_id, market.staff)

    assert await db.fetchval("SELECT status FROM pledge_payments WHERE id = $1", payment_id) == "refunded"
    refunds = await db.fetch("SELECT payment_id, order_id, amount_won, reason FROM refunds")
    assert [tuple(row.values()) for row in refunds] == [(payment_id, None, 36_000, "late_deposit")]
    assert await pledge_ledger(db, campaign_id) == [(payment_id, "payment", 36_000), (payment_id, "refund", 36_000)]
    [detail] = await audit_details(db, "pledge_payment.confirm_deposit", payment_id)
    assert (detail["late"], detail["outcome"]) == (True, "refunded")
    assert "입금액 전액을 환불해 드립니다" in await mail_body(db, f"pledge_payment:{payment_id}:paid")
    with pytest.raises(DomainError) as again:
        await confirm_pledge_deposit(db, payment_id, market.staff)
    assert again.value.code == "payment_not_awaiting_deposit"
    assert await db.fetchval("SELECT count(*) FROM refunds") == 1
    await check_campaign_invariants(db, campaigns)


async def test_late_deposit_before_release_stored(db, campaigns, campaign_consumer, wk_settings, market):
    """A late deposit confirmed before the release reached the ledger is held, and the close refunds it."""
    campaign_id = await make_campaign(market, campaigns, duration_s=3.0, payment_timing="up_front")
    payer, late = await market.member("김가영"), await market.member("이나래")
    await pay_up_front(market, campaigns, campaign_id, payer, 6, confirm=True)
    late_payment = await pay_up_front(market, campaigns, campaign_id, late, 4, confirm=False)
    await lapse_hold(db, late_payment)
    assert await HoldExpirer(db, campaigns).round() == 1
    assert await campaigns.pledges(campaign_id) == {payer.user_id: 6}

    await confirm_pledge_deposit(db, late_payment, market.staff)

    assert await db.fetchval("SELECT status FROM pledge_payments WHERE id = $1", late_payment) == "paid"
    await wait_until_deadline(campaigns, campaign_id)
    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"
    assert set(await orders_by_user(db, campaign_id)) == {payer.user_id}
    assert await db.fetchval("SELECT status FROM pledge_payments WHERE id = $1", late_payment) == "refunded"
    assert await db.fetchval("SELECT reason FROM refunds WHERE payment_id = $1", late_payment) == "pledge_cancelled"
    await check_campaign_invariants(db, campaigns)


async def test_late_deposit_after_deadline_pays_order(db, campaigns, campaign_consumer, wk_settings, market):
    """A hold that expired after the deadline kept its units, so its late deposit pays the member's order."""
    campaign_id = await make_campaign(market, campaigns, payment_timing="up_front")
    payer, late = await market.member("김가영"), await market.member("이나래")
    await pay_up_front(market, campaigns, campaign_id, payer, 6, confirm=True)
    late_payment = await pay_up_front(market, campaigns, campaign_id, late, 4, confirm=False)
    await wait_until_deadline(campaigns, campaign_id)
    await lapse_hold(db, late_payment)
    assert await HoldExpirer(db, campaigns).round() == 1
    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"
    order = (await orders_by_user(db, campaign_id))[late.user_id]
    assert (order["status"], order["amount_won"], order["prepaid_won"]) == ("awaiting_payment", 32_000, 0)

    await confirm_pledge_deposit(db, late_payment, market.staff)

    order = (await orders_by_user(db, campaign_id))[late.user_id]
    assert (order["status"], order["prepaid_won"], order["deposit_won"]) == ("paid", 36_000, None)
    assert await db.fetchval("SELECT status FROM pledge_payments WHERE id = $1", late_payment) == "settled"
    refunds = await db.fetch("SELECT order_id, amount_won, reason FROM refunds WHERE user_id = $1", late.user_id)
    assert [tuple(row.values()) for row in refunds] == [(order["id"], 4_000, "price_difference")]
    [detail] = await audit_details(db, "pledge_payment.confirm_deposit", late_payment)
    assert (detail["late"], detail["outcome"]) == (True, "order_paid")
    await check_campaign_invariants(db, campaigns)
    await check_orders_money(db, [order["id"]])


# -- the migration -----------------------------------------------------------------------------


async def test_migration_credits_prepaid_orders(
    pg_server_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The migration credits an order awaiting payment with its paid payments and a paid one with its settled ones."""
    async with database_before_migration(pg_server_dsn, tmp_path, monkeypatch, PREPAID_MIGRATION) as db:
        market = await make_market(db, None)  # type: ignore[arg-type]  # no lot is loaded into Redis
        awaiting_member, paid_member = await market.member(), await market.member()
        campaign_id = await db.fetchval(
            """INSERT INTO campaigns (product_id, supplier_id, title, list_price_won, tiers, min_total_units,
                                      stock_cap_units, per_member_limit, start_at, deadline_at, payment_timing,
                                      status, final_unit_price_won, final_units, created_by, closed_at)
               VALUES ($1, $2, '광산 곱창김 공동구매', 10000, $3, 5, 100, 50, now() - interval '2 hours',
                       now() - interval '1 hour', 'up_front', 'succeeded', 8000, 14, $4, now() - interval '1 hour')
               RETURNING id""",
            market.product_id, market.supplier_id, [[5, 9_000], [10, 8_000]], market.staff.user_id,
        )

        async def order(member_id: int, units: int, status: str) -> int:
            return await db.fetchval(
                """INSERT INTO orders (order_no, channel, buyer_id, supplier_id, amount_won, status, source_key,
                                       campaign_id, units, unit_price_won)
                   VALUES ($1, 'groupbuy', $2, $3, $4, $5, $6, $7, $8, 8000) RETURNING id""",
                f"G{secrets.token_hex(4)}", member_id, market.supplier_id, units * 8_000, status,
                f"campaign:{campaign_id}:user:{member_id}", campaign_id, units,
            )

        async def payment(member_id: int, units: int, status: str, order_id: int | None = None) -> None:
            await db.execute(
                """INSERT INTO pledge_payments (campaign_id, user_id, units, amount_won, method, status, order_id)
                   VALUES ($1, $2, $3, $4, 'card', $5, $6)""",
                campaign_id, member_id, units, units * 9_000, status, order_id,
            )

        awaiting_order = await order(awaiting_member.user_id, 10, "awaiting_payment")
        paid_order = await order(paid_member.user_id, 4, "paid")
        for units, status in ((2, "paid"), (2, "paid"), (3, "refunded"), (1, "awaiting_deposit")):
            await payment(awaiting_member.user_id, units, status)
        await payment(paid_member.user_id, 4, "settled", paid_order)

        assert PREPAID_MIGRATION in await migrate.apply_migrations(db)

        orders = {row["id"]: row for row in await db.fetch("SELECT id, prepaid_won, deposit_won FROM orders")}
        assert (orders[awaiting_order]["prepaid_won"], orders[awaiting_order]["deposit_won"]) == (36_000, None)
        assert (orders[paid_order]["prepaid_won"], orders[paid_order]["deposit_won"]) == (36_000, None)

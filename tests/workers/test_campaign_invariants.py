"""The group-buy invariant checker passes an intact closed campaign and fails each corruption of it."""

from __future__ import annotations

import pytest

from engine.groupbuy.payments import confirm_pledge_deposit, record_up_front_payment
from groupbuy_testkit import campaign_consumer, campaigns, close_until_final, make_campaign, pledge, wait_until_deadline
from invariants import check_campaign_invariants
from worker_testkit import send_all

__all__ = ["campaign_consumer", "campaigns"]  # fixtures

AT_MOST_WON = 9_000  # the price at the minimum total of 5 units


async def test_campaign_checker_rejects_corruptions(db, campaigns, campaign_consumer, wk_settings, market, smtp_sink):
    """The checker passes an up-front campaign closed at 8,000원 and fails each corruption, naming the invariant."""
    campaign_id = await make_campaign(market, campaigns, payment_timing="up_front")
    receipts = []
    for name, units in (("김가영", 4), ("이나래", 6)):
        member = await market.member(name)
        receipts.append(await pledge(market, campaigns, campaign_id, member, units))
        payment_id = await record_up_front_payment(market.db, campaign_id, member.user_id, units, units * AT_MOST_WON)
        await confirm_pledge_deposit(market.db, payment_id, market.staff)
    await wait_until_deadline(campaigns, campaign_id)
    assert await close_until_final(db, campaigns, wk_settings, campaign_consumer, campaign_id) == "succeeded"
    await send_all(db, wk_settings)
    messages = list(smtp_sink.messages)
    await check_campaign_invariants(db, campaigns, receipts=receipts, sink_messages=messages)

    first_order = f"(SELECT min(id) FROM orders WHERE campaign_id = {campaign_id})"
    first_payment = f"(SELECT min(id) FROM pledge_payments WHERE campaign_id = {campaign_id})"
    supplier_user = market.supplier.user_id
    cases = [
        ("pledge event deleted", [f"DELETE FROM pledge_events WHERE campaign_id = {campaign_id} AND seq = 1"],
         {}, "ledger holds seqs 1..N without a gap"),
        ("pledge total changed", [f"UPDATE pledge_events SET committed_units = committed_units + 1"
                                  f" WHERE campaign_id = {campaign_id} AND seq = 2"],
         {}, "running totals follow the rules"),
        ("second order for one pledge",
         ["INSERT INTO orders (order_no, channel, buyer_id, supplier_id, amount_won, status, campaign_id, units,"
          " unit_price_won) SELECT order_no || 'X', channel, buyer_id, supplier_id, amount_won, status, campaign_id,"
          f" units, unit_price_won FROM orders WHERE id = {first_order}"],
         {}, "each pledge becomes at most one order"),
        ("wrong final price", [f"UPDATE campaigns SET final_unit_price_won = 9000 WHERE id = {campaign_id}"],
         {}, "final price is the tier the close's total reached"),
        ("order at another price", [f"UPDATE orders SET unit_price_won = 9000 WHERE id = {first_order}"],
         {}, "order at the final price for the member's units"),
        ("sale row off by one won", ["UPDATE money_ledger SET amount_won = amount_won + 1"
                                     f" WHERE order_id = {first_order} AND entry = 'sale'"],
         {}, "sale + overpayment - refunds - reversals = amount paid"),
        ("commission row off by one won", ["UPDATE money_ledger SET amount_won = amount_won - 1"
                                           f" WHERE order_id = {first_order} AND entry = 'commission'"],
         {}, "commission is the order's amount times the rate, floored"),
        ("refund missing from the money ledger", [f"DELETE FROM money_ledger WHERE order_id = {first_order}"
                                                  " AND entry IN ('overpayment', 'refund')"],
         {}, "every refund of an order is a money-ledger row"),
        ("pledge payment's receipt deleted", [f"DELETE FROM money_ledger WHERE pledge_payment_id = {first_payment}"
                                             " AND entry = 'payment'"],
         {}, "the money ledger receives each paid pledge payment in full"),
        ("pledge payment received twice",
         ["DROP INDEX money_ledger_pledge_payment_in_key",
          "INSERT INTO money_ledger (pledge_payment_id, supplier_id, entry, amount_won) SELECT pledge_payment_id,"
          f" supplier_id, entry, amount_won FROM money_ledger WHERE pledge_payment_id = {first_payment}"
          " AND entry = 'payment'"],
         {}, "a pledge payment enters and leaves the money ledger at most once"),
        ("settlement row off by one won", ["UPDATE money_ledger SET amount_won = amount_won - 1"
                                           f" WHERE pledge_payment_id = {first_payment} AND entry = 'settlement'"],
         {}, "pledge payment's ledger in minus out = what it holds"),
        ("settlement rows short of the order", ["UPDATE money_ledger SET amount_won = amount_won - 1"
                                                f" WHERE pledge_payment_id = {first_payment} AND entry = 'settlement'"],
         {}, "the money ledger receives what the buyer paid up front"),
        ("full refund missing from the money ledger",
         ["INSERT INTO refunds (source_key, payment_id, user_id, amount_won, reason)"
          " SELECT 'pledge_payment:' || id || ':refund', id, user_id, amount_won, 'pledge_cancelled'"
          f" FROM pledge_payments WHERE id = {first_payment}"],
         {}, "every full refund of a pledge payment is a money-ledger row"),
        ("settled payment without its order",
         ["ALTER TABLE pledge_payments DROP CONSTRAINT pledge_payments_settled_order_check",
          f"UPDATE pledge_payments SET order_id = NULL WHERE id = {first_payment}"],
         {}, "a settled payment names the order it paid"),
        ("payments settled into an unpaid order",
         [f"UPDATE orders SET status = 'awaiting_payment', paid_at = NULL WHERE id = {first_order}"],
         {}, "payments are settled only into a paid order"),
        ("pledge payment row of another supplier",
         ["INSERT INTO suppliers (name, business_no, representative, phone, email, address, kind, is_local, status)"
          " SELECT name, '0000000000', representative, phone, 'other-' || email, address, kind, is_local, status"
          f" FROM suppliers WHERE id = {market.supplier_id}",
          "UPDATE money_ledger SET supplier_id = (SELECT max(id) FROM suppliers)"
          f" WHERE pledge_payment_id = {first_payment}"],
         {}, "a pledge payment's ledger rows name the campaign's supplier"),
        ("supplier pledged to its own goods", [f"UPDATE pledge_events SET user_id = {supplier_user}"
                                               f" WHERE campaign_id = {campaign_id} AND seq = 1"],
         {}, "supplier never pledges to its own goods"),
        ("pledge at the deadline", [f"UPDATE pledge_events SET server_at = (SELECT deadline_at FROM campaigns"
                                    f" WHERE id = {campaign_id}) WHERE campaign_id = {campaign_id} AND seq = 2"],
         {}, "no pledge at or after the deadline"),
        ("sent mail never delivered", [], {"sink_messages": messages[1:]}, "marked sent, never delivered"),
        ("mail delivered twice", [], {"sink_messages": messages + messages[:1]}, "sent at most once"),
    ]
    for name, statements, overrides, fragment in cases:
        options = {"receipts": receipts, "sink_messages": messages, **overrides}
        async with db.acquire() as connection:
            transaction = connection.transaction()
            await transaction.start()
            try:
                for statement in statements:
                    await connection.execute(statement)
                await _require_failure(connection, campaigns, options, name, fragment)
            finally:
                await transaction.rollback()

    state_key = campaigns.keys.campaign_state(campaign_id)
    committed = await campaigns.redis.hget(state_key, "committed")
    assert committed is not None
    await campaigns.redis.hset(state_key, "committed", int(committed) - 1)
    try:
        await _require_failure(db, campaigns, {}, "Redis total changed", "Redis and PostgreSQL agree")
    finally:
        await campaigns.redis.hset(state_key, "committed", committed)
    await check_campaign_invariants(db, campaigns, receipts=receipts, sink_messages=messages)


async def _require_failure(db, live, options: dict, name: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    try:
        await check_campaign_invariants(db, live, **options)
    except AssertionError as error:
        assert fragment in str(error), f"case {name!r}: expected {fragment!r} in the checker's message:\n{error}"
    else:
        pytest.fail(f"case {name!r}: the checker passed a corrupted campaign")

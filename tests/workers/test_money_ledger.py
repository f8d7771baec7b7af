"""The money ledger balances per order: sale rows sum to what the buyer paid, to the won."""

from __future__ import annotations

import asyncpg
import pytest

from engine.orders import cancel_unpaid_orders, confirm_deposit
from invariants import check_auction_invariants
from worker_testkit import bid_three, close_until_final, wait_until_due


async def ledger_sums(db: asyncpg.Pool, order_id: int) -> dict[str, int]:
    """Sum the order's ledger rows per entry kind."""
    rows = await db.fetch(
        "SELECT entry, sum(amount_won) AS total FROM money_ledger WHERE order_id = $1 GROUP BY entry", order_id
    )
    return {row["entry"]: row["total"] for row in rows}


async def amount_paid(db: asyncpg.Pool, order_id: int) -> int:
    return await db.fetchval(
        "SELECT CASE WHEN status = 'paid' THEN amount_won ELSE 0 END FROM orders WHERE id = $1", order_id
    )


async def sold_order(db, live, wk_settings, consumer, market) -> int:  # type: ignore[no-untyped-def]
    """Close a lot sold at 13,500 won (400 bp commission) and return its order id."""
    lot_id = await market.lot()
    await bid_three(market, lot_id)
    await wait_until_due(live, lot_id)
    assert await close_until_final(db, live, wk_settings, consumer, lot_id) == "sold"
    return await db.fetchval("SELECT o.id FROM orders o JOIN sales s ON s.id = o.sale_id WHERE s.lot_id = $1", lot_id)


async def test_paid_order_ledger_balances(db, live, wk_settings, consumer, market):
    """A sold and paid order: sale rows sum to the amount paid, split into supplier share and commission."""
    order_id = await sold_order(db, live, wk_settings, consumer, market)
    await confirm_deposit(db, market.staff, order_id)

    sums = await ledger_sums(db, order_id)
    paid = await amount_paid(db, order_id)
    assert paid == 13_500
    assert sums.get("sale", 0) + sums.get("sale_reversal", 0) == paid
    commission = sums.get("commission", 0) + sums.get("commission_reversal", 0)
    assert commission == 540
    supplier_share = paid - commission
    assert supplier_share + commission + sums.get("refund", 0) == paid
    await check_auction_invariants(db, live)


async def test_cancelled_unpaid_order_ledger_balances(db, live, wk_settings, consumer, market):
    """A sold order cancelled unpaid: its sale and its commission are both reversed, so every kind sums to 0."""
    order_id = await sold_order(db, live, wk_settings, consumer, market)
    await db.execute("UPDATE orders SET payment_due_at = now() - interval '1 second' WHERE id = $1", order_id)

    assert await cancel_unpaid_orders(db) == [order_id]

    sums = await ledger_sums(db, order_id)
    assert await amount_paid(db, order_id) == 0
    assert sums["sale"] == 13_500
    assert sums["sale_reversal"] == -13_500
    assert sums["sale"] + sums["sale_reversal"] == 0
    assert sums["commission"] + sums["commission_reversal"] == 0
    await check_auction_invariants(db, live)


async def test_sale_reversed_at_most_once(db, live, wk_settings, consumer, market):
    """A second sale reversal of one order is rejected by the ledger's unique index."""
    order_id = await sold_order(db, live, wk_settings, consumer, market)
    await db.execute("UPDATE orders SET payment_due_at = now() - interval '1 second' WHERE id = $1", order_id)
    assert await cancel_unpaid_orders(db) == [order_id]

    with pytest.raises(asyncpg.UniqueViolationError):
        await db.execute(
            "INSERT INTO money_ledger (order_id, supplier_id, entry, amount_won)"
            " SELECT order_id, supplier_id, 'sale_reversal', amount_won FROM money_ledger"
            " WHERE order_id = $1 AND entry = 'sale_reversal'",
            order_id,
        )

"""The money ledger balances per order: sale rows sum to what the buyer paid, to the won."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest

from engine.db import migrate
from engine.orders import cancel_unpaid_orders, confirm_deposit
from invariants import check_auction_invariants, check_orders_money, check_pledge_payments_money
from worker_testkit import bid_three, close_until_final, database_before_migration, make_market, wait_until_due

PLEDGE_LEDGER_MIGRATION = "0013_money_ledger_pledge_payments"


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


# -- the migration that gives pledge payments their money-ledger rows ------------------


@dataclass(frozen=True)
class EarlierPayments:
    """Rows an up-front campaign left before pledge payments had money-ledger rows."""

    campaign_id: int
    order_id: int
    settled: int
    refunded: int
    paid: int
    expired: int
    awaiting: int


async def _insert_earlier_payments(db: asyncpg.Pool) -> EarlierPayments:
    """Insert a closed up-front campaign as the code before the migration left it.

    One member's card payment settled into a paid order at 8,000 won, and the
    difference was refunded on the order. Another payment was refunded in full
    because its pledge was cancelled. The rest are paid and held, expired, and
    still awaiting a deposit.
    """
    market = await make_market(db, None)  # type: ignore[arg-type]  # no lot is loaded into Redis
    settler, quitter, holder, late = [await market.member() for _ in range(4)]
    campaign_id = await db.fetchval(
        """INSERT INTO campaigns (product_id, supplier_id, title, list_price_won, tiers, min_total_units,
                                  stock_cap_units, per_member_limit, start_at, deadline_at, payment_timing,
                                  status, final_unit_price_won, final_units, created_by, closed_at)
           VALUES ($1, $2, '광산 곱창김 공동구매', 10000, $3, 5, 100, 50, now() - interval '2 hours',
                   now() - interval '1 hour', 'up_front', 'succeeded', 8000, 10, $4, now() - interval '1 hour')
           RETURNING id""",
        market.product_id, market.supplier_id, [[5, 9_000], [10, 8_000]], market.staff.user_id,
    )

    async def payment(user_id: int, units: int, status: str, method: str = "card") -> int:
        paid = status in ("paid", "settled", "refunded")
        return await db.fetchval(
            """INSERT INTO pledge_payments (campaign_id, user_id, units, amount_won, method, status, paid_at)
               VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN now() - interval '90 minutes' END) RETURNING id""",
            campaign_id, user_id, units, units * 9_000, method, status, paid,
        )

    settled = await payment(settler.user_id, 4, "settled")
    refunded = await payment(quitter.user_id, 2, "refunded")
    paid = await payment(holder.user_id, 6, "paid")
    expired = await payment(late.user_id, 1, "expired", "bank_transfer")
    awaiting = await payment(late.user_id, 1, "awaiting_deposit", "bank_transfer")
    await db.execute(
        """INSERT INTO refunds (source_key, payment_id, user_id, amount_won, reason)
           VALUES ($1, $2, $3, 18000, 'pledge_cancelled')""",
        f"pledge_payment:{refunded}:refund", refunded, quitter.user_id,
    )
    order_id = await db.fetchval(
        """INSERT INTO orders (order_no, channel, buyer_id, supplier_id, amount_won, status, paid_at, source_key,
                               campaign_id, units, unit_price_won)
           VALUES ($1, 'groupbuy', $2, $3, 32000, 'paid', now() - interval '1 hour', $4, $5, 4, 8000)
           RETURNING id""",
        f"G{secrets.token_hex(4)}", settler.user_id, market.supplier_id,
        f"campaign:{campaign_id}:user:{settler.user_id}", campaign_id,
    )
    await db.execute(
        """INSERT INTO money_ledger (order_id, supplier_id, entry, amount_won, rate_bp)
           VALUES ($1, $2, 'sale', 32000, NULL), ($1, $2, 'commission', 1280, 400),
                  ($1, $2, 'overpayment', 4000, NULL), ($1, $2, 'refund', 4000, NULL)""",
        order_id, market.supplier_id,
    )
    await db.execute(
        """INSERT INTO refunds (source_key, order_id, payment_id, user_id, amount_won, reason)
           VALUES ($1, $2, $3, $4, 4000, 'price_difference')""",
        f"campaign:{campaign_id}:user:{settler.user_id}:difference", order_id, settled, settler.user_id,
    )
    return EarlierPayments(campaign_id, order_id, settled, refunded, paid, expired, awaiting)


async def test_migration_backfills_pledge_payment_rows(
    pg_server_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The migration writes each earlier pledge payment's rows once and links a settled payment to its order."""
    async with database_before_migration(pg_server_dsn, tmp_path, monkeypatch, PLEDGE_LEDGER_MIGRATION) as db:
        before = await _insert_earlier_payments(db)

        assert PLEDGE_LEDGER_MIGRATION in await migrate.apply_migrations(db)

        rows = await db.fetch(
            "SELECT pledge_payment_id, entry, amount_won, created_at FROM money_ledger"
            " WHERE pledge_payment_id IS NOT NULL ORDER BY id"
        )
        assert sorted((r["pledge_payment_id"], r["entry"], r["amount_won"]) for r in rows) == sorted([
            (before.settled, "payment", 36_000), (before.settled, "settlement", 36_000),
            (before.refunded, "payment", 18_000), (before.refunded, "refund", 18_000),
            (before.paid, "payment", 54_000),
        ])
        paid_at = await db.fetchval("SELECT paid_at FROM pledge_payments WHERE id = $1", before.settled)
        assert [r["created_at"] for r in rows if r["pledge_payment_id"] == before.settled][0] == paid_at
        links = dict(await db.fetch("SELECT id, order_id FROM pledge_payments"))
        assert links == {before.settled: before.order_id, before.refunded: None, before.paid: None,
                         before.expired: None, before.awaiting: None}
        order_entries = await db.fetch(
            "SELECT entry FROM money_ledger WHERE order_id = $1 ORDER BY id", before.order_id
        )
        assert [r["entry"] for r in order_entries] == ["sale", "commission", "overpayment", "refund"]
        await check_pledge_payments_money(db, [before.campaign_id])
        await check_orders_money(db, [before.order_id])

"""The money ledger of complex orders: one order per participant and supplier, balanced to the won."""

from __future__ import annotations

import asyncpg

from engine.commission import commission_won
from engine.complexorders import closing, rules
from engine.complexorders.model import ComplexOrder, fetch_complex, fetch_roster, totals_of
from engine.complexorders.service import ItemDraft, submit_participation
from invariants import check_orders_money
from tests.complexorders.conftest import ComplexFactory, ComplexWorld, actor

DUE_S = 48 * 3600
ODD_PRICE_WON = 7_777  # 4 units at 400 bp: 31,108 * 0.04 = 1,244.32, floored to 1,244


async def ledger_sums(db: asyncpg.Pool, order_id: int) -> dict[str, int]:
    rows = await db.fetch(
        "SELECT entry, sum(amount_won) AS total FROM money_ledger WHERE order_id = $1 GROUP BY entry", order_id
    )
    return {row["entry"]: row["total"] for row in rows}


async def assert_order_balances(db: asyncpg.Pool, order_id: int) -> dict[str, int]:
    """Check one order's ledger identity and return its sums per entry."""
    sums = await ledger_sums(db, order_id)
    amount_won = await db.fetchval("SELECT amount_won FROM orders WHERE id = $1", order_id)
    refunds_won = await db.fetchval("SELECT coalesce(sum(amount_won), 0) FROM refunds WHERE order_id = $1", order_id)
    lines = await db.fetch(
        """SELECT l.quantity, l.refunded_units, l.commission_won FROM complex_lines l
           JOIN complex_order_parts x ON x.participant_id = l.participant_id
           JOIN complex_items i ON i.id = l.item_id AND i.supplier_id = x.supplier_id
           WHERE x.order_id = $1""",
        order_id,
    )
    sale, refund = sums["sale"], sums.get("refund", 0)
    net_commission = sums["commission"] + sums.get("commission_reversal", 0)
    expected_commission = sum(
        line["commission_won"] - rules.commission_reversed_won(line["commission_won"], line["quantity"],
                                                               line["refunded_units"])
        for line in lines
    )
    payout = amount_won - net_commission

    assert sale - refund == amount_won, f"order {order_id}: sale {sale} - refunds {refund} != paid {amount_won}"
    assert refund == refunds_won
    assert net_commission == expected_commission
    assert payout + net_commission + refund == sale
    return sums


async def assert_complex_balances(db: asyncpg.Pool, complex_order: ComplexOrder) -> None:
    """Check every order of a complex order, and that the orders add up to its goods, fee and refunds."""
    order_ids = [row["order_id"] for row in await db.fetch(
        "SELECT order_id FROM complex_order_parts WHERE complex_order_id = $1", complex_order.id
    )]
    sales = refunds = 0
    for order_id in order_ids:
        sums = await assert_order_balances(db, order_id)
        sales += sums["sale"]
        refunds += sums.get("refund", 0)
    shipment = await db.fetchrow("SELECT goods_total_won, fee_won FROM complex_shipments WHERE complex_order_id = $1",
                                 complex_order.id)
    totals = totals_of(complex_order, await fetch_roster(db, complex_order))
    paid = await db.fetchval("SELECT sum(amount_won) FROM orders WHERE complex_order_id = $1", complex_order.id)
    assert sales == shipment["goods_total_won"] + shipment["fee_won"]
    assert refunds == totals.refunded_won
    assert paid == totals.paid_won + shipment["fee_won"]
    assert totals.reward_won == rules.reward_won(totals.paid_won, complex_order.reward_bp)


async def odd_complex(db: asyncpg.Pool, world: ComplexWorld, make_complex: ComplexFactory) -> ComplexOrder:
    """A complex order under the free-shipping total, with one product priced so commissions round."""
    product_id = await db.fetchval(
        "INSERT INTO products (supplier_id, category_id, name, kind, is_local, origin_label, unit, price_won, status)"
        " SELECT supplier_id, category_id, '광산 곱창김 (홀수 가격)', 'farm', true, '국내산', '1봉', $2, 'approved'"
        " FROM products WHERE id = $1 RETURNING id",
        world.product_ids[0], ODD_PRICE_WON,
    )
    return await make_complex(
        items=(ItemDraft(product_id, 5), ItemDraft(world.product_ids[1], 5)),
        free_shipping_from_won=100_000, shipping_fee_won=4_001, reward_bp=150,
    )


async def join(db, account, complex_order, building, unit, quantities):
    await submit_participation(db, actor(account), complex_order.id, quantities=quantities, building=building,
                               unit=unit, phone="01012345678")


async def closed_odd_complex(pg_pool, complex_world, make_complex) -> ComplexOrder:
    complex_order = await odd_complex(pg_pool, complex_world, make_complex)
    odd, noodles = (item.id for item in complex_order.items)
    members = complex_world.members
    await join(pg_pool, members[0], complex_order, "101", "101", {odd: 4, noodles: 1})
    await join(pg_pool, members[1], complex_order, "101", "102", {noodles: 3})
    await join(pg_pool, members[2], complex_order, "102", "101", {odd: 1})
    await closing.close_complex_order(pg_pool, complex_order.id, actor=actor(complex_world.coordinator),
                                      payment_due_s=DUE_S)
    closed = await fetch_complex(pg_pool, complex_order.id)
    assert closed is not None
    return closed


async def test_close_writes_one_order_per_supplier(pg_pool, complex_world: ComplexWorld,
                                                   make_complex: ComplexFactory) -> None:
    """Each participant gets one order per supplier; shipping parts sum to the fee; the ledger balances."""
    complex_order = await closed_odd_complex(pg_pool, complex_world, make_complex)
    orders = await pg_pool.fetch(
        """SELECT o.source_key, o.supplier_id, o.amount_won, x.goods_won, x.shipping_won, x.participant_id
           FROM orders o JOIN complex_order_parts x ON x.order_id = o.id
           WHERE o.complex_order_id = $1 ORDER BY x.participant_id, o.supplier_id""",
        complex_order.id,
    )
    first_pid = orders[0]["participant_id"]
    assert orders[0]["source_key"] == (
        f"complex:{complex_order.id}:participant:{first_pid}:supplier:{complex_world.supplier_ids[0]}"
    )
    assert len(orders) == 4
    assert all(row["supplier_id"] is not None for row in orders)
    # 4,001원 over three participants: 1,334 + 1,334 + 1,333; the first participant's
    # 1,334 splits 31,108 : 5,000 into 1,149 + 185.
    assert [row["goods_won"] for row in orders] == [4 * ODD_PRICE_WON, 5_000, 15_000, ODD_PRICE_WON]
    assert [row["shipping_won"] for row in orders] == [1_149, 185, 1_334, 1_333]
    assert sum(row["shipping_won"] for row in orders) == 4_001
    assert all(row["amount_won"] == row["goods_won"] + row["shipping_won"] for row in orders)

    first_odd = await pg_pool.fetchval(
        "SELECT o.id FROM orders o WHERE o.source_key = $1",
        f"complex:{complex_order.id}:participant:{first_pid}:supplier:{complex_world.supplier_ids[0]}",
    )
    sums = await assert_order_balances(pg_pool, first_odd)
    assert sums["commission"] == commission_won(4 * ODD_PRICE_WON, 400) == 1_244
    assert sums["sale"] == 4 * ODD_PRICE_WON + 1_149
    await assert_complex_balances(pg_pool, complex_order)
    await check_orders_money(pg_pool, [row["id"] for row in await pg_pool.fetch(
        "SELECT id FROM orders WHERE complex_order_id = $1", complex_order.id)])


async def test_ledger_balances_after_partial_refunds(pg_pool, complex_world: ComplexWorld,
                                                     make_complex: ComplexFactory) -> None:
    """After one and then two partial refunds each order still balances and the commission follows, floored."""
    complex_order = await closed_odd_complex(pg_pool, complex_world, make_complex)
    coordinator = actor(complex_world.coordinator)
    odd = complex_order.items[0].id
    roster = await fetch_roster(pg_pool, complex_order)
    household = next(row for row in roster if (row.building, row.unit) == ("101", "101"))
    odd_order = next(part for part in household.orders if part.supplier_id == complex_world.supplier_ids[0])

    parts = await closing.refund_shortage(pg_pool, coordinator, complex_order.id, household_id=household.household_id,
                                          item_id=odd, units=1, reason="파손", refund_key="ledger-1")
    assert [part.order_id for part in parts] == [odd_order.order_id]
    sums = await assert_order_balances(pg_pool, odd_order.order_id)
    assert sums["refund"] == ODD_PRICE_WON
    assert sums["commission_reversal"] == -(1_244 * 1 // 4) == -311
    await assert_complex_balances(pg_pool, complex_order)

    await closing.refund_shortage(pg_pool, coordinator, complex_order.id, household_id=household.household_id,
                                  item_id=odd, units=2, reason="수량 부족", refund_key="ledger-2")
    sums = await assert_order_balances(pg_pool, odd_order.order_id)
    assert sums["refund"] == 3 * ODD_PRICE_WON
    assert sums["commission_reversal"] == -(1_244 * 3 // 4) == -933
    assert await pg_pool.fetchval(
        "SELECT count(*) FROM money_ledger WHERE order_id = $1 AND entry = 'refund'", odd_order.order_id
    ) == 2
    # The other supplier's order of the same participant is untouched.
    noodle_order = next(part for part in household.orders if part.supplier_id == complex_world.supplier_ids[1])
    assert (await ledger_sums(pg_pool, noodle_order.order_id)).keys() == {"sale", "commission"}
    await assert_complex_balances(pg_pool, complex_order)

    # Refunding the last unit reverses the line's whole commission.
    await closing.refund_shortage(pg_pool, coordinator, complex_order.id, household_id=household.household_id,
                                  item_id=odd, units=1, reason="수량 부족", refund_key="ledger-3")
    sums = await assert_order_balances(pg_pool, odd_order.order_id)
    assert sums["commission"] + sums["commission_reversal"] == 0
    await assert_complex_balances(pg_pool, complex_order)
    await check_orders_money(pg_pool, [row["id"] for row in await pg_pool.fetch(
        "SELECT id FROM orders WHERE complex_order_id = $1", complex_order.id)])

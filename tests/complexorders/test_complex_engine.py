"""Complex orders against PostgreSQL: household limits under concurrency, the close, sheets and refunds."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from engine.complexorders import closing
from engine.complexorders.model import fetch_complex, fetch_roster, totals_of
from engine.complexorders.service import submit_participation
from engine.errors import DomainError
from tests.complexorders.conftest import ComplexFactory, ComplexWorld, actor

DUE_S = 48 * 3600


async def join(db, account, complex_order, building, unit, quantities, phone="01012345678"):
    return await submit_participation(
        db, actor(account), complex_order.id, quantities=quantities, building=building, unit=unit, phone=phone
    )


async def test_household_limit_shared_by_two_accounts(pg_pool, complex_world: ComplexWorld, make_complex: ComplexFactory) -> None:
    """Two accounts of 101동 1203호 share one limit of 3; a third unit of the second account is rejected."""
    complex_order = await make_complex()
    laver = complex_order.items[0].id
    first, second = complex_world.members[0], complex_world.members[1]
    await join(pg_pool, first, complex_order, "101", "1203", {laver: 2})
    with pytest.raises(DomainError) as caught:
        await join(pg_pool, second, complex_order, "101동", "1203호", {laver: 2})
    assert caught.value.code == "household_limit_exceeded"
    assert caught.value.detail["remaining"] == 1
    await join(pg_pool, second, complex_order, "101", "1203", {laver: 1})
    # Another household has its own limit.
    await join(pg_pool, complex_world.members[2], complex_order, "101", "1204", {laver: 3})


async def test_household_limit_holds_under_concurrency(pg_pool, complex_world: ComplexWorld, make_complex: ComplexFactory) -> None:
    """Twenty concurrent orders from four accounts of one household never pass the limit of 3."""
    complex_order = await make_complex()
    laver = complex_order.items[0].id
    accounts = complex_world.members[:4]

    async def attempt(index: int) -> str:
        account = accounts[index % len(accounts)]
        existing = await pg_pool.fetchval(
            "SELECT coalesce(sum(quantity), 0) FROM complex_lines l JOIN complex_participants p"
            " ON p.id = l.participant_id WHERE p.complex_order_id = $1 AND p.user_id = $2",
            complex_order.id, account.user_id,
        )
        try:
            await join(pg_pool, account, complex_order, "102", "302", {laver: existing + 1})
        except DomainError as error:
            return error.code
        return "accepted"

    outcomes = await asyncio.gather(*(attempt(index) for index in range(20)))
    total = await pg_pool.fetchval(
        "SELECT sum(l.quantity) FROM complex_lines l JOIN complex_households h ON h.id = l.household_id"
        " WHERE h.complex_order_id = $1 AND h.building = '102' AND h.unit = '302'",
        complex_order.id,
    )
    assert total <= 3
    assert set(outcomes) <= {"accepted", "household_limit_exceeded"}
    assert "household_limit_exceeded" in outcomes


async def _sample(pg_pool, complex_world: ComplexWorld, complex_order) -> None:
    """Households in 101동, 1001동 and 102동, one with two accounts."""
    laver, noodles, rice = (item.id for item in complex_order.items)
    members = complex_world.members
    await join(pg_pool, members[0], complex_order, "1001", "302", {laver: 1})
    await join(pg_pool, members[1], complex_order, "101", "1203", {laver: 2, noodles: 1})
    await join(pg_pool, members[2], complex_order, "101", "302", {noodles: 3})
    await join(pg_pool, members[3], complex_order, "102", "1501", {rice: 1})
    await join(pg_pool, members[4], complex_order, "101", "1203", {noodles: 1})


async def test_delivery_sheet_csv_line_by_line(pg_pool, complex_world: ComplexWorld, make_complex: ComplexFactory) -> None:
    """The CSV groups by 동 then 호 numerically, merges a household's accounts and adds subtotals."""
    complex_order = await make_complex()
    await _sample(pg_pool, complex_world, complex_order)
    await closing.close_complex_order(pg_pool, complex_order.id, actor=actor(complex_world.coordinator),
                                      payment_due_s=DUE_S)
    roster = await fetch_roster(pg_pool, complex_order)
    content = closing.delivery_sheet_csv(complex_order, closing.delivery_sheet(complex_order, roster))
    assert content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(content[3:].decode("utf-8"), newline="")))
    assert rows == [
        ["동", "호", "상품", "단위", "수량", "금액(원)", "구분"],
        ["101", "302", "우리밀 국수", "1봉", "3", "15000", ""],
        ["101", "1203", "광산 햇김 선물세트", "1세트", "2", "60000", ""],
        ["101", "1203", "우리밀 국수", "1봉", "2", "10000", ""],
        ["101동 소계", "", "", "", "7", "85000", ""],
        ["102", "1501", "광산 햅쌀", "10kg", "1", "42000", ""],
        ["102동 소계", "", "", "", "1", "42000", ""],
        ["1001", "302", "광산 햇김 선물세트", "1세트", "1", "30000", ""],
        ["1001동 소계", "", "", "", "1", "30000", ""],
        ["합계", "", "", "", "9", "157000", ""],
    ]
    assert b"\r\n" in content

    picks = closing.pick_lists(complex_order, roster)
    assert [(pick.supplier_name, [(line.name, line.units) for line in pick.lines]) for pick in picks] == [
        ("광산 김 영어조합", [("광산 햇김 선물세트", 3)]),
        ("송정 우리밀", [("우리밀 국수", 5), ("광산 햅쌀", 1)]),
    ]


async def test_roster_rows_sorted_with_names(pg_pool, complex_world: ComplexWorld, make_complex: ComplexFactory) -> None:
    """The coordinator's roster lists each participant by 동 then 호 with name, phone and amount."""
    complex_order = await make_complex()
    await _sample(pg_pool, complex_world, complex_order)
    roster = await fetch_roster(pg_pool, complex_order)
    assert [(row.label("apartment", masked=False), row.display_name, row.goods_won) for row in roster] == [
        ("101동 302호", "박정민", 15_000),
        ("101동 1203호", "이서연", 65_000),
        ("101동 1203호", "정하늘", 5_000),
        ("102동 1501호", "최유진", 42_000),
        ("1001동 302호", "김민수", 30_000),
    ]
    assert [row.label("apartment", masked=True) for row in roster][:2] == ["101동 3**호", "101동 12**호"]
    totals = totals_of(complex_order, roster)
    assert (totals.participants, totals.households, totals.goods_won) == (5, 4, 157_000)


async def test_close_once_when_coordinator_and_worker_race(pg_pool, complex_world: ComplexWorld, make_complex: ComplexFactory) -> None:
    """Of a coordinator close and five worker rounds at the same time, one closes; one order per participant and supplier."""
    complex_order = await make_complex()
    await _sample(pg_pool, complex_world, complex_order)
    await pg_pool.execute("UPDATE complex_orders SET closes_at = now() - interval '1 second' WHERE id = $1",
                          complex_order.id)

    async def coordinator_close() -> str:
        try:
            await closing.close_complex_order(pg_pool, complex_order.id, actor=actor(complex_world.coordinator),
                                              payment_due_s=DUE_S)
        except DomainError as error:
            return error.code
        return "closed"

    results = await asyncio.gather(
        coordinator_close(),
        *(closing.close_due_complex_orders(pg_pool, payment_due_s=DUE_S) for _ in range(5)),
    )
    closes = (results[0] == "closed") + sum(complex_order.id in ids for ids in results[1:])
    assert closes == 1
    orders = await pg_pool.fetch(
        "SELECT source_key, amount_won FROM orders WHERE complex_order_id = $1 ORDER BY source_key", complex_order.id
    )
    # 이서연 (101동 1203호) ordered laver and noodles from two suppliers: two orders.
    assert len(orders) == 6
    assert len({row["source_key"] for row in orders}) == 6
    assert await pg_pool.fetchval(
        "SELECT count(*) FROM money_ledger m JOIN orders o ON o.id = m.order_id"
        " WHERE o.complex_order_id = $1 AND m.entry = 'commission'", complex_order.id,
    ) == 6
    mails = await pg_pool.fetchval(
        "SELECT count(*) FROM outbox WHERE event_key = $1", f"complex:{complex_order.id}:closed"
    )
    assert mails == 5


async def test_shipping_waived_above_threshold_and_charged_below(pg_pool, complex_world: ComplexWorld, make_complex: ComplexFactory) -> None:
    """157,000원 ships free; a 35,000원 order pays 4,000원 split evenly over its two participants."""
    large = await make_complex()
    await _sample(pg_pool, complex_world, large)
    result = await closing.close_complex_order(pg_pool, large.id, actor=actor(complex_world.coordinator),
                                               payment_due_s=DUE_S)
    assert result.shipping is not None and result.shipping.waived and result.shipping.fee_won == 0

    small = await make_complex()
    laver, noodles, _ = (item.id for item in small.items)
    await join(pg_pool, complex_world.members[0], small, "101", "101", {laver: 1})
    await join(pg_pool, complex_world.members[1], small, "101", "102", {noodles: 1})
    result = await closing.close_complex_order(pg_pool, small.id, actor=actor(complex_world.coordinator),
                                               payment_due_s=DUE_S)
    assert result.shipping == closing.rules.Shipping(35_000, 4_000, False)
    amounts = await pg_pool.fetch(
        "SELECT amount_won FROM orders WHERE complex_order_id = $1 ORDER BY id", small.id
    )
    assert [row["amount_won"] for row in amounts] == [32_000, 7_000]
    shipment = await pg_pool.fetchrow("SELECT * FROM complex_shipments WHERE complex_order_id = $1", small.id)
    assert (shipment["fee_won"], shipment["waived"]) == (4_000, False)


async def test_close_below_minimum_fails_without_orders(pg_pool, complex_world: ComplexWorld, make_complex: ComplexFactory) -> None:
    """A complex order under its minimum total fails, creates no order and mails each participant."""
    complex_order = await make_complex(min_total_won=100_000)
    laver = complex_order.items[0].id
    await join(pg_pool, complex_world.members[0], complex_order, "101", "101", {laver: 1})
    result = await closing.close_complex_order(pg_pool, complex_order.id, actor=actor(complex_world.coordinator),
                                               payment_due_s=DUE_S)
    assert result.status == "failed"
    assert await pg_pool.fetchval("SELECT count(*) FROM orders WHERE complex_order_id = $1", complex_order.id) == 0
    assert await pg_pool.fetchval("SELECT count(*) FROM outbox WHERE event_key = $1",
                                  f"complex:{complex_order.id}:failed") == 1


async def test_partial_refund_reduces_amount_and_reward(pg_pool, complex_world: ComplexWorld, make_complex: ComplexFactory) -> None:
    """A one-unit shortage refund cuts the household's order by 30,000원 and the 1.5 % reward with it."""
    complex_order = await make_complex(reward_bp=150)
    await _sample(pg_pool, complex_world, complex_order)
    coordinator = actor(complex_world.coordinator)
    await closing.close_complex_order(pg_pool, complex_order.id, actor=coordinator, payment_due_s=DUE_S)
    roster = await fetch_roster(pg_pool, complex_order)
    assert totals_of(complex_order, roster).reward_won == 157_000 * 150 // 10_000
    household = next(row for row in roster if row.building == "101" and row.unit == "1203")
    laver = complex_order.items[0].id

    parts = await closing.refund_shortage(pg_pool, coordinator, complex_order.id, household_id=household.household_id,
                                          item_id=laver, units=1, reason="파손", refund_key="k1")
    assert [(part.units, part.amount_won) for part in parts] == [(1, 30_000)]
    again = await closing.refund_shortage(pg_pool, coordinator, complex_order.id, household_id=household.household_id,
                                          item_id=laver, units=1, reason="파손", refund_key="k1")
    assert [part.source_key for part in again] == [part.source_key for part in parts]

    # The laver is the first supplier's: that order alone goes from 60,000원 to 30,000원.
    order = await pg_pool.fetchrow("SELECT amount_won, supplier_id FROM orders WHERE id = $1", parts[0].order_id)
    assert order["amount_won"] == 60_000 - 30_000
    assert order["supplier_id"] == complex_world.supplier_ids[0]
    assert await pg_pool.fetchval("SELECT count(*) FROM refunds WHERE order_id = $1", parts[0].order_id) == 1
    roster = await fetch_roster(pg_pool, complex_order)
    totals = totals_of(complex_order, roster)
    assert totals.paid_won == 127_000
    assert totals.reward_won == 127_000 * 150 // 10_000

    with pytest.raises(DomainError) as caught:
        await closing.refund_shortage(pg_pool, coordinator, complex_order.id, household_id=household.household_id,
                                      item_id=laver, units=2, reason="파손", refund_key="k2")
    assert caught.value.code == "refund_too_large"


async def test_arrived_mails_each_participant_once(pg_pool, smtp_sink, complex_world: ComplexWorld, make_complex: ComplexFactory) -> None:
    """Marking the goods arrived twice queues one mail per participant."""
    complex_order = await make_complex()
    await _sample(pg_pool, complex_world, complex_order)
    coordinator = actor(complex_world.coordinator)
    await closing.close_complex_order(pg_pool, complex_order.id, actor=coordinator, payment_due_s=DUE_S)
    assert await closing.mark_arrived(pg_pool, coordinator, complex_order.id) == 5
    assert await closing.mark_arrived(pg_pool, coordinator, complex_order.id) == 0
    rows = await pg_pool.fetch("SELECT recipient FROM outbox WHERE event_key = $1", f"complex:{complex_order.id}:arrived")
    assert len(rows) == 5


async def test_join_after_close_rejected(pg_pool, complex_world: ComplexWorld, make_complex: ComplexFactory) -> None:
    """Nothing is accepted once the closing time has passed, even before the worker runs."""
    complex_order = await make_complex()
    await pg_pool.execute("UPDATE complex_orders SET closes_at = now() - interval '1 second' WHERE id = $1",
                          complex_order.id)
    with pytest.raises(DomainError) as caught:
        await join(pg_pool, complex_world.members[0], complex_order, "101", "101", {complex_order.items[0].id: 1})
    assert caught.value.code == "complex_not_open"


async def test_non_coordinator_cannot_close(pg_pool, complex_world: ComplexWorld, make_complex: ComplexFactory) -> None:
    """A member who is not this order's coordinator gets forbidden."""
    complex_order = await make_complex()
    with pytest.raises(DomainError) as caught:
        await closing.close_complex_order(pg_pool, complex_order.id, actor=actor(complex_world.members[0]),
                                          payment_due_s=DUE_S)
    assert caught.value.code == "forbidden"

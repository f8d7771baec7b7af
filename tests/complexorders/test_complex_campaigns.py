"""Campaign items of complex orders: neighbours' lines are pledges in the running campaign."""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
from datetime import timedelta

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio

from engine.complexorders import campaign_lines, closing
from engine.complexorders.model import ComplexOrder, fetch_roster
from engine.complexorders.service import ItemDraft, submit_participation
from engine.config import Settings
from engine.errors import DomainError
from engine.groupbuy.campaigns import CampaignDraft, create_campaign
from engine.groupbuy.live import CampaignLive, PledgeOutcome
from engine.groupbuy.service import submit_pledge
from engine.keys import Keys
from tests.complexorders.conftest import ComplexFactory, ComplexWorld, actor

DUE_S = 48 * 3600


@pytest_asyncio.fixture
async def campaigns(redis_client: redis.asyncio.Redis, settings: Settings) -> CampaignLive:
    return CampaignLive(redis_client, Keys(settings.redis_prefix, settings.redis_shards))


async def running_campaign(db: asyncpg.Pool, live: CampaignLive, world: ComplexWorld, *, per_member_limit: int = 10) -> int:
    """An open campaign on a new product of the first supplier: 10,000원, 9,000원 from 5 units, 8,000원 from 10."""
    product_id = await db.fetchval(
        "INSERT INTO products (supplier_id, category_id, name, kind, is_local, origin_label, unit, price_won, status)"
        " SELECT supplier_id, category_id, '광산 곱창김 공동구매용', 'farm', true, '국내산', '1박스', 10000, 'approved'"
        " FROM products WHERE id = $1 RETURNING id",
        world.product_ids[0],
    )
    now = await db.fetchval("SELECT now()")
    return await create_campaign(db, live, actor(world.staff), CampaignDraft(
        product_id=product_id, title="곱창김 공동구매", list_price_won=10_000, tiers=[[5, 9_000], [10, 8_000]],
        min_total_units=5, stock_cap_units=100, per_member_limit=per_member_limit,
        start_at=now - timedelta(seconds=1), deadline_at=now + timedelta(hours=1),
    ))


async def campaign_complex(db, live, world, make_complex, **campaign_options) -> tuple[ComplexOrder, int]:
    campaign_id = await running_campaign(db, live, world, **campaign_options)
    complex_order = await make_complex(items=(ItemDraft(world.product_ids[1], 5),
                                              ItemDraft(None, 4, campaign_id=campaign_id)))
    return complex_order, campaign_id


async def order(db, live, account, complex_order, household, quantities):
    building, unit = household
    return await submit_participation(db, actor(account), complex_order.id, quantities=quantities,
                                      building=building, unit=unit, phone="01055556666", campaigns=live)


async def committed(live: CampaignLive, campaign_id: int) -> int:
    snapshot = await live.snapshot(campaign_id)
    assert snapshot is not None
    return snapshot.committed_units


async def test_campaign_item_copies_at_most_price(pg_pool, campaigns, complex_world: ComplexWorld,
                                                  make_complex: ComplexFactory) -> None:
    """A campaign item is the campaign's product at its "at most" price (the price at the minimum)."""
    complex_order, campaign_id = await campaign_complex(pg_pool, campaigns, complex_world, make_complex)
    item = complex_order.items[1]
    assert item.campaign_id == campaign_id
    assert item.unit_price_won == 9_000
    assert item.supplier_id == complex_world.supplier_ids[0]


async def test_campaign_line_moves_committed_units(pg_pool, campaigns, complex_world: ComplexWorld,
                                                   make_complex: ComplexFactory) -> None:
    """A neighbour's line pledges in the campaign; changing and cancelling it move the campaign's total."""
    complex_order, campaign_id = await campaign_complex(pg_pool, campaigns, complex_world, make_complex)
    campaign_item = complex_order.items[1].id
    member = complex_world.members[0]

    await order(pg_pool, campaigns, member, complex_order, ("101", "101"), {campaign_item: 3})
    assert await committed(campaigns, campaign_id) == 3
    assert (await campaigns.pledges(campaign_id)) == {member.user_id: 3}

    await order(pg_pool, campaigns, member, complex_order, ("101", "101"), {campaign_item: 1})
    assert await committed(campaigns, campaign_id) == 1

    await order(pg_pool, campaigns, member, complex_order, ("101", "101"), {campaign_item: 0})
    assert await committed(campaigns, campaign_id) == 0


async def test_campaign_household_limit_across_accounts(pg_pool, campaigns, complex_world: ComplexWorld,
                                                        make_complex: ComplexFactory) -> None:
    """Two accounts of one household share the limit of 4; a rejected line pledges nothing."""
    complex_order, campaign_id = await campaign_complex(pg_pool, campaigns, complex_world, make_complex)
    campaign_item = complex_order.items[1].id
    first, second = complex_world.members[1], complex_world.members[2]

    await order(pg_pool, campaigns, first, complex_order, ("103", "1502"), {campaign_item: 3})
    with pytest.raises(DomainError) as caught:
        await order(pg_pool, campaigns, second, complex_order, ("103", "1502"), {campaign_item: 2})
    assert caught.value.code == "household_limit_exceeded"
    assert caught.value.detail["remaining"] == 1
    assert await committed(campaigns, campaign_id) == 3

    await order(pg_pool, campaigns, second, complex_order, ("103", "1502"), {campaign_item: 1})
    assert await committed(campaigns, campaign_id) == 4
    assert await campaigns.pledges(campaign_id) == {first.user_id: 3, second.user_id: 1}


async def test_campaign_rejection_saves_no_line(pg_pool, campaigns, complex_world: ComplexWorld,
                                                make_complex: ComplexFactory) -> None:
    """A line over the campaign's member limit is rejected whole: no complex line and no pledge."""
    complex_order, campaign_id = await campaign_complex(pg_pool, campaigns, complex_world, make_complex,
                                                        per_member_limit=2)
    noodles, campaign_item = (item.id for item in complex_order.items)
    member = complex_world.members[3]
    with pytest.raises(DomainError) as caught:
        await order(pg_pool, campaigns, member, complex_order, ("104", "101"), {noodles: 1, campaign_item: 3})
    assert caught.value.code == "campaign_pledge_rejected"
    assert caught.value.detail["reason"] == "over_member_limit"
    assert await committed(campaigns, campaign_id) == 0
    assert await fetch_roster(pg_pool, complex_order) == []


async def test_close_leaves_campaign_goods_to_campaign(pg_pool, campaigns, complex_world: ComplexWorld,
                                                       make_complex: ComplexFactory) -> None:
    """The close orders only catalogue goods; pick list and delivery sheet list the campaign goods, marked."""
    complex_order, campaign_id = await campaign_complex(pg_pool, campaigns, complex_world, make_complex)
    noodles, campaign_item = (item.id for item in complex_order.items)
    members = complex_world.members
    await order(pg_pool, campaigns, members[4], complex_order, ("101", "1203"), {noodles: 2, campaign_item: 2})
    await order(pg_pool, campaigns, members[5], complex_order, ("102", "301"), {campaign_item: 1})
    result = await closing.close_complex_order(pg_pool, complex_order.id, actor=actor(complex_world.coordinator),
                                               payment_due_s=DUE_S)
    assert result.status == "closed"
    assert await committed(campaigns, campaign_id) == 3

    orders = await pg_pool.fetch("SELECT buyer_id, supplier_id, amount_won FROM orders WHERE complex_order_id = $1",
                                 complex_order.id)
    assert [(row["buyer_id"], row["supplier_id"]) for row in orders] == [
        (members[4].user_id, complex_world.supplier_ids[1])
    ]
    assert orders[0]["amount_won"] == 10_000 + 4_000

    roster = await fetch_roster(pg_pool, complex_order)
    picks = closing.pick_lists(complex_order, roster)
    campaign_pick = next(line for pick in picks for line in pick.lines if line.item_id == campaign_item)
    assert (campaign_pick.units, campaign_pick.campaign_id, campaign_pick.amount_won) == (3, campaign_id, 0)

    content = closing.delivery_sheet_csv(complex_order, closing.delivery_sheet(complex_order, roster))
    rows = list(csv.reader(io.StringIO(content[3:].decode("utf-8"), newline="")))
    assert rows == [
        ["동", "호", "상품", "단위", "수량", "금액(원)", "구분"],
        ["101", "1203", "우리밀 국수", "1봉", "2", "10000", ""],
        ["101", "1203", "광산 곱창김 공동구매용", "1박스", "2", "0", "공동구매"],
        ["101동 소계", "", "", "", "4", "10000", ""],
        ["102", "301", "광산 곱창김 공동구매용", "1박스", "1", "0", "공동구매"],
        ["102동 소계", "", "", "", "1", "0", ""],
        ["합계", "", "", "", "5", "10000", ""],
    ]

    with pytest.raises(DomainError) as caught:
        await closing.refund_shortage(pg_pool, actor(complex_world.coordinator), complex_order.id,
                                      household_id=roster[0].household_id, item_id=campaign_item, units=1,
                                      reason="파손", refund_key="campaign-1")
    assert caught.value.code == "campaign_item_not_refundable"


async def test_failed_close_releases_campaign_lines(pg_pool, campaigns, redis_client, settings,
                                                    complex_world: ComplexWorld, make_complex: ComplexFactory) -> None:
    """A complex order below its minimum takes its neighbours' campaign units out of the campaign."""
    campaign_id = await running_campaign(pg_pool, campaigns, complex_world)
    complex_order = await make_complex(items=(ItemDraft(complex_world.product_ids[1], 5),
                                              ItemDraft(None, 4, campaign_id=campaign_id)),
                                       min_total_won=500_000)
    noodles, campaign_item = (item.id for item in complex_order.items)
    await order(pg_pool, campaigns, complex_world.members[6], complex_order, ("105", "101"),
                {noodles: 1, campaign_item: 2})
    assert await committed(campaigns, campaign_id) == 2
    result = await closing.close_complex_order(pg_pool, complex_order.id, actor=actor(complex_world.coordinator),
                                               payment_due_s=DUE_S, redis=redis_client, keys=campaigns.keys)
    assert result.status == "failed"
    assert await committed(campaigns, campaign_id) == 0


class PagePledgeBetween(CampaignLive):
    """A CampaignLive that sends one of the member's campaign-page pledges before each compare-and-set pledge.

    A complex line reads the member's total and then pledges with that total as
    `expected_units`, so each page pledge sent here lands between the read and the
    pledge, as one from another browser tab could.
    """

    def __init__(self, live: CampaignLive, page_totals: list[int]) -> None:
        super().__init__(live.redis, live.keys)
        self.page_totals = list(page_totals)

    async def pledge(self, campaign_id: int, *, user_id: int, client_id: str, units: int | str,
                     pledger_supplier_id: int | None = None, expected_units: int | None = None) -> PledgeOutcome:
        if expected_units is not None and self.page_totals:
            page = await super().pledge(campaign_id, user_id=user_id, client_id=f"page-{secrets.token_hex(6)}",
                                        units=self.page_totals.pop(0))
            assert page.accepted, page.code
        return await super().pledge(campaign_id, user_id=user_id, client_id=client_id, units=units,
                                    pledger_supplier_id=pledger_supplier_id, expected_units=expected_units)


async def line_quantities(db: asyncpg.Pool, complex_order: ComplexOrder) -> dict[int, int]:
    rows = await db.fetch(
        """SELECT p.user_id, l.quantity FROM complex_lines l JOIN complex_participants p ON p.id = l.participant_id
           WHERE p.complex_order_id = $1""",
        complex_order.id,
    )
    return {row["user_id"]: row["quantity"] for row in rows}


async def ledger(live: CampaignLive, campaign_id: int) -> list[dict[str, str]]:
    entries = await live.redis.xrange(live.keys.campaign_ledger_stream_for(campaign_id))
    return [{key.decode(): value.decode() for key, value in fields.items()} for _, fields in entries]


async def test_interleaved_page_pledge_kept(pg_pool, campaigns, complex_world: ComplexWorld,
                                                      make_complex: ComplexFactory) -> None:
    """A page pledge that lands between the line's read and its pledge is kept, and the line adds on top."""
    complex_order, campaign_id = await campaign_complex(pg_pool, campaigns, complex_world, make_complex)
    campaign_item = complex_order.items[1].id
    member = complex_world.members[7]
    assert (await submit_pledge(pg_pool, campaigns, actor(member), campaign_id, 2, "page-first")).accepted

    racing = PagePledgeBetween(campaigns, page_totals=[4])
    await order(pg_pool, racing, member, complex_order, ("106", "101"), {campaign_item: 3})

    assert racing.page_totals == []
    assert await campaigns.pledges(campaign_id) == {member.user_id: 4 + 3}
    assert await committed(campaigns, campaign_id) == 7
    assert await line_quantities(pg_pool, complex_order) == {member.user_id: 3}
    last = (await ledger(campaigns, campaign_id))[-1]
    assert last["client"].startswith("complex-")
    assert (last["units"], last["delta"]) == ("7", "3")


async def test_line_succeeds_on_last_attempt(pg_pool, campaigns, complex_world: ComplexWorld,
                                               make_complex: ComplexFactory) -> None:
    """A line whose pledge changed before every attempt but the last is still applied on the last attempt."""
    complex_order, campaign_id = await campaign_complex(pg_pool, campaigns, complex_world, make_complex)
    campaign_item = complex_order.items[1].id
    member = complex_world.members[7]
    page_totals = [1 + attempt % 2 for attempt in range(campaign_lines.MAX_PLEDGE_ATTEMPTS - 1)]

    racing = PagePledgeBetween(campaigns, page_totals=page_totals)
    await order(pg_pool, racing, member, complex_order, ("106", "102"), {campaign_item: 2})

    assert await campaigns.pledges(campaign_id) == {member.user_id: page_totals[-1] + 2}
    assert await line_quantities(pg_pool, complex_order) == {member.user_id: 2}


async def test_line_gives_up_after_conflicts(pg_pool, campaigns, complex_world: ComplexWorld,
                                                      make_complex: ComplexFactory) -> None:
    """A pledge that changes before every attempt ends in `campaign_pledge_conflict`, and the line is not saved."""
    complex_order, campaign_id = await campaign_complex(pg_pool, campaigns, complex_world, make_complex)
    noodles, campaign_item = (item.id for item in complex_order.items)
    member = complex_world.members[7]
    page_totals = [1 + attempt % 2 for attempt in range(campaign_lines.MAX_PLEDGE_ATTEMPTS)]

    racing = PagePledgeBetween(campaigns, page_totals=page_totals)
    with pytest.raises(DomainError) as caught:
        await order(pg_pool, racing, member, complex_order, ("106", "103"), {noodles: 1, campaign_item: 2})

    assert caught.value.code == "campaign_pledge_conflict"
    assert caught.value.detail["campaign_id"] == campaign_id
    assert racing.page_totals == []
    assert await campaigns.pledges(campaign_id) == {member.user_id: page_totals[-1]}
    assert await fetch_roster(pg_pool, complex_order) == []
    clients = [entry["client"] for entry in await ledger(campaigns, campaign_id)]
    assert all(client.startswith("page-") for client in clients)


async def test_revert_keeps_page_pledge(pg_pool, campaigns, complex_world: ComplexWorld,
                                        make_complex: ComplexFactory) -> None:
    """Reverting a line takes out only its units, so a page pledge sent after the line is kept."""
    campaign_id = await running_campaign(pg_pool, campaigns, complex_world)
    member = actor(complex_world.members[7])
    assert (await submit_pledge(pg_pool, campaigns, member, campaign_id, 2, "page-first")).accepted
    change = await campaign_lines.change_pledge(pg_pool, campaigns, member, campaign_id=campaign_id,
                                                item_id=1, delta_units=3)
    assert change is not None
    assert (change.previous_total, change.new_total) == (2, 5)
    assert (await submit_pledge(pg_pool, campaigns, member, campaign_id, 6, "page-second")).accepted

    await campaign_lines.revert_pledges(pg_pool, campaigns, member, [change])

    assert await campaigns.pledges(campaign_id) == {member.user_id: 6 - 3}


async def test_concurrent_pledges_lose_nothing(pg_pool, campaigns, complex_world: ComplexWorld,
                                                             make_complex: ComplexFactory) -> None:
    """Line changes racing each other and a page pledge each move the total by exactly their own units."""
    campaign_id = await running_campaign(pg_pool, campaigns, complex_world, per_member_limit=20)
    member = actor(complex_world.members[7])
    deltas = [1, 2, 3, 4]

    results = await asyncio.gather(
        *(campaign_lines.change_pledge(pg_pool, campaigns, member, campaign_id=campaign_id, item_id=number,
                                       delta_units=delta)
          for number, delta in enumerate(deltas, start=1)),
        submit_pledge(pg_pool, campaigns, member, campaign_id, 10, "page-racing"),
    )

    changes, page = results[:-1], results[-1]
    assert page.accepted
    for change, delta in zip(changes, deltas):
        assert change is not None
        assert change.new_total - change.previous_total == delta
    entries = await ledger(campaigns, campaign_id)
    line_entries = [entry for entry in entries if entry["client"].startswith("complex-")]
    assert sorted(int(entry["delta"]) for entry in line_entries) == deltas
    page_position = next(i for i, entry in enumerate(entries) if entry["client"] == "page-racing")
    after_page = sum(int(entry["delta"]) for entry in entries[page_position + 1:])
    assert await campaigns.pledges(campaign_id) == {member.user_id: 10 + after_page}


class ReplyLostOnce(CampaignLive):
    """A CampaignLive whose first compare-and-set pledge is applied in Redis but whose reply is lost."""

    def __init__(self, live: CampaignLive) -> None:
        super().__init__(live.redis, live.keys)
        self.lost = 0

    async def pledge(self, campaign_id: int, *, user_id: int, client_id: str, units: int | str,
                     pledger_supplier_id: int | None = None, expected_units: int | None = None) -> PledgeOutcome:
        outcome = await super().pledge(campaign_id, user_id=user_id, client_id=client_id, units=units,
                                       pledger_supplier_id=pledger_supplier_id, expected_units=expected_units)
        if expected_units is not None and not self.lost:
            assert outcome.accepted, outcome.code
            self.lost += 1
            raise ConnectionError("reply lost after the script ran")
        return outcome


async def test_lost_reply_moves_pledge_once(pg_pool, campaigns, complex_world: ComplexWorld,
                                            make_complex: ComplexFactory) -> None:
    """A pledge applied whose reply was lost is sent again with its client id and counted once."""
    complex_order, campaign_id = await campaign_complex(pg_pool, campaigns, complex_world, make_complex)
    campaign_item = complex_order.items[1].id
    member = complex_world.members[7]
    assert (await submit_pledge(pg_pool, campaigns, actor(member), campaign_id, 2, "page-first")).accepted

    lossy = ReplyLostOnce(campaigns)
    await order(pg_pool, lossy, member, complex_order, ("106", "104"), {campaign_item: 3})

    assert lossy.lost == 1
    assert await campaigns.pledges(campaign_id) == {member.user_id: 2 + 3}
    assert await line_quantities(pg_pool, complex_order) == {member.user_id: 3}
    complex_entries = [entry for entry in await ledger(campaigns, campaign_id) if entry["client"].startswith("complex-")]
    assert [(entry["units"], entry["delta"]) for entry in complex_entries] == [("5", "3")]

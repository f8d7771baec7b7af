"""Tests for the demo group-buy campaigns and the demo complex order, against real PostgreSQL and Redis."""

from __future__ import annotations

import secrets
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import redis.asyncio

from engine.actors import MEMBER, Actor
from engine.auction.ledger import LedgerConsumer
from engine.complexorders import rules as complex_rules
from engine.demo import load_demo_data
from engine.demo_catalogue import CAMPAIGNS, COMPLEX_ORDER, NEIGHBOURS, DemoCampaign
from engine.config import Settings
from engine.groupbuy.campaigns import CampaignDraft, check_draft, load_campaign, terms_from_row
from engine.groupbuy.closing import close_due_campaigns, keep_campaigns_loaded
from engine.groupbuy.ledger import CAMPAIGN_LEDGER
from engine.groupbuy.live import CampaignLive
from engine.groupbuy.rules import at_most_price_won, next_tier, unit_price_for
from engine.groupbuy.service import submit_pledge
from engine.keys import Keys

NOW = datetime(2025, 9, 1, 9, 0, tzinfo=timezone.utc)
KST = ZoneInfo("Asia/Seoul")
SHARDS = 4


@pytest.fixture
def live(redis_client: redis.asyncio.Redis, redis_prefix: str) -> CampaignLive:
    """A CampaignLive under a key prefix of its own, because every demo database numbers campaigns from 1."""
    return CampaignLive(redis_client, Keys(f"{redis_prefix}:demo{secrets.token_hex(4)}", SHARDS))


async def _campaigns(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM campaigns ORDER BY id")


async def _events(pool: asyncpg.Pool, campaign_id: int) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM pledge_events WHERE campaign_id = $1 ORDER BY seq", campaign_id)


def _replay(events: list[asyncpg.Record]) -> dict[int, int]:
    pledges: dict[int, int] = {}
    for event in events:
        if event["units"]:
            pledges[event["user_id"]] = event["units"]
        else:
            pledges.pop(event["user_id"], None)
    return pledges


# -- campaigns ------------------------------------------------------------------------------


async def test_demo_campaigns_rows(demo_pool: asyncpg.Pool) -> None:
    """The load inserts 4 open campaigns by the staff account, each on its catalogue product's supplier."""
    await load_demo_data(demo_pool, now=NOW)
    staff_id = await demo_pool.fetchval("SELECT id FROM users WHERE email = 'staff@jangteo.example'")
    product_suppliers = dict(await demo_pool.fetch("SELECT id, supplier_id FROM products"))

    campaigns = await _campaigns(demo_pool)

    assert len(campaigns) == 4
    for campaign in campaigns:
        assert campaign["status"] == "open", campaign["title"]
        assert campaign["start_at"] < NOW, campaign["title"]
        assert campaign["deadline_at"] > NOW, campaign["title"]
        assert campaign["created_by"] == staff_id, campaign["title"]
        assert campaign["supplier_id"] == product_suppliers[campaign["product_id"]], campaign["title"]
        assert campaign["title"].startswith("[공동구매] "), campaign["title"]
        assert campaign["list_price_won"] > campaign["tiers"][0][1], campaign["title"]
        assert campaign["min_total_units"] <= campaign["stock_cap_units"], campaign["title"]


async def test_demo_campaigns_best_sellers(demo_pool: asyncpg.Pool) -> None:
    """The campaigns sell laver, kimchi, rice and fruit."""
    await load_demo_data(demo_pool, now=NOW)

    codes = await demo_pool.fetch(
        "SELECT cat.code FROM campaigns c JOIN products p ON p.id = c.product_id"
        " JOIN categories cat ON cat.id = p.category_id ORDER BY c.id"
    )

    assert sorted(row["code"] for row in codes) == sorted(
        ["specialty-laver", "food-kimchi", "food-rice", "produce-fruit"]
    )


async def test_demo_campaigns_variety(demo_pool: asyncpg.Pool) -> None:
    """One campaign is 1-2 units short of a tier, one closes within minutes, one is up front, one closes when sold out."""
    await load_demo_data(demo_pool, now=NOW)
    campaigns = await _campaigns(demo_pool)
    committed = {
        row["campaign_id"]: row["committed_units"]
        for row in await demo_pool.fetch(
            "SELECT DISTINCT ON (campaign_id) campaign_id, committed_units FROM pledge_events"
            " ORDER BY campaign_id, seq DESC"
        )
    }

    about_to_tip = []
    for campaign in campaigns:
        upcoming = next_tier(terms_from_row(campaign), committed[campaign["id"]])
        if upcoming is not None and upcoming[0] - committed[campaign["id"]] <= 2:
            about_to_tip.append(campaign)
    about_to_close = [c for c in campaigns if c["deadline_at"] - NOW <= timedelta(minutes=10)]
    up_front = [c for c in campaigns if c["payment_timing"] == "up_front"]
    sold_out_switch = [c for c in campaigns if c["close_when_sold_out"]]
    with_min_buyers = [c for c in campaigns if c["min_buyers"] is not None]

    assert len(about_to_tip) == 1
    assert about_to_tip[0]["deadline_at"] - NOW >= timedelta(hours=1)
    assert len(about_to_close) == 1
    assert about_to_close[0]["deadline_at"] - NOW >= timedelta(minutes=3)
    assert committed[about_to_close[0]["id"]] >= about_to_close[0]["min_total_units"]
    assert len(up_front) == 1
    assert committed[up_front[0]["id"]] < up_front[0]["min_total_units"]
    assert len(sold_out_switch) == 1
    assert 0 < sold_out_switch[0]["stock_cap_units"] - committed[sold_out_switch[0]["id"]] <= 10
    assert len(with_min_buyers) == 1
    assert {c["fulfilment"] for c in campaigns} == {"delivery", "pickup"}


@pytest.mark.parametrize("campaign", CAMPAIGNS, ids=[campaign.title for campaign in CAMPAIGNS])
def test_demo_campaign_passes_creation_rules(campaign: DemoCampaign) -> None:
    """Each demo campaign satisfies the checks a staff member's new campaign must pass."""
    draft = CampaignDraft(
        product_id=1,
        title=campaign.title,
        list_price_won=campaign.list_price_won,
        tiers=campaign.tiers,
        min_total_units=campaign.min_total_units,
        stock_cap_units=campaign.stock_cap_units,
        per_member_limit=campaign.per_member_limit,
        start_at=NOW + timedelta(seconds=campaign.start_offset_s),
        deadline_at=NOW + timedelta(seconds=campaign.deadline_offset_s),
        min_buyers=campaign.min_buyers,
        close_when_sold_out=campaign.close_when_sold_out,
        unit_label=campaign.unit_label,
        fulfilment=campaign.fulfilment,
        fulfilment_terms=campaign.fulfilment_terms,
        payment_timing=campaign.payment_timing,
    )

    assert check_draft(draft, NOW) == campaign.tiers


async def test_demo_ledger_totals_consistent(demo_pool: asyncpg.Pool) -> None:
    """Each ledger runs seq 1..N with running totals, member limits, the cap and times before the load."""
    await load_demo_data(demo_pool, now=NOW)

    for campaign in await _campaigns(demo_pool):
        events = await _events(demo_pool, campaign["id"])
        title = campaign["title"]
        assert [event["seq"] for event in events] == list(range(1, len(events) + 1)), title
        pledges: dict[int, int] = {}
        for event in events:
            previous = pledges.get(event["user_id"], 0)
            assert event["kind"] == "pledge", title
            assert event["delta_units"] == event["units"] - previous, (title, event["seq"])
            assert 0 <= event["units"] <= campaign["per_member_limit"], (title, event["seq"])
            if event["units"]:
                pledges[event["user_id"]] = event["units"]
            else:
                pledges.pop(event["user_id"], None)
            assert event["committed_units"] == sum(pledges.values()), (title, event["seq"])
            assert event["participants"] == len(pledges), (title, event["seq"])
            assert event["committed_units"] <= campaign["stock_cap_units"], (title, event["seq"])
            assert campaign["start_at"] <= event["server_at"] < NOW, (title, event["seq"])
            assert event["client_id"], (title, event["seq"])
        assert [event["server_at"] for event in events] == sorted(event["server_at"] for event in events), title


async def test_demo_ledger_has_changes_and_cancellation(demo_pool: asyncpg.Pool) -> None:
    """The ledgers include a raised pledge, a lowered pledge and a cancellation, not only first pledges."""
    await load_demo_data(demo_pool, now=NOW)

    rows = await demo_pool.fetch("SELECT units, delta_units FROM pledge_events")

    assert any(row["units"] == 0 for row in rows)
    assert any(row["delta_units"] < 0 and row["units"] > 0 for row in rows)
    assert any(0 < row["delta_units"] < row["units"] for row in rows)


async def test_demo_ledger_matches_rebuilt_state(demo_pool: asyncpg.Pool, live: CampaignLive) -> None:
    """Rebuilding each demo campaign in Redis from the ledger gives the ledger's last seq, totals and pledges."""
    await load_demo_data(demo_pool)

    for campaign in await _campaigns(demo_pool):
        events = await _events(demo_pool, campaign["id"])
        last = events[-1]
        terms = terms_from_row(campaign)

        assert await load_campaign(demo_pool, live, campaign["id"]) is True
        snapshot = await live.snapshot(campaign["id"])

        assert snapshot is not None, campaign["title"]
        assert snapshot.status == "open", campaign["title"]
        assert snapshot.seq == last["seq"], campaign["title"]
        assert snapshot.committed_units == last["committed_units"], campaign["title"]
        assert snapshot.participants == last["participants"], campaign["title"]
        assert snapshot.unit_price_won == unit_price_for(terms, last["committed_units"]), campaign["title"]
        assert snapshot.stock_left == campaign["stock_cap_units"] - last["committed_units"], campaign["title"]
        assert await live.pledges(campaign["id"]) == _replay(events), campaign["title"]


async def test_demo_pledge_tips_campaign(demo_pool: asyncpg.Pool, live: CampaignLive) -> None:
    """After the rebuild, member1 pledging the missing units moves the about-to-tip campaign to the next tier's price."""
    await load_demo_data(demo_pool)
    campaign = await demo_pool.fetchrow("SELECT * FROM campaigns WHERE title LIKE '%광산 햇김%'")
    events = await _events(demo_pool, campaign["id"])
    member = await demo_pool.fetchrow("SELECT id, display_name FROM users WHERE email = 'member1@jangteo.example'")
    actor = Actor(user_id=member["id"], role=MEMBER, display_name=member["display_name"])
    upcoming = next_tier(terms_from_row(campaign), events[-1]["committed_units"])
    assert upcoming is not None
    missing = upcoming[0] - events[-1]["committed_units"]

    outcome = await submit_pledge(demo_pool, live, actor, campaign["id"], missing, "demo-tip-test")

    assert outcome.accepted, outcome.code
    assert outcome.receipt is not None
    assert outcome.receipt.seq == events[-1]["seq"] + 1
    assert outcome.receipt.committed_units == upcoming[0]
    assert outcome.receipt.unit_price_won == upcoming[1]


async def test_demo_up_front_payments(demo_pool: asyncpg.Pool) -> None:
    """Every pledger of the up-front campaign paid units x the "at most" price; one bank transfer awaits its deposit."""
    await load_demo_data(demo_pool, now=NOW)
    campaign = await demo_pool.fetchrow("SELECT * FROM campaigns WHERE payment_timing = 'up_front'")
    pledges = _replay(await _events(demo_pool, campaign["id"]))
    price_won = at_most_price_won(terms_from_row(campaign))

    payments = await demo_pool.fetch("SELECT * FROM pledge_payments WHERE campaign_id = $1", campaign["id"])
    awaiting = [p for p in payments if p["status"] == "awaiting_deposit"]
    paid = [p for p in payments if p["status"] == "paid"]

    assert {p["user_id"]: p["units"] for p in payments} == pledges
    assert all(p["amount_won"] == p["units"] * price_won for p in payments)
    assert len(awaiting) == 1
    assert awaiting[0]["method"] == "bank_transfer"
    assert awaiting[0]["depositor_name"]
    assert awaiting[0]["hold_expires_at"] > NOW
    assert awaiting[0]["paid_at"] is None
    assert len(paid) == len(payments) - 1
    assert all(p["method"] == "card" and p["paid_at"] < NOW for p in paid)
    received = await demo_pool.fetch(
        "SELECT pledge_payment_id, entry, amount_won FROM money_ledger WHERE pledge_payment_id IS NOT NULL"
    )
    assert sorted((r["pledge_payment_id"], r["entry"], r["amount_won"]) for r in received) == sorted(
        (p["id"], "payment", p["amount_won"]) for p in paid
    )
    assert await demo_pool.fetchval(
        "SELECT count(*) FROM pledge_payments WHERE campaign_id <> $1", campaign["id"]
    ) == 0


async def test_demo_about_to_close_is_due(demo_pool: asyncpg.Pool, live: CampaignLive) -> None:
    """Loaded 6 minutes in the past, only the about-to-close campaign is due for the worker's closer."""
    database_now = await demo_pool.fetchval("SELECT now()")
    await load_demo_data(demo_pool, now=database_now - timedelta(minutes=6))
    campaigns = await _campaigns(demo_pool)
    for campaign in campaigns:
        await load_campaign(demo_pool, live, campaign["id"])

    due: list[int] = []
    for shard in range(SHARDS):
        due.extend(await live.due_campaigns(shard))

    closing_soon = [c["id"] for c in campaigns if c["title"].endswith("(마감 임박)")]
    assert len(closing_soon) == 1
    assert due == closing_soon


async def test_demo_about_to_close_closes(demo_pool: asyncpg.Pool, live: CampaignLive, settings: Settings) -> None:
    """Once due, the closer makes one order per pledge of the about-to-close campaign at its tier price."""
    database_now = await demo_pool.fetchval("SELECT now()")
    await load_demo_data(demo_pool, now=database_now - timedelta(minutes=6))
    campaign = await demo_pool.fetchrow("SELECT * FROM campaigns WHERE title LIKE '%(마감 임박)'")
    pledges = _replay(await _events(demo_pool, campaign["id"]))
    consumer = LedgerConsumer(demo_pool, live.redis, live.keys, block_ms=50, claim_idle_s=0.2, ledger=CAMPAIGN_LEDGER)

    # The worker's housekeeping: Redis has no campaign yet, so every active one is loaded.
    await keep_campaigns_loaded(demo_pool, live)
    status = None
    for _ in range(20):
        await close_due_campaigns(demo_pool, live, settings)
        await consumer.drain()
        status = await demo_pool.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign["id"])
        if status == "succeeded":
            break

    orders = await demo_pool.fetch("SELECT * FROM orders WHERE campaign_id = $1", campaign["id"])
    price_won = unit_price_for(terms_from_row(campaign), sum(pledges.values()))
    assert status == "succeeded"
    assert {order["buyer_id"]: order["units"] for order in orders} == pledges
    assert all(order["unit_price_won"] == price_won for order in orders)
    assert price_won == campaign["tiers"][0][1]
    assert await demo_pool.fetchval("SELECT count(*) FROM campaigns WHERE status = 'open'") == 3


# -- accounts ----------------------------------------------------------------------------


async def test_demo_neighbour_accounts(demo_pool: asyncpg.Pool) -> None:
    """The eight neighbour accounts are active members, and only they pledge in the demo campaigns."""
    accounts = await load_demo_data(demo_pool, now=NOW)
    printed = {account.email for account in accounts}
    neighbour_ids = {
        row["id"]
        for row in await demo_pool.fetch(
            "SELECT id FROM users WHERE role = 'member' AND status = 'active' AND email = ANY($1::text[])",
            [email for email, _ in NEIGHBOURS],
        )
    }
    pledgers = {row["user_id"] for row in await demo_pool.fetch("SELECT DISTINCT user_id FROM pledge_events")}

    assert len(neighbour_ids) == 8
    assert {email for email, _ in NEIGHBOURS} <= printed
    assert "coordinator@jangteo.example" in printed
    assert pledgers <= neighbour_ids


# -- the complex order --------------------------------------------------------------------


async def test_demo_complex_order_fields(demo_pool: asyncpg.Pool) -> None:
    """The coordinator's apartment order in Gwangsan closes 4 hours after the load and delivers the next day."""
    await load_demo_data(demo_pool, now=NOW)

    order = await demo_pool.fetchrow(
        "SELECT o.*, u.role AS coordinator_role, u.email AS coordinator_email FROM complex_orders o"
        " JOIN users u ON u.id = o.coordinator_id"
    )

    assert order["kind"] == "apartment"
    assert order["status"] == "open"
    assert order["coordinator_role"] == "coordinator"
    assert order["coordinator_email"] == "coordinator@jangteo.example"
    assert complex_rules.normalize_code(order["code"]) == order["code"]
    assert order["road_address"].startswith("광주광역시 광산구 ")
    assert order["complex_name"] == COMPLEX_ORDER.complex_name
    assert order["closes_at"] == NOW + timedelta(hours=4)
    assert order["delivery_date"] == order["closes_at"].astimezone(KST).date() + timedelta(days=1)
    assert order["created_at"] < NOW


async def test_demo_complex_order_items(demo_pool: asyncpg.Pool) -> None:
    """Each item is an approved local catalogue product at its catalogue price and supplier."""
    await load_demo_data(demo_pool, now=NOW)

    items = await demo_pool.fetch(
        "SELECT i.*, p.price_won, p.supplier_id AS product_supplier_id, p.is_local, p.status AS product_status,"
        " p.name AS product_name FROM complex_items i JOIN products p ON p.id = i.product_id ORDER BY i.position"
    )

    assert 4 <= len(items) <= 8
    for item in items:
        assert item["unit_price_won"] == item["price_won"], item["name"]
        assert item["supplier_id"] == item["product_supplier_id"], item["name"]
        assert item["name"] == item["product_name"]
        assert item["is_local"], item["name"]
        assert item["product_status"] == "approved", item["name"]
        assert item["campaign_id"] is None, item["name"]
        assert item["per_household_limit"] >= 1, item["name"]


async def test_demo_complex_households_within_limits(demo_pool: asyncpg.Pool) -> None:
    """Five to eight households order within every item's per-household limit, one of them with two accounts."""
    await load_demo_data(demo_pool, now=NOW)
    limits = dict(await demo_pool.fetch("SELECT id, per_household_limit FROM complex_items"))
    households = await demo_pool.fetch("SELECT id, building, unit FROM complex_households")
    participants = await demo_pool.fetch("SELECT household_id, phone, user_id FROM complex_participants")
    lines = await demo_pool.fetch(
        "SELECT l.item_id, l.household_id, l.quantity, p.household_id AS participant_household"
        " FROM complex_lines l JOIN complex_participants p ON p.id = l.participant_id"
    )

    per_household: dict[tuple[int, int], int] = defaultdict(int)
    for line in lines:
        assert line["household_id"] == line["participant_household"]
        assert line["quantity"] >= 1
        per_household[(line["household_id"], line["item_id"])] += line["quantity"]
    accounts_per_household: dict[int, int] = defaultdict(int)
    for participant in participants:
        accounts_per_household[participant["household_id"]] += 1

    assert 5 <= len(households) <= 8
    for household in households:
        assert complex_rules.parse_household("apartment", household["building"], household["unit"]) == (
            household["building"], household["unit"],
        )
    for (household_id, item_id), quantity in per_household.items():
        assert quantity <= limits[item_id], (household_id, item_id, quantity)
    assert any(quantity == limits[item_id] for (_, item_id), quantity in per_household.items())
    assert all(complex_rules.parse_phone(p["phone"]) == p["phone"] for p in participants)
    assert sorted(accounts_per_household.values()).count(2) == 1
    assert set(accounts_per_household) == {household["id"] for household in households}
    assert len({(line["household_id"], line["item_id"]) for line in lines}) >= 2 * len(households)


async def test_demo_complex_masked_labels(demo_pool: asyncpg.Pool) -> None:
    """Neighbours see the demo households with masked unit numbers, such as 101동 12**호."""
    await load_demo_data(demo_pool, now=NOW)

    households = await demo_pool.fetch("SELECT building, unit FROM complex_households ORDER BY id")
    labels = [complex_rules.household_label("apartment", h["building"], h["unit"], masked=True) for h in households]

    assert labels[0] == "101동 12**호"
    assert all("**호" in label for label in labels)


# -- later starts -------------------------------------------------------------------------


async def test_demo_fresh_round_after_campaigns_end(demo_pool: asyncpg.Pool) -> None:
    """A load after every demo campaign and complex order ended adds one fresh round of each; a third adds nothing."""
    await load_demo_data(demo_pool, now=NOW)
    first_ids = {campaign["id"] for campaign in await _campaigns(demo_pool)}

    await load_demo_data(demo_pool)
    after_second = await _campaigns(demo_pool)
    events_after_second = await demo_pool.fetchval("SELECT count(*) FROM pledge_events")
    await load_demo_data(demo_pool)

    running = await demo_pool.fetchval(
        "SELECT count(*) FROM campaigns WHERE status = 'open' AND deadline_at > now()"
    )
    open_orders = await demo_pool.fetchval(
        "SELECT count(*) FROM complex_orders WHERE status = 'open' AND closes_at > now()"
    )
    codes = await demo_pool.fetch("SELECT code FROM complex_orders")
    fresh = [campaign for campaign in after_second if campaign["id"] not in first_ids]
    assert len(after_second) == 8
    assert len(await _campaigns(demo_pool)) == 8
    assert running == 4
    assert open_orders == 1
    assert len({row["code"] for row in codes}) == 2
    assert await demo_pool.fetchval("SELECT count(*) FROM pledge_events") == events_after_second
    assert len(fresh) == 4
    for campaign in fresh:
        seqs = [event["seq"] for event in await _events(demo_pool, campaign["id"])]
        assert seqs[0] == 1, campaign["title"]


async def test_demo_fresh_round_per_kind(demo_pool: asyncpg.Pool) -> None:
    """When only the campaigns have ended, a load adds campaigns and neither lots nor a complex order."""
    await load_demo_data(demo_pool)
    lots = await demo_pool.fetchval("SELECT count(*) FROM lots")
    await demo_pool.execute("UPDATE campaigns SET status = 'succeeded', closed_at = now()")

    await load_demo_data(demo_pool)

    assert await demo_pool.fetchval("SELECT count(*) FROM campaigns") == 8
    assert await demo_pool.fetchval("SELECT count(*) FROM campaigns WHERE status = 'open'") == 4
    assert await demo_pool.fetchval("SELECT count(*) FROM lots") == lots
    assert await demo_pool.fetchval("SELECT count(*) FROM complex_orders") == 1


async def test_demo_adds_missing_accounts(demo_pool: asyncpg.Pool) -> None:
    """A database loaded without the neighbour accounts gets them, and its group buys, on the next load."""
    await load_demo_data(demo_pool)
    # Make the database look like one loaded before the group buys existed.
    for table in (
        "complex_lines", "complex_participants", "complex_households", "complex_items", "complex_orders",
        "money_ledger", "pledge_payments", "pledge_events", "campaigns",
    ):
        await demo_pool.execute(f"DELETE FROM {table}")
    await demo_pool.execute("DELETE FROM users WHERE email = ANY($1::text[])", [email for email, _ in NEIGHBOURS])

    await load_demo_data(demo_pool)

    assert await demo_pool.fetchval("SELECT count(*) FROM users") == 13
    assert await demo_pool.fetchval("SELECT count(*) FROM campaigns") == 4
    assert await demo_pool.fetchval("SELECT count(*) FROM complex_orders") == 1
    assert await demo_pool.fetchval("SELECT count(*) FROM lots") == 12

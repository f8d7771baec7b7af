"""Campaign creation, pledging through the service, the campaign ledger and the rebuild from it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

if TYPE_CHECKING:
    # Only for annotations: a plain `from conftest import` resolves to whichever
    # conftest module pytest imported first when several test folders run together.
    from conftest import Market
from engine.actors import COORDINATOR, STAFF, Actor
from engine.auction.ledger import LedgerConsumer
from engine.errors import DomainError
from engine.groupbuy.campaigns import (
    CampaignDraft,
    CampaignRebuildPending,
    create_campaign,
    load_active_campaigns,
    load_campaign,
    reload_missing_campaign_shards,
    terms_from_row,
)
from engine.groupbuy.ledger import CAMPAIGN_LEDGER, note_campaign_acknowledged, parse_pledge_entry
from engine.groupbuy.live import CampaignLive
from engine.groupbuy.service import submit_pledge
from workers.loops import run_campaign_ledger

KST = ZoneInfo("Asia/Seoul")
# A short rebuild grace, so tests of campaigns Redis lost wait a fraction of a second.
GRACE_MS = 300


async def _draft(market: Market, **changes: Any) -> CampaignDraft:
    now = await market.db.fetchval("SELECT now()")
    draft = CampaignDraft(
        product_id=market.product_id,
        title="곱창김 공동구매",
        list_price_won=10_000,
        tiers=[[10, 9_000], [50, 8_000]],
        min_total_units=20,
        stock_cap_units=100,
        per_member_limit=30,
        start_at=now - timedelta(minutes=1),
        deadline_at=now + timedelta(hours=1),
    )
    return replace(draft, **changes)


async def _campaign(market: Market, live: CampaignLive, **changes: Any) -> int:
    return await create_campaign(market.db, live, market.staff, await _draft(market, **changes))


def _consumer(market: Market, live: CampaignLive) -> LedgerConsumer:
    return LedgerConsumer(market.db, live.redis, live.keys, block_ms=50, claim_idle_s=0.2, ledger=CAMPAIGN_LEDGER)


async def _forget_in_redis(live: CampaignLive, campaign_id: int) -> None:
    """Delete a campaign's keys, as if Redis had restarted without its data."""
    keys = live.keys
    await live.redis.delete(
        keys.campaign_state(campaign_id), keys.campaign_pledges(campaign_id), keys.campaign_receipts(campaign_id)
    )
    await live.redis.zrem(keys.campaign_deadlines_for(campaign_id), campaign_id)


async def _pledge_after_grace(  # type: ignore[no-untyped-def]
    market: Market, live: CampaignLive, member, campaign_id: int, units: str, client_id: str
):
    """Pledge on a campaign Redis lost: the first try only starts the rebuild grace."""
    live.rebuild_grace_ms = GRACE_MS
    with pytest.raises(DomainError) as pending:
        await submit_pledge(market.db, live, member, campaign_id, units, client_id)
    assert pending.value.code == "campaign_rebuilding"
    await asyncio.sleep(GRACE_MS / 1000 + 0.1)
    return await submit_pledge(market.db, live, member, campaign_id, units, client_id)


async def _load_after_grace(market: Market, live: CampaignLive, campaign_id: int) -> bool:
    """Load a campaign Redis lost: the first try only starts the rebuild grace."""
    live.rebuild_grace_ms = GRACE_MS
    with pytest.raises(CampaignRebuildPending):
        await load_campaign(market.db, live, campaign_id)
    await asyncio.sleep(GRACE_MS / 1000 + 0.1)
    return await load_campaign(market.db, live, campaign_id)


# -- creating -----------------------------------------------------------------------

async def test_create_campaign_loads_and_audits(market: Market, live: CampaignLive) -> None:
    """Staff create a campaign: it is stored open, audited and live in Redis with its terms."""
    campaign_id = await _campaign(market, live, min_buyers=3, close_when_sold_out=True)
    row = await market.db.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)
    assert row["status"] == "open"
    assert row["supplier_id"] == market.supplier_id
    assert row["tiers"] == [[10, 9_000], [50, 8_000]]
    audit = await market.db.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'campaign.create' AND target_id = $1", campaign_id
    )
    assert audit == 1
    snapshot = await live.snapshot(campaign_id)
    assert snapshot is not None
    assert snapshot.status == "open"
    assert snapshot.min_buyers == 3
    assert snapshot.at_most_price_won == 9_000
    assert snapshot.close_when_sold_out
    assert snapshot.deadline_ms == int(row["deadline_at"].timestamp() * 1000)


async def test_create_campaign_staff_only(market: Market, live: CampaignLive) -> None:
    """Suppliers, coordinators and suspended staff cannot create campaigns."""
    coordinator = Actor(user_id=market.staff.user_id, role=COORDINATOR, display_name="x")
    suspended = Actor(user_id=market.staff.user_id, role=STAFF, display_name="x", status="suspended")
    for actor in (market.supplier, coordinator, suspended):
        with pytest.raises(DomainError) as raised:
            await create_campaign(market.db, live, actor, await _draft(market))
        assert raised.value.code == "forbidden"


async def test_create_campaign_needs_approved_product(market: Market, live: CampaignLive) -> None:
    """A product that is not approved cannot be sold in a campaign, and nothing is written."""
    await market.db.execute("UPDATE products SET status = 'pending' WHERE id = $1", market.product_id)
    before = await market.db.fetchval("SELECT count(*) FROM campaigns")
    with pytest.raises(DomainError) as raised:
        await _campaign(market, live)
    assert raised.value.code == "product_not_approved"
    assert await market.db.fetchval("SELECT count(*) FROM campaigns") == before
    with pytest.raises(DomainError) as missing:
        await _campaign(market, live, product_id=10**12)
    assert missing.value.code == "product_not_found"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"title": "  "}, "invalid_title"),
        ({"list_price_won": 0}, "invalid_amount"),
        ({"tiers": []}, "tiers_required"),
        ({"tiers": [[50, 9_000], [10, 8_000]]}, "tiers_not_ascending"),
        ({"tiers": [[10, 8_000], [50, 9_000]]}, "tier_prices_not_descending"),
        ({"tiers": [[10, 11_000]]}, "tier_price_above_list"),
        ({"tiers": [[101, 9_000]]}, "tier_above_cap"),
        ({"min_total_units": 101}, "min_above_cap"),
        ({"min_total_units": 0}, "invalid_units"),
        ({"stock_cap_units": 100_001}, "invalid_units"),
        ({"per_member_limit": 0}, "invalid_member_limit"),
        ({"min_buyers": 0}, "invalid_min_buyers"),
        ({"min_buyers": 101}, "min_buyers_above_cap"),
        ({"fulfilment": "drone"}, "invalid_fulfilment"),
        ({"payment_timing": "later"}, "invalid_payment_timing"),
        ({"payment_due_s": 0}, "invalid_payment_due"),
        ({"hold_s": 10}, "invalid_hold"),
    ],
)
async def test_create_campaign_rejects(market: Market, live: CampaignLive, changes: dict[str, Any], code: str) -> None:
    """Invalid drafts are rejected with a stable code."""
    with pytest.raises(DomainError) as raised:
        await _campaign(market, live, **changes)
    assert raised.value.code == code


async def test_create_campaign_rejects_bad_times(market: Market, live: CampaignLive) -> None:
    """A deadline in the past, before the start, or more than 90 days after it is rejected."""
    now = await market.db.fetchval("SELECT now()")
    cases = [
        ({"deadline_at": now - timedelta(seconds=1), "start_at": now - timedelta(hours=1)}, "deadline_in_past"),
        ({"deadline_at": now + timedelta(hours=1), "start_at": now + timedelta(hours=2)}, "deadline_before_start"),
        ({"deadline_at": now + timedelta(days=91)}, "duration_too_long"),
    ]
    for changes, code in cases:
        with pytest.raises(DomainError) as raised:
            await _campaign(market, live, **changes)
        assert raised.value.code == code


async def test_kst_midnight_deadline_stored_in_utc(market: Market, live: CampaignLive) -> None:
    """A deadline at midnight Korea time is stored and loaded as 15:00 UTC the day before."""
    now = await market.db.fetchval("SELECT now()")
    midnight = datetime.combine(now.astimezone(KST).date() + timedelta(days=2), datetime.min.time(), tzinfo=KST)
    campaign_id = await _campaign(market, live, deadline_at=midnight)
    async with market.db.acquire() as connection:
        await connection.execute("SET TIME ZONE 'UTC'")
        row = await connection.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)
        await connection.execute("RESET TIME ZONE")
    assert row["deadline_at"] == midnight.astimezone(timezone.utc)
    assert row["deadline_at"].astimezone(timezone.utc).hour == 15
    assert terms_from_row(row).deadline_ms == int(midnight.timestamp() * 1000)
    snapshot = await live.snapshot(campaign_id)
    assert snapshot is not None
    assert snapshot.deadline_ms == int(midnight.timestamp() * 1000)


async def test_scheduled_campaign_not_started(market: Market, live: CampaignLive) -> None:
    """A campaign starting later is stored as scheduled and rejects pledges as not started."""
    now = await market.db.fetchval("SELECT now()")
    campaign_id = await _campaign(market, live, start_at=now + timedelta(hours=1), deadline_at=now + timedelta(hours=2))
    assert await market.db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == "scheduled"
    member = await market.member()
    outcome = await submit_pledge(market.db, live, member, campaign_id, "1", "c1")
    assert outcome.code == "campaign_not_started"


# -- who may pledge -----------------------------------------------------------------

async def test_service_who_may_pledge(market: Market, live: CampaignLive) -> None:
    """Members and coordinators pledge; staff and suspended accounts are rejected; a supplier never on its own goods."""
    campaign_id = await _campaign(market, live)
    member = await market.member()
    assert (await submit_pledge(market.db, live, member, campaign_id, "2", "a")).accepted
    coordinator = replace(await market.member("이반장"), role=COORDINATOR)
    assert (await submit_pledge(market.db, live, coordinator, campaign_id, "2", "a")).accepted
    for actor in (market.staff, replace(member, status="suspended")):
        with pytest.raises(DomainError) as raised:
            await submit_pledge(market.db, live, actor, campaign_id, "1", "b")
        assert raised.value.code == "not_allowed_to_pledge"
    own = await submit_pledge(market.db, live, market.supplier, campaign_id, "1", "c")
    assert own.code == "own_goods"
    other_supplier = replace(market.supplier, supplier_id=market.supplier_id + 10_000)
    assert (await submit_pledge(market.db, live, other_supplier, campaign_id, "1", "d")).accepted


@pytest.mark.parametrize(("units", "client_id", "code"), [
    ("-1", "ok", "invalid_units"), ("1.5", "ok", "invalid_units"), ("３", "ok", "invalid_units"),
    ("100001", "ok", "invalid_units"), ("1", "", "invalid_client_id"), ("1", "a b", "invalid_client_id"),
])
async def test_service_rejects_bad_input(
    market: Market, live: CampaignLive, units: str, client_id: str, code: str
) -> None:
    """Malformed units or client ids never reach Redis."""
    campaign_id = await _campaign(market, live)
    with pytest.raises(DomainError) as raised:
        await submit_pledge(market.db, live, await market.member(), campaign_id, units, client_id)
    assert raised.value.code == code


async def test_service_unknown_campaign(market: Market, live: CampaignLive) -> None:
    """A pledge to a campaign that exists nowhere is reported as not found."""
    with pytest.raises(DomainError) as raised:
        await submit_pledge(market.db, live, await market.member(), 10**12, "1", "a")
    assert raised.value.code == "campaign_not_found"


# -- the ledger -----------------------------------------------------------------------

async def test_consumer_moves_events_into_pledge_events(market: Market, live: CampaignLive) -> None:
    """Pledges, changes, cancellations, releases and the close reach pledge_events in seq order, once."""
    campaign_id = await _campaign(market, live)
    a, b = await market.member(), await market.member()
    await submit_pledge(market.db, live, a, campaign_id, "12", "a1")
    await submit_pledge(market.db, live, b, campaign_id, "5", "b1")
    await submit_pledge(market.db, live, a, campaign_id, "20", "a2")
    await submit_pledge(market.db, live, b, campaign_id, "0", "b2")
    assert (await live.release(campaign_id, a.user_id, 3))["ok"]
    consumer = _consumer(market, live)
    assert await consumer.drain() == 5
    assert await consumer.drain() == 0
    rows = await market.db.fetch(
        "SELECT seq, kind, user_id, client_id, units, delta_units, committed_units, participants"
        " FROM pledge_events WHERE campaign_id = $1 ORDER BY seq", campaign_id,
    )
    assert [tuple(row) for row in rows] == [
        (1, "pledge", a.user_id, "a1", 12, 12, 12, 1),
        (2, "pledge", b.user_id, "b1", 5, 5, 17, 2),
        (3, "pledge", a.user_id, "a2", 20, 8, 25, 2),
        (4, "pledge", b.user_id, "b2", 0, -5, 20, 1),
        (5, "hold_expired", a.user_id, None, 17, -3, 17, 1),
    ]
    assert await live.redis.xlen(live.keys.campaign_ledger_stream_for(campaign_id)) == 0


async def test_consumer_stores_redelivery_once(market: Market, live: CampaignLive) -> None:
    """Storing the same entries twice inserts them once and counts duplicates."""
    campaign_id = await _campaign(market, live)
    member = await market.member()
    await submit_pledge(market.db, live, member, campaign_id, "3", "x")
    raw = await live.redis.xrange(live.keys.campaign_ledger_stream_for(campaign_id))
    entries = [parse_pledge_entry(entry_id, fields) for entry_id, fields in raw]
    consumer = _consumer(market, live)
    first = await consumer.store_entries(entries)
    second = await consumer.store_entries(entries + entries)
    assert first.inserted == 1
    assert second.inserted == 0
    assert second.duplicates == 2
    assert second.conflicts == 0


async def test_reissued_sequence_holds_campaign(market: Market, live: CampaignLive) -> None:
    """An entry whose (campaign, seq) is stored with other content puts the campaign on hold for review."""
    campaign_id = await _campaign(market, live)
    member = await market.member()
    await submit_pledge(market.db, live, member, campaign_id, "3", "x")
    consumer = _consumer(market, live)
    await consumer.drain()
    raw = await live.redis.xrange(live.keys.campaign_ledger_stream_for(campaign_id))
    assert raw == []
    entry = parse_pledge_entry(b"1-0", {
        b"campaign": str(campaign_id).encode(), b"seq": b"1", b"kind": b"pledge",
        b"user": str(member.user_id).encode(), b"client": b"other", b"units": b"4", b"delta": b"4",
        b"committed": b"4", b"participants": b"1", b"server_ms": b"1796000000000",
    })
    result = await consumer.store_entries([entry])
    assert result.conflicts == 1
    row = await market.db.fetchrow("SELECT status, held_reason FROM campaigns WHERE id = $1", campaign_id)
    assert row["status"] == "held"
    assert row["held_reason"] == "sequence conflict"


# -- rebuilding ---------------------------------------------------------------------

async def test_rebuild_after_redis_lost_campaign(market: Market, live: CampaignLive) -> None:
    """After Redis lost a campaign, the next pledge rebuilds it from pledge_events with totals, members and receipts."""
    campaign_id = await _campaign(market, live)
    a, b, c = await market.member(), await market.member(), await market.member()
    first = await submit_pledge(market.db, live, a, campaign_id, "12", "a1")
    await submit_pledge(market.db, live, b, campaign_id, "30", "b1")
    await submit_pledge(market.db, live, b, campaign_id, "25", "b2")
    await submit_pledge(market.db, live, c, campaign_id, "4", "c1")
    await submit_pledge(market.db, live, c, campaign_id, "0", "c2")
    before = await live.snapshot(campaign_id)
    await _consumer(market, live).drain()
    await live.acks.flush(market.db)
    await _forget_in_redis(live, campaign_id)
    assert await live.snapshot(campaign_id) is None

    retry = await _pledge_after_grace(market, live, a, campaign_id, "12", "a1")
    assert retry.accepted
    assert retry.receipt is not None
    assert first.receipt is not None
    assert retry.receipt.retry
    assert replace(retry.receipt, retry=False) == first.receipt
    after = await live.snapshot(campaign_id)
    assert after is not None
    assert before is not None
    assert replace(after, server_ms=0) == replace(before, server_ms=0)
    assert await live.pledges(campaign_id) == {a.user_id: 12, b.user_id: 25}

    # Totals go on from the rebuilt state, with the next sequence number.
    outcome = await submit_pledge(market.db, live, c, campaign_id, "3", "c3")
    assert outcome.receipt is not None
    assert outcome.receipt.seq == 6
    assert outcome.receipt.committed_units == 40
    assert await live.due_campaigns(live.keys.shard_of(campaign_id)) == []


async def test_rebuild_holds_when_acknowledged_seq_missing(market: Market, live: CampaignLive) -> None:
    """A campaign whose ack mark exceeds its ledger is rebuilt as held and takes no pledge."""
    campaign_id = await _campaign(market, live)
    member = await market.member()
    await submit_pledge(market.db, live, member, campaign_id, "3", "a")
    await _consumer(market, live).drain()
    lost = await submit_pledge(market.db, live, member, campaign_id, "4", "b")
    assert lost.receipt is not None
    async with market.db.acquire() as connection:
        await note_campaign_acknowledged(connection, campaign_id, lost.receipt.seq)
    # Redis loses the campaign and the unconsumed stream entry.
    await _forget_in_redis(live, campaign_id)
    await live.redis.delete(live.keys.campaign_ledger_stream_for(campaign_id))

    outcome = await _pledge_after_grace(market, live, member, campaign_id, "5", "c")
    assert outcome.code == "campaign_held"
    row = await market.db.fetchrow("SELECT status, held_reason FROM campaigns WHERE id = $1", campaign_id)
    assert row["status"] == "held"
    assert row["held_reason"] == "acknowledged sequence missing"


async def test_rebuild_of_closing_and_final_campaigns(market: Market, live: CampaignLive) -> None:
    """A campaign whose last event is its close is rebuilt as closing; a final one keeps its status."""
    now = await market.db.fetchval("SELECT now()")
    campaign_id = await _campaign(market, live, deadline_at=now + timedelta(milliseconds=300))
    member = await market.member()
    await submit_pledge(market.db, live, member, campaign_id, "3", "a")
    while (await live.begin_close(campaign_id)).get("code") == "not_due":
        pass
    await _consumer(market, live).drain()
    await _forget_in_redis(live, campaign_id)
    assert await _load_after_grace(market, live, campaign_id)
    snapshot = await live.snapshot(campaign_id)
    assert snapshot is not None
    assert snapshot.status == "closing"
    assert snapshot.seq == 2
    assert await live.due_campaigns(live.keys.shard_of(campaign_id)) == [campaign_id]
    assert not await load_campaign(market.db, live, campaign_id)

    await market.db.execute("UPDATE campaigns SET status = 'succeeded' WHERE id = $1", campaign_id)
    await _forget_in_redis(live, campaign_id)
    assert await load_campaign(market.db, live, campaign_id)
    snapshot = await live.snapshot(campaign_id)
    assert snapshot is not None
    assert snapshot.status == "succeeded"
    assert await live.due_campaigns(live.keys.shard_of(campaign_id)) == []


async def test_reload_missing_shards(market: Market, live: CampaignLive) -> None:
    """Shards without a loaded marker get their active campaigns loaded once, after the rebuild grace."""
    campaign_id = await _campaign(market, live)
    await _forget_in_redis(live, campaign_id)
    live.rebuild_grace_ms = GRACE_MS
    marker = live.keys.campaign_shard_loaded(live.keys.shard_of(campaign_id))

    assert await reload_missing_campaign_shards(market.db, live) == 0
    assert await live.snapshot(campaign_id) is None
    assert not await live.redis.exists(marker)

    await asyncio.sleep(GRACE_MS / 1000 + 0.1)
    assert await reload_missing_campaign_shards(market.db, live) >= 1
    assert await live.snapshot(campaign_id) is not None
    assert await live.redis.exists(marker)
    assert await reload_missing_campaign_shards(market.db, live) == 0
    assert await load_active_campaigns(market.db, live) == (0, 0)


async def test_load_active_campaigns_counts_waiting(market: Market, live: CampaignLive) -> None:
    """load_active_campaigns counts a campaign Redis lost as waiting, then loads it after the grace."""
    campaign_id = await _campaign(market, live)
    await _forget_in_redis(live, campaign_id)
    live.rebuild_grace_ms = GRACE_MS

    loaded, waiting = await load_active_campaigns(market.db, live)
    assert waiting >= 1
    assert await live.snapshot(campaign_id) is None

    await asyncio.sleep(GRACE_MS / 1000 + 0.1)
    loaded, waiting = await load_active_campaigns(market.db, live)
    assert loaded >= 1
    assert await live.snapshot(campaign_id) is not None


async def test_load_of_live_campaign_never_holds(market: Market, live: CampaignLive) -> None:
    """A campaign Redis still has is left alone by a load, even when its ack marks exceed its ledger."""
    campaign_id = await _campaign(market, live)
    member = await market.member()
    await submit_pledge(market.db, live, member, campaign_id, "3", "a")
    await submit_pledge(market.db, live, member, campaign_id, "4", "b")
    await live.acks.flush(market.db)  # marks at seq 2, ledger still empty (no consumer ran)
    assert await market.db.fetchval(
        "SELECT seq FROM campaign_ack_marks WHERE campaign_id = $1", campaign_id
    ) == 2

    assert await load_campaign(market.db, live, campaign_id) is False

    assert await market.db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == "open"
    outcome = await submit_pledge(market.db, live, member, campaign_id, "5", "c")
    assert outcome.accepted, outcome.code


async def test_lost_campaign_waits_for_grace(market: Market, live: CampaignLive) -> None:
    """A lost campaign rejects pledges with campaign_rebuilding until the grace has passed, then accepts them."""
    campaign_id = await _campaign(market, live)
    assert await market.db.fetchval(
        "SELECT live_loaded_at FROM campaigns WHERE id = $1", campaign_id
    ) is not None
    member = await market.member()
    await submit_pledge(market.db, live, member, campaign_id, "3", "a")
    await _consumer(market, live).drain()
    await _forget_in_redis(live, campaign_id)
    live.rebuild_grace_ms = GRACE_MS
    gate = live.keys.campaign_rebuild_gate(campaign_id)

    for attempt in range(2):
        with pytest.raises(DomainError) as pending:
            await submit_pledge(market.db, live, member, campaign_id, "5", "b")
        assert pending.value.code == "campaign_rebuilding", attempt
        assert 0 < pending.value.detail["retry_after_ms"] <= GRACE_MS
    assert await live.redis.exists(gate)
    assert await live.snapshot(campaign_id) is None

    await asyncio.sleep(GRACE_MS / 1000 + 0.1)
    outcome = await submit_pledge(market.db, live, member, campaign_id, "5", "b")
    assert outcome.accepted, outcome.code
    assert outcome.receipt is not None
    assert outcome.receipt.seq == 2
    assert outcome.receipt.committed_units == 5
    assert not await live.redis.exists(gate)
    assert await market.db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == "open"


async def test_lost_campaign_held_after_grace(market: Market, live: CampaignLive) -> None:
    """A lost campaign acknowledged beyond its ledger stays open while waiting, then is rebuilt held."""
    campaign_id = await _campaign(market, live)
    member = await market.member()
    await submit_pledge(market.db, live, member, campaign_id, "3", "a")
    await submit_pledge(market.db, live, member, campaign_id, "4", "b")
    await live.acks.flush(market.db)  # marks at seq 2, ledger empty: the consumer never ran
    await _forget_in_redis(live, campaign_id)
    await live.redis.delete(live.keys.campaign_ledger_stream_for(campaign_id))
    live.rebuild_grace_ms = GRACE_MS

    with pytest.raises(DomainError) as pending:
        await submit_pledge(market.db, live, member, campaign_id, "5", "c")
    assert pending.value.code == "campaign_rebuilding"
    assert await market.db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == "open"

    await asyncio.sleep(GRACE_MS / 1000 + 0.1)
    outcome = await submit_pledge(market.db, live, member, campaign_id, "5", "c")
    assert not outcome.accepted
    assert outcome.code == "campaign_held"
    assert await market.db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == "held"


async def test_worker_campaign_ledger_loop(market: Market, live: CampaignLive) -> None:
    """The worker's campaign ledger loop stores a pledge in pledge_events and stops when the stop event is set."""
    campaign_id = await _campaign(market, live)
    stop = asyncio.Event()
    task = asyncio.create_task(run_campaign_ledger(market.db, live.redis, live.keys, stop))
    await submit_pledge(market.db, live, await market.member(), campaign_id, "2", "w")
    while not await market.db.fetchval("SELECT 1 FROM pledge_events WHERE campaign_id = $1", campaign_id):
        await asyncio.sleep(0.02)
    stop.set()
    await task

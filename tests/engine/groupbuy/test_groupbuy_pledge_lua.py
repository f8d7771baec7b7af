"""pledge.lua, close.lua and admin.lua against a real Redis through CampaignLive."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import orjson
import pytest
import redis.asyncio

from groupbuy_cases import CASES, SUPPLIER_ID, Case, campaign_load, terms_for
from engine.groupbuy.live import CampaignLive, CampaignLoad, CampaignSnapshot, PledgeOutcome
from engine.groupbuy.rules import CampaignState, CampaignTerms, unit_price_for
from engine.keys import Keys

HOUR_MS = 3_600_000
CAMPAIGN_ID = 41  # shard 1 of 4


async def _load(live: CampaignLive, case: Case = CASES[0], campaign_id: int = CAMPAIGN_ID, **changes: Any) -> CampaignTerms:
    """Load an empty campaign that opened a minute ago and closes in an hour, with `changes` to its terms."""
    now = await live.server_time_ms()
    terms = replace(terms_for(case, campaign_id=campaign_id, start_ms=now - 60_000, deadline_ms=now + HOUR_MS), **changes)
    assert await live.load(campaign_load(terms))
    return terms


async def _pledge(live: CampaignLive, user: int, units: int | str, client_id: str, **options: Any) -> PledgeOutcome:
    return await live.pledge(CAMPAIGN_ID, user_id=user, client_id=client_id, units=units, **options)


async def _everything(live: CampaignLive, campaign_id: int = CAMPAIGN_ID) -> tuple[Any, ...]:
    """Every key a pledge may write, for before/after comparisons."""
    keys = live.keys
    return (
        await live.redis.hgetall(keys.campaign_state(campaign_id)),
        await live.redis.hgetall(keys.campaign_pledges(campaign_id)),
        await live.redis.hgetall(keys.campaign_receipts(campaign_id)),
        await live.redis.xrange(keys.campaign_ledger_stream_for(campaign_id)),
        await live.redis.zrange(keys.campaign_deadlines_for(campaign_id), 0, -1, withscores=True),
    )


async def _stream(live: CampaignLive, campaign_id: int = CAMPAIGN_ID) -> list[dict[str, str]]:
    entries = await live.redis.xrange(live.keys.campaign_ledger_stream_for(campaign_id))
    return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]


@asynccontextmanager
async def _published(client: redis.asyncio.Redis, keys: Keys) -> AsyncIterator[list[dict[str, Any]]]:
    """Collect the events published on the channel while the block runs."""
    pubsub = client.pubsub()
    await pubsub.subscribe(keys.events_channel)
    while (await pubsub.get_message(timeout=1.0)) is None:
        pass  # the subscribe confirmation
    events: list[dict[str, Any]] = []
    try:
        yield events
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if message is None:
                break
            events.append(orjson.loads(message["data"]))
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()


# -- the rule table -----------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_lua_case_table(live: CampaignLive, case: Case) -> None:
    """pledge.lua gives every step of the case the stated code, totals, participants, price, stock and minimum."""
    await _load(live, case)
    for number, step in enumerate(case.steps, start=1):
        outcome = await _pledge(live, step.user, step.units, f"c{number}", pledger_supplier_id=step.supplier)
        snapshot = outcome.snapshot
        assert snapshot is not None
        where = f"step {number} of {case.id!r}"
        assert outcome.code == step.code, where
        assert snapshot.committed_units == step.committed, where
        assert snapshot.participants == step.participants, where
        assert snapshot.unit_price_won == step.price, where
        if step.units_left is not None:
            assert outcome.units_left == step.units_left, where
            assert snapshot.stock_left == step.units_left, where
        if step.minimum_met is not None:
            assert snapshot.minimum_met == step.minimum_met, where
        if outcome.accepted:
            assert outcome.receipt is not None
            assert outcome.receipt.units == step.units, where
            assert outcome.receipt.unit_price_won == step.price, where
            assert outcome.receipt.committed_units == step.committed, where
    pledges = await live.pledges(CAMPAIGN_ID)
    assert sum(pledges.values()) == case.steps[-1].committed


# -- what a pledge writes -----------------------------------------------------------

async def test_accepted_pledge_writes_stream_and_publishes(live: CampaignLive, redis_client: redis.asyncio.Redis) -> None:
    """An accepted pledge appends one ledger entry and publishes a campaign event with the pledger's id."""
    await _load(live)
    async with _published(redis_client, live.keys) as events:
        outcome = await _pledge(live, 7, 12, "first")
    assert outcome.accepted
    assert outcome.receipt is not None
    entries = await _stream(live)
    assert len(entries) == 1
    entry = entries[0]
    assert entry["campaign"] == str(CAMPAIGN_ID)
    assert entry["seq"] == "1"
    assert entry["kind"] == "pledge"
    assert entry["user"] == "7"
    assert entry["client"] == "first"
    assert entry["units"] == "12"
    assert entry["delta"] == "12"
    assert entry["committed"] == "12"
    assert entry["participants"] == "1"
    assert entry["server_ms"] == str(outcome.receipt.server_ms)
    assert len(events) == 1
    event = events[0]
    assert event["type"] == "campaign"
    assert event["event"] == "pledge"
    assert event["user_id"] == 7
    assert event["committed_units"] == 12
    assert event["unit_price_won"] == 9_000
    assert event["next_tier_units"] == 50
    assert event["units_to_next_tier"] == 38
    assert event["at_most_price_won"] == 9_000


async def test_change_and_cancel_events(live: CampaignLive, redis_client: redis.asyncio.Redis) -> None:
    """A change publishes "change" and a cancellation "cancel", each with the new total and delta."""
    await _load(live)
    await _pledge(live, 7, 12, "a")
    async with _published(redis_client, live.keys) as events:
        await _pledge(live, 7, 20, "b")
        await _pledge(live, 7, 0, "c")
    assert [e["event"] for e in events] == ["change", "cancel"]
    assert [(e["units"], e["delta_units"]) for e in events] == [(20, 8), (0, -20)]
    assert [e["seq"] for e in events] == [2, 3]


async def test_rejection_writes_nothing(live: CampaignLive, redis_client: redis.asyncio.Redis) -> None:
    """A rejected pledge leaves every key as it was and publishes nothing."""
    await _load(live)
    await _pledge(live, 1, 40, "a")
    before = await _everything(live)
    async with _published(redis_client, live.keys) as events:
        for units, code in ((41, "over_member_limit"), (40, "pledge_unchanged"), ("1e3", "invalid_units")):
            outcome = await _pledge(live, 1, units, f"r{units}")
            assert outcome.code == code
    assert await _everything(live) == before
    assert events == []


@pytest.mark.parametrize("text", ["-1", "1.5", "1e3", "0x10", "１", "100001", "", " 1"])
async def test_lua_rejects_malformed_units(live: CampaignLive, text: str) -> None:
    """The script itself accepts only plain ASCII digits within 0..100000."""
    await _load(live)
    outcome = await _pledge(live, 1, text, "x")
    assert outcome.code == "invalid_units"


async def test_retry_returns_first_receipt(live: CampaignLive) -> None:
    """A retried pledge with the same client id and total gets the first receipt and writes nothing."""
    await _load(live)
    first = await _pledge(live, 1, 5, "same")
    before = await _everything(live)
    again = await _pledge(live, 1, 5, "same")
    assert again.accepted
    assert again.receipt is not None
    assert first.receipt is not None
    assert again.receipt.retry
    assert replace(again.receipt, retry=False) == first.receipt
    assert await _everything(live) == before


async def test_reused_client_id_with_other_units_rejected(live: CampaignLive) -> None:
    """The same client id with another total is rejected as a reused id."""
    await _load(live)
    await _pledge(live, 1, 5, "same")
    outcome = await _pledge(live, 1, 6, "same")
    assert outcome.code == "client_id_reused"


async def test_retry_after_change_still_returns_first_receipt(live: CampaignLive) -> None:
    """A late retry of an earlier pledge returns its receipt and does not undo a later change."""
    await _load(live)
    await _pledge(live, 1, 5, "first")
    await _pledge(live, 1, 9, "second")
    retry = await _pledge(live, 1, 5, "first")
    assert retry.accepted
    assert retry.receipt is not None
    assert retry.receipt.retry
    assert await live.pledges(CAMPAIGN_ID) == {1: 9}


async def test_expected_units_stale_writes_nothing(live: CampaignLive, redis_client: redis.asyncio.Redis) -> None:
    """A pledge whose expected total is stale is rejected with the current total and writes nothing."""
    await _load(live)
    await _pledge(live, 1, 3, "page")
    before = await _everything(live)
    async with _published(redis_client, live.keys) as events:
        outcome = await _pledge(live, 1, 5, "line", expected_units=2)
    assert outcome.code == "pledge_changed"
    assert outcome.member_units == 3
    assert await _everything(live) == before
    assert events == []


async def test_expected_units_current_applies(live: CampaignLive) -> None:
    """A pledge whose expected total is current is applied like any other, first pledges included."""
    await _load(live)
    first = await _pledge(live, 1, 3, "a", expected_units=0)
    assert first.accepted
    change = await _pledge(live, 1, 5, "b", expected_units=3)
    assert change.accepted
    assert change.receipt is not None
    assert (change.receipt.previous_units, change.receipt.delta_units) == (3, 2)
    cancel = await _pledge(live, 1, 0, "c", expected_units=5)
    assert cancel.accepted
    assert await live.pledges(CAMPAIGN_ID) == {}


async def test_expected_units_retry_returns_receipt(live: CampaignLive) -> None:
    """A retry of an accepted compare-and-set pledge gets its first receipt, though its expected total is now stale."""
    await _load(live)
    first = await _pledge(live, 1, 4, "line", expected_units=0)
    retry = await _pledge(live, 1, 4, "line", expected_units=0)
    assert retry.accepted
    assert retry.receipt is not None
    assert retry.receipt.retry
    assert first.receipt is not None
    assert replace(retry.receipt, retry=False) == first.receipt


@pytest.mark.parametrize("text", ["-1", "1.5", "100001", " 1", "x"])
async def test_lua_rejects_malformed_expected_units(live: CampaignLive, text: str) -> None:
    """An expected total that is not plain digits within 0..100000 is rejected, never ignored."""
    await _load(live)
    outcome = await _pledge(live, 1, 1, "x", expected_units=text)
    assert outcome.code == "invalid_units"
    assert await live.pledges(CAMPAIGN_ID) == {}


async def test_not_loaded(live: CampaignLive) -> None:
    """A campaign Redis does not have is reported as not loaded, with no snapshot."""
    outcome = await _pledge(live, 1, 5, "x")
    assert outcome.code == "campaign_not_loaded"
    assert outcome.snapshot is None
    assert await live.snapshot(CAMPAIGN_ID) is None


async def test_snapshot_matches_reply(live: CampaignLive) -> None:
    """`snapshot()` computed in Python equals the script's snapshot apart from the server time."""
    terms = await _load(live, min_buyers=2)
    outcome = await _pledge(live, 1, 30, "x")
    read = await live.snapshot(CAMPAIGN_ID)
    assert read is not None
    assert outcome.snapshot is not None
    assert replace(read, server_ms=0) == replace(outcome.snapshot, server_ms=0)
    expected = CampaignSnapshot.compute(terms, CampaignState(seq=1, committed_units=30, participants=1), 0)
    assert replace(read, server_ms=0) == expected


async def test_snapshots_read_several_at_once(live: CampaignLive) -> None:
    """`snapshots()` returns what `snapshot()` returns per campaign and leaves out campaigns not in Redis."""
    await _load(live, min_buyers=2)
    await _load(live, campaign_id=CAMPAIGN_ID + 1)
    await _pledge(live, 1, 30, "x")
    missing_id = CAMPAIGN_ID + 99

    found = await live.snapshots([CAMPAIGN_ID, missing_id, CAMPAIGN_ID + 1])

    assert sorted(found) == [CAMPAIGN_ID, CAMPAIGN_ID + 1]
    for campaign_id, snapshot in found.items():
        single = await live.snapshot(campaign_id)
        assert single is not None
        assert replace(snapshot, server_ms=0) == replace(single, server_ms=0)
    assert found[CAMPAIGN_ID].committed_units == 30
    assert found[CAMPAIGN_ID].server_ms == found[CAMPAIGN_ID + 1].server_ms, "one Redis TIME for all"
    assert await live.snapshots([]) == {}


async def test_load_never_overwrites(live: CampaignLive) -> None:
    """Loading a campaign that is already live changes nothing and returns False."""
    terms = await _load(live)
    await _pledge(live, 1, 5, "x")
    assert not await live.load(CampaignLoad(terms=terms, state=CampaignState()))
    assert await live.pledges(CAMPAIGN_ID) == {1: 5}


# -- deadline and start by Redis time -----------------------------------------------

async def test_deadline_judged_by_redis_time(live: CampaignLive) -> None:
    """Every pledge judged before the deadline is accepted and every one at or after it is closed."""
    now = await live.server_time_ms()
    case = replace(CASES[0], limit=100_000, cap=100_000)
    terms = terms_for(case, campaign_id=CAMPAIGN_ID, start_ms=now - 1_000, deadline_ms=now + 40)
    assert await live.load(campaign_load(terms))
    judged: list[tuple[int, str]] = []
    number = 0
    while not judged or judged[-1][1] != "campaign_closed":
        number += 1
        outcome = await _pledge(live, number, 1, f"d{number}")
        assert outcome.snapshot is not None
        moment = outcome.receipt.server_ms if outcome.receipt else outcome.snapshot.server_ms
        judged.append((moment, outcome.code))
    for moment, code in judged:
        assert code == ("accepted" if moment < terms.deadline_ms else "campaign_closed"), (moment, terms.deadline_ms)
    snapshot = await live.snapshot(CAMPAIGN_ID)
    assert snapshot is not None
    assert snapshot.committed_units == sum(1 for _, code in judged if code == "accepted")


async def test_deadline_passed_and_not_started(live: CampaignLive) -> None:
    """A campaign whose deadline passed 1 ms ago rejects pledges as closed, and one starting later as not started."""
    now = await live.server_time_ms()
    closed = terms_for(CASES[0], campaign_id=CAMPAIGN_ID, start_ms=now - HOUR_MS, deadline_ms=now - 1)
    assert await live.load(campaign_load(closed))
    assert (await _pledge(live, 1, 1, "a")).code == "campaign_closed"
    later = terms_for(CASES[0], campaign_id=CAMPAIGN_ID + 4, start_ms=now + HOUR_MS, deadline_ms=now + 2 * HOUR_MS)
    assert await live.load(campaign_load(later))
    outcome = await live.pledge(CAMPAIGN_ID + 4, user_id=1, client_id="b", units=1)
    assert outcome.code == "campaign_not_started"


# -- closing and staff actions --------------------------------------------------------

async def test_begin_close_after_deadline_once(live: CampaignLive) -> None:
    """A due campaign moves to closing with one close event; a second call returns the same state."""
    now = await live.server_time_ms()
    terms = terms_for(CASES[0], campaign_id=CAMPAIGN_ID, start_ms=now - 1_000, deadline_ms=now + 30)
    assert await live.load(campaign_load(terms))
    await _pledge(live, 1, 12, "a")
    assert (await live.begin_close(CAMPAIGN_ID)).get("code") in ("not_due", None)
    while await live.server_time_ms() < terms.deadline_ms:
        await asyncio.sleep(0.01)
    assert await live.due_campaigns(live.keys.shard_of(CAMPAIGN_ID)) == [CAMPAIGN_ID]
    first = await live.begin_close(CAMPAIGN_ID)
    second = await live.begin_close(CAMPAIGN_ID)
    assert first["ok"]
    assert second["ok"]
    assert first["state"]["seq"] == second["state"]["seq"] == "2"
    assert first["state"]["status"] == "closing"
    assert first["pledges"] == {"1": 12}
    kinds = [entry["kind"] for entry in await _stream(live)]
    assert kinds == ["pledge", "close"]
    assert (await _pledge(live, 2, 1, "late")).code == "campaign_closed"

    settled = await live.admin(CAMPAIGN_ID, "settle", "succeeded")
    assert settled["ok"]
    assert await live.due_campaigns(live.keys.shard_of(CAMPAIGN_ID)) == []
    assert (await live.admin(CAMPAIGN_ID, "settle", "succeeded"))["ok"]
    assert (await live.admin(CAMPAIGN_ID, "settle", "failed"))["code"] == "not_closing"
    assert (await live.begin_close(CAMPAIGN_ID))["code"] == "not_open"


async def test_begin_close_not_due(live: CampaignLive) -> None:
    """An open campaign before its deadline and not sold out is not due and stays open."""
    await _load(live)
    reply = await live.begin_close(CAMPAIGN_ID)
    assert reply["code"] == "not_due"
    snapshot = await live.snapshot(CAMPAIGN_ID)
    assert snapshot is not None
    assert snapshot.status == "open"


async def test_sold_out_close_switch(live: CampaignLive) -> None:
    """With close-when-sold-out on, a sold-out campaign is due at once; a cancellation makes it not due again."""
    await _load(live, stock_cap_units=50, close_when_sold_out=True)
    shard = live.keys.shard_of(CAMPAIGN_ID)
    await _pledge(live, 1, 40, "a")
    assert await live.due_campaigns(shard) == []
    await _pledge(live, 2, 10, "b")
    assert await live.due_campaigns(shard) == [CAMPAIGN_ID]
    await _pledge(live, 2, 9, "c")
    assert await live.due_campaigns(shard) == []
    assert (await live.begin_close(CAMPAIGN_ID))["code"] == "not_due"
    await _pledge(live, 2, 10, "d")
    reply = await live.begin_close(CAMPAIGN_ID)
    assert reply["ok"]
    assert reply["snapshot"]["sold_out"] is True


async def test_sold_out_without_switch_stays_open(live: CampaignLive) -> None:
    """Without the switch, a sold-out campaign stays open until its deadline and still takes decreases."""
    await _load(live, stock_cap_units=40)
    await _pledge(live, 1, 40, "a")
    assert await live.due_campaigns(live.keys.shard_of(CAMPAIGN_ID)) == []
    assert (await _pledge(live, 2, 1, "b")).code == "sold_out"
    assert (await _pledge(live, 1, 30, "c")).accepted


async def test_staff_cancel(live: CampaignLive, redis_client: redis.asyncio.Redis) -> None:
    """A cancel is one event with the next seq; later pledges are rejected as cancelled.

    The campaign stays due until a settle, so the closer records the cancel in PostgreSQL.
    """
    await _load(live)
    await _pledge(live, 1, 5, "a")
    async with _published(redis_client, live.keys) as events:
        reply = await live.admin(CAMPAIGN_ID, "cancel", actor_id=99)
    assert reply == {**reply, "ok": True, "seq": 2}
    assert [e["event"] for e in events] == ["cancel"]
    assert (await _pledge(live, 1, 6, "b")).code == "campaign_cancelled"
    again = await live.admin(CAMPAIGN_ID, "cancel")
    assert (again["code"], again["status"], again["seq"]) == ("not_open", "cancelled", 2)
    assert [entry["kind"] for entry in await _stream(live)] == ["pledge", "cancel"]
    shard = live.keys.shard_of(CAMPAIGN_ID)
    assert await live.due_campaigns(shard) == [CAMPAIGN_ID]
    close = await live.begin_close(CAMPAIGN_ID)
    assert (close["code"], close["status"], close["seq"]) == ("not_open", "cancelled", 2)
    assert await live.due_campaigns(shard) == [CAMPAIGN_ID]
    assert (await live.admin(CAMPAIGN_ID, "settle", "cancelled"))["ok"]
    assert await live.due_campaigns(shard) == []
    assert [entry["kind"] for entry in await _stream(live)] == ["pledge", "cancel"]


async def test_release_expired_hold(live: CampaignLive, redis_client: redis.asyncio.Redis) -> None:
    """A release takes back the held units as one hold_expired event and moves the tier back."""
    await _load(live)
    await _pledge(live, 1, 8, "a")
    await _pledge(live, 2, 4, "b")
    async with _published(redis_client, live.keys) as events:
        reply = await live.release(CAMPAIGN_ID, 2, 4)
    assert reply["ok"]
    assert reply["seq"] == 3
    snapshot = CampaignSnapshot.from_reply(reply["snapshot"])
    assert snapshot.committed_units == 8
    assert snapshot.participants == 1
    assert snapshot.unit_price_won == 10_000
    assert await live.pledges(CAMPAIGN_ID) == {1: 8}
    assert events[0]["event"] == "hold_expired"
    assert events[0]["user_id"] == 2
    entry = (await _stream(live))[-1]
    assert (entry["kind"], entry["user"], entry["units"], entry["delta"]) == ("hold_expired", "2", "0", "-4")
    assert (await live.release(CAMPAIGN_ID, 2, 1))["code"] == "no_pledge"
    partial = await live.release(CAMPAIGN_ID, 1, 3)
    assert CampaignSnapshot.from_reply(partial["snapshot"]).committed_units == 5
    assert (await live.admin(CAMPAIGN_ID, "release", "1:x"))["code"] == "invalid_units"


async def test_settle_rejects_unknown_status(live: CampaignLive) -> None:
    """Settle accepts only a final status."""
    await _load(live)
    assert (await live.admin(CAMPAIGN_ID, "settle", "open"))["code"] == "invalid_status"
    assert (await live.admin(CAMPAIGN_ID, "bogus"))["code"] == "unknown_action"


def test_price_helper_matches_tiers() -> None:
    """The case table's tiers price 49 units at 9,000 and 50 at 8,000."""
    terms = terms_for(CASES[0], campaign_id=1, start_ms=0, deadline_ms=1)
    assert unit_price_for(terms, 49) == 9_000
    assert unit_price_for(terms, 50) == 8_000
    assert terms.supplier_id == SUPPLIER_ID

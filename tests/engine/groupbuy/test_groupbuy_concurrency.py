"""Concurrent pledges from many members never oversell a campaign or break a member's limit."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest_asyncio
import redis.asyncio

from groupbuy_cases import CASES, campaign_load, terms_for
from invariants import check_campaign_invariants
from engine.groupbuy.live import CampaignLive, PledgeOutcome
from engine.groupbuy.rules import CampaignTerms
from engine.keys import Keys

CAMPAIGN_ID = 77
PROCESSES = 4


@pytest_asyncio.fixture
async def lives(redis_url: str, keys: Keys) -> AsyncIterator[list[CampaignLive]]:
    """CampaignLive objects on separate Redis clients, like several web processes."""
    clients = [redis.asyncio.Redis.from_url(redis_url) for _ in range(PROCESSES)]
    yield [CampaignLive(client, keys) for client in clients]
    for client in clients:
        await client.aclose()


async def _load(live: CampaignLive, *, cap: int, limit: int = 10) -> CampaignTerms:
    now = await live.server_time_ms()
    terms = terms_for(CASES[0], campaign_id=CAMPAIGN_ID, start_ms=now - 1_000, deadline_ms=now + 3_600_000)
    terms = replace(terms, stock_cap_units=cap, per_member_limit=limit, tiers=((10, 9_000),))
    assert await live.load(campaign_load(terms))
    return terms


async def _fill(live: CampaignLive, units: int) -> None:
    """Pledge `units` in total from members 100_000 and up, 10 at a time."""
    user = 100_000
    while units > 0:
        step = min(10, units)
        outcome = await live.pledge(CAMPAIGN_ID, user_id=user, client_id="fill", units=step)
        assert outcome.accepted, outcome.code
        units -= step
        user += 1


async def _race(lives: list[CampaignLive], requests: list[tuple[int, int]]) -> list[PledgeOutcome]:
    return list(await asyncio.gather(*(
        lives[number % len(lives)].pledge(CAMPAIGN_ID, user_id=user, client_id=f"r{number}", units=units)
        for number, (user, units) in enumerate(requests)
    )))


async def test_200_members_race_for_last_5_units(lives: list[CampaignLive]) -> None:
    """Of 200 members pledging 1 unit when 5 remain, exactly 5 are accepted and the rest see sold out."""
    terms = await _load(lives[0], cap=100)
    await _fill(lives[0], 95)
    outcomes = await _race(lives, [(user, 1) for user in range(1, 201)])
    accepted = [o for o in outcomes if o.accepted]
    assert len(accepted) == 5
    assert {o.code for o in outcomes if not o.accepted} == {"sold_out"}
    assert sorted(o.receipt.committed_units for o in accepted if o.receipt) == [96, 97, 98, 99, 100]
    snapshot = await lives[0].snapshot(CAMPAIGN_ID)
    assert snapshot is not None
    assert snapshot.committed_units == 100
    assert snapshot.stock_left == 0
    assert sum((await lives[0].pledges(CAMPAIGN_ID)).values()) == 100
    await check_campaign_invariants(None, lives[0], receipts=outcomes, campaign_terms_by_id={CAMPAIGN_ID: terms})


async def test_pledges_of_3_when_2_remain(lives: list[CampaignLive]) -> None:
    """Pledges of 3 when 2 remain are all rejected whole with 2 units left; then one pledge of 2 fits."""
    terms = await _load(lives[0], cap=100)
    await _fill(lives[0], 98)
    outcomes = await _race(lives, [(user, 3) for user in range(1, 51)])
    assert {o.code for o in outcomes} == {"over_stock"}
    assert {o.units_left for o in outcomes} == {2}
    outcomes = await _race(lives, [(user, 2) for user in range(1, 51)])
    assert sum(o.accepted for o in outcomes) == 1
    assert {o.code for o in outcomes if not o.accepted} == {"sold_out"}
    assert sum((await lives[0].pledges(CAMPAIGN_ID)).values()) == 100
    await check_campaign_invariants(None, lives[0], receipts=outcomes, campaign_terms_by_id={CAMPAIGN_ID: terms})


async def test_random_race_never_oversells(lives: list[CampaignLive]) -> None:
    """Random pledges, changes and cancellations from 200 members keep every total within cap and limit."""
    terms = await _load(lives[0], cap=150, limit=5)
    rng = random.Random(20261204)
    requests = [(rng.randrange(1, 201), rng.choice([0, 1, 2, 3, 5, 6])) for _ in range(1_000)]
    outcomes = await _race(lives, requests)
    pledges = await lives[0].pledges(CAMPAIGN_ID)
    snapshot = await lives[0].snapshot(CAMPAIGN_ID)
    assert snapshot is not None
    assert snapshot.committed_units == sum(pledges.values())
    assert snapshot.committed_units <= terms.stock_cap_units
    assert snapshot.participants == len(pledges)
    assert all(0 < units <= terms.per_member_limit for units in pledges.values())
    accepted = [o.receipt for o in outcomes if o.receipt is not None]
    assert sorted(r.seq for r in accepted) == list(range(1, len(accepted) + 1))
    assert snapshot.seq == len(accepted)
    for outcome in outcomes:
        if outcome.code == "over_stock":
            assert outcome.units_left is not None
            assert outcome.units_left < terms.stock_cap_units
    # Replaying the accepted receipts in seq order gives the same totals.
    totals: dict[int, int] = {}
    by_seq = sorted(
        ((o.receipt.seq, user, o.receipt.units) for o, (user, _) in zip(outcomes, requests) if o.receipt is not None)
    )
    for _, user, units in by_seq:
        totals[user] = units
    assert {u: n for u, n in totals.items() if n} == pledges
    await check_campaign_invariants(None, lives[0], receipts=outcomes, campaign_terms_by_id={CAMPAIGN_ID: terms})

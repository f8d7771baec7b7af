"""The data every group-buy benchmark shares: campaigns in PostgreSQL and Redis, pledge totals.

Campaigns are created with `engine.groupbuy.campaigns.create_campaign` (a staff
account, an approved supplier and product of the benchmark's own), which inserts the
row and loads the live state with the same script the web process uses. They opened
a minute ago and close in a day, with the largest stock cap and per-member limit the
rules allow (`MAX_UNITS`), so no pledge of a run is rejected for stock or limit.

Totals: every pledger alternates its total on each campaign between 1 and 2 units,
so each pledge changes the member's total and takes the accepting path of
pledge.lua (the script rejects an unchanged total as `pledge_unchanged`).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import asyncpg
from redis.asyncio import Redis

from engine.actors import STAFF, Actor
from engine.groupbuy.campaigns import CampaignDraft, create_campaign
from engine.groupbuy.live import PLEDGE_SCRIPT, CampaignLive, CampaignLoad
from engine.groupbuy.rules import MAX_UNITS, CampaignState, CampaignTerms
from engine.keys import Keys

LIST_PRICE_WON = 10_000
TIERS = ((100, 9_000), (1_000, 8_000))


def next_units(previous_units: int) -> int:
    """Return the next total of a pledger's alternating sequence 1, 2, 1, 2, ..."""
    return 2 if previous_units == 1 else 1


async def create_campaigns(db: asyncpg.Pool, redis: Redis, keys: Keys, count: int) -> list[int]:
    """Create `count` open campaigns of a fresh product in PostgreSQL, load them into Redis; return their ids."""
    tag = secrets.token_hex(4)
    category_id = await db.fetchval(
        "INSERT INTO categories (code, name_ko, name_en) VALUES ($1, '벤치마크', 'Benchmark') RETURNING id",
        f"bench-{tag}",
    )
    supplier_id = await db.fetchval(
        "INSERT INTO suppliers (name, business_no, representative, phone, email, address, kind, is_local, status)"
        " VALUES ('벤치마크 농장', $1, '김벤치', '0629600000', 'bench@example.invalid', '광주광역시 광산구',"
        " 'farm', true, 'approved') RETURNING id",
        f"{secrets.randbelow(10**10):010d}",
    )
    product_id = await db.fetchval(
        "INSERT INTO products (supplier_id, category_id, name, kind, is_local, origin_label, unit, price_won, status)"
        " VALUES ($1, $2, '벤치마크 햇김', 'farm', true, '국내산', '1세트', $3, 'approved') RETURNING id",
        supplier_id, category_id, LIST_PRICE_WON,
    )
    staff_id = await db.fetchval(
        "INSERT INTO users (email, password_hash, display_name, role) VALUES ($1, 'x', '벤치 운영자', 'staff')"
        " RETURNING id",
        f"bench-staff-{tag}@example.invalid",
    )
    staff = Actor(staff_id, STAFF, "벤치 운영자")
    live = CampaignLive(redis, keys)
    now = datetime.now(UTC)
    draft = CampaignDraft(
        product_id=product_id, title="벤치마크 공동구매", list_price_won=LIST_PRICE_WON, tiers=TIERS,
        min_total_units=10, stock_cap_units=MAX_UNITS, per_member_limit=MAX_UNITS,
        start_at=now - timedelta(minutes=1), deadline_at=now + timedelta(days=1),
    )
    return [await create_campaign(db, live, staff, draft) for _ in range(count)]


async def load_redis_only_campaign(redis: Redis, keys: Keys, campaign_id: int) -> None:
    """Load a campaign into Redis alone, with a stock cap of 10^12 units, for redis-benchmark.

    redis-benchmark pledges 1 unit for a new random member on every call, so the
    committed total grows by one per call, past the `MAX_UNITS` cap that
    PostgreSQL's campaigns allow. This campaign never reaches PostgreSQL.
    """
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    terms = CampaignTerms(
        campaign_id=campaign_id, supplier_id=1, list_price_won=LIST_PRICE_WON, tiers=TIERS,
        min_total_units=10, min_buyers=None, stock_cap_units=10**12, per_member_limit=10,
        start_ms=now_ms - 60_000, deadline_ms=now_ms + 86_400_000, close_when_sold_out=False,
    )
    state = CampaignState(status="open", seq=0, committed_units=0, participants=0, pledges={})
    await CampaignLive(redis, keys).load(CampaignLoad(terms, state))


def redis_benchmark_pledge_command(keys: Keys, campaign_id: int) -> list[str]:
    """EVALSHA of pledge.lua as `CampaignLive.pledge` sends it, for redis-benchmark.

    redis-benchmark replaces each `__rand_int__` with its own 12-digit random number,
    so every call pledges 1 unit as a new member with a new client id: each call is
    accepted and does every write (state, pledges, receipt, ledger stream, publish).
    """
    return [
        "EVALSHA", PLEDGE_SCRIPT.sha, "5",
        keys.campaign_state(campaign_id), keys.campaign_pledges(campaign_id),
        keys.campaign_receipts(campaign_id), keys.campaign_ledger_stream_for(campaign_id),
        keys.campaign_deadlines_for(campaign_id),
        "__rand_int__", "c__rand_int__", "1", "0", keys.events_channel,
    ]

"""Helpers shared by the group-buy worker tests: campaigns, pledges, closing and ledger sums.

Import the fixtures (`campaigns`, `campaign_consumer`) into a test module to use them.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta
from typing import Any

import asyncpg
import pytest_asyncio
import redis.asyncio

from engine.actors import Actor
from engine.auction.ledger import LedgerConsumer
from engine.config import Settings
from engine.groupbuy.campaigns import CampaignDraft, create_campaign
from engine.groupbuy.closing import close_due_campaigns
from engine.groupbuy.ledger import CAMPAIGN_LEDGER
from engine.groupbuy.live import CampaignLive, PledgeReceipt
from engine.groupbuy.payments import confirm_pledge_deposit, record_up_front_payment
from engine.groupbuy.service import submit_pledge
from engine.keys import Keys
from worker_testkit import Market

FINAL = ("succeeded", "failed", "held", "cancelled")
# 10,000 won list price; 9,000 won from 5 units (the minimum), 8,000 won from 10.
TIERS = [[5, 9_000], [10, 8_000]]
AT_MOST_WON = 9_000  # the price at the minimum total of 5 units


@pytest_asyncio.fixture
async def campaigns(redis_client: redis.asyncio.Redis, wk_settings: Settings) -> CampaignLive:
    return CampaignLive(redis_client, Keys(wk_settings.redis_prefix, wk_settings.redis_shards))


@pytest_asyncio.fixture
async def campaign_consumer(db: asyncpg.Pool, campaigns: CampaignLive) -> LedgerConsumer:
    """A campaign ledger consumer the test drives itself (`drain()`)."""
    return LedgerConsumer(db, campaigns.redis, campaigns.keys, block_ms=50, claim_idle_s=0.2, ledger=CAMPAIGN_LEDGER)


async def make_campaign(market: Market, live: CampaignLive, *, duration_s: float = 1.0, **changes: Any) -> int:
    """Create an open campaign (staff, through the engine) whose deadline is `duration_s` from now."""
    now = await market.db.fetchval("SELECT now()")
    fields: dict[str, Any] = {
        "product_id": market.product_id,
        "title": "광산 곱창김 공동구매",
        "list_price_won": 10_000,
        "tiers": TIERS,
        "min_total_units": 5,
        "stock_cap_units": 100,
        "per_member_limit": 50,
        "start_at": now - timedelta(seconds=1),
        "deadline_at": now + timedelta(seconds=duration_s),
    }
    fields.update(changes)
    return await create_campaign(market.db, live, market.staff, CampaignDraft(**fields))


async def pledge(market: Market, live: CampaignLive, campaign_id: int, member: Actor, units: int) -> PledgeReceipt:
    """Pledge through the service as the web layer does; the pledge must be accepted."""
    outcome = await submit_pledge(market.db, live, member, campaign_id, units, secrets.token_hex(8))
    assert outcome.accepted, outcome.code
    assert outcome.receipt is not None
    return outcome.receipt


async def wait_until_deadline(live: CampaignLive, campaign_id: int) -> None:
    """Sleep until Redis time has reached the campaign's deadline."""
    while True:
        snapshot = await live.snapshot(campaign_id)
        assert snapshot is not None
        if snapshot.server_ms >= snapshot.deadline_ms:
            return
        await asyncio.sleep(max(0.01, (snapshot.deadline_ms - snapshot.server_ms) / 1000))


async def close_until_final(
    db: asyncpg.Pool, live: CampaignLive, settings: Settings, consumer: LedgerConsumer, campaign_id: int
) -> str:
    """Run closer rounds and drain the ledger between them until the campaign is final in both stores."""
    status = None
    for _ in range(20):
        await close_due_campaigns(db, live, settings)
        await consumer.drain()
        status = await db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id)
        snapshot = await live.snapshot(campaign_id)
        if status in FINAL and snapshot is not None and snapshot.status == status:
            return status
    raise AssertionError(f"campaign {campaign_id} did not become final: {status}")


async def campaign_counts(db: asyncpg.Pool, campaign_id: int) -> dict[str, int]:
    return {
        "orders": await db.fetchval("SELECT count(*) FROM orders WHERE campaign_id = $1", campaign_id),
        "commissions": await db.fetchval(
            "SELECT count(*) FROM money_ledger m JOIN orders o ON o.id = m.order_id"
            " WHERE o.campaign_id = $1 AND m.entry = 'commission'", campaign_id,
        ),
        "mails": await db.fetchval("SELECT count(*) FROM outbox WHERE event_key LIKE $1", f"campaign:{campaign_id}:%"),
    }


async def ledger_sums(db: asyncpg.Pool, order_id: int) -> dict[str, int]:
    """Sum an order's money-ledger rows per entry kind."""
    rows = await db.fetch(
        "SELECT entry, sum(amount_won) AS total FROM money_ledger WHERE order_id = $1 GROUP BY entry", order_id
    )
    return {row["entry"]: row["total"] for row in rows}


async def orders_by_user(db: asyncpg.Pool, campaign_id: int) -> dict[int, asyncpg.Record]:
    rows = await db.fetch("SELECT * FROM orders WHERE campaign_id = $1", campaign_id)
    return {row["buyer_id"]: row for row in rows}


async def pay_up_front(market, campaigns, campaign_id, member, units, *, confirm: bool) -> int:  # type: ignore[no-untyped-def]
    """Pledge `units` and record the "at most" bank transfer, confirmed by staff when `confirm` is set."""
    await pledge(market, campaigns, campaign_id, member, units)
    payment_id = await record_up_front_payment(market.db, campaign_id, member.user_id, units, units * AT_MOST_WON)
    if confirm:
        await confirm_pledge_deposit(market.db, payment_id, market.staff)
    return payment_id


async def pledge_ledger(db: asyncpg.Pool, campaign_id: int) -> list[tuple[int, str, int]]:
    """Return the money-ledger rows of the campaign's pledge payments as (payment id, entry, won), in row order."""
    rows = await db.fetch(
        """SELECT m.pledge_payment_id, m.entry, m.amount_won FROM money_ledger m
           JOIN pledge_payments p ON p.id = m.pledge_payment_id
           WHERE p.campaign_id = $1 ORDER BY m.id""",
        campaign_id,
    )
    return [(row["pledge_payment_id"], row["entry"], row["amount_won"]) for row in rows]


async def partly_prepaid_order(db, campaigns, settings, consumer, market, member) -> tuple[int, asyncpg.Record]:  # type: ignore[no-untyped-def]
    """Close an up-front campaign where `member` paid for 4 units, then raised the pledge to 10.

    The campaign closes at 8,000 won, so the member's order is 80,000 won and
    awaits the 44,000 won left after the 36,000 won paid up front. Returns the
    paid payment's id and the order.
    """
    campaign_id = await make_campaign(market, campaigns, payment_timing="up_front")
    payment_id = await pay_up_front(market, campaigns, campaign_id, member, 4, confirm=True)
    await pledge(market, campaigns, campaign_id, member, 10)
    await wait_until_deadline(campaigns, campaign_id)
    assert await close_until_final(db, campaigns, settings, consumer, campaign_id) == "succeeded"
    order = (await orders_by_user(db, campaign_id))[member.user_id]
    return payment_id, order

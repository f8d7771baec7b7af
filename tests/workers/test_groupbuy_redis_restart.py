"""A Redis killed during pledging: acknowledged pledges reach the ledger and the campaign closes once.

Each test runs with redis-py pipelines (`pool`) and on a `PipelinedConnection`
(`pipelined`, as the web app sends pledges).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from embedded.redis import PrivateRedis, start_private_redis
from engine.auction.batching import ScriptBatcher
from engine.auction.ledger import LedgerConsumer
from engine.auction.pipelined import PipelinedConnection
from engine.errors import DomainError
from engine.groupbuy.ledger import CAMPAIGN_LEDGER
from engine.groupbuy.live import CampaignLive, PledgeReceipt
from engine.groupbuy.service import submit_pledge
from engine.keys import Keys
from invariants import check_campaign_invariants
from groupbuy_testkit import campaign_counts, close_until_final, make_campaign, wait_until_deadline
from test_redis_restart import restart

pytestmark = pytest.mark.slow

# A short rebuild grace, so campaigns Redis lost are rebuilt within a second.
GRACE_MS = 300


@pytest_asyncio.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    server = start_private_redis(tmp_path / "redis", appendonly=True)
    yield server
    server.stop()


@pytest_asyncio.fixture(params=["pool", "pipelined"])
async def private_campaigns(
    request: pytest.FixtureRequest, private_redis: PrivateRedis, wk_settings
) -> AsyncIterator[CampaignLive]:
    client = redis.asyncio.Redis.from_url(private_redis.url, socket_timeout=5)
    connection = PipelinedConnection(client) if request.param == "pipelined" else None
    batcher = ScriptBatcher(client, connection=connection)
    yield CampaignLive(client, Keys(wk_settings.redis_prefix, wk_settings.redis_shards), batcher=batcher)
    if connection is not None:
        await connection.close()
    await client.aclose()


async def pledge_until_answered(db, live: CampaignLive, campaign_id: int, member, units: int) -> PledgeReceipt | None:  # type: ignore[no-untyped-def]
    """Pledge as a browser would: retry with the same client id until Redis replies; None when rejected.

    A campaign that waits for its rebuild is retried after the wait it reports.
    """
    client_id = secrets.token_hex(8)
    while True:
        try:
            outcome = await submit_pledge(db, live, member, campaign_id, units, client_id)
        except (RedisConnectionError, RedisTimeoutError, OSError):
            await asyncio.sleep(0.05)
            continue
        except DomainError as error:
            if error.code != "campaign_rebuilding":
                raise
            await asyncio.sleep(error.detail["retry_after_ms"] / 1000)
            continue
        return outcome.receipt if outcome.accepted else None


async def assert_receipts_recorded(db, campaign_id: int, receipts: list[PledgeReceipt]) -> None:  # type: ignore[no-untyped-def]
    rows = {r["seq"]: r for r in await db.fetch("SELECT * FROM pledge_events WHERE campaign_id = $1", campaign_id)}
    for receipt in receipts:
        assert receipt.seq in rows, f"receipt seq {receipt.seq} missing from the ledger"
        assert (rows[receipt.seq]["units"], rows[receipt.seq]["committed_units"]) == (
            receipt.units, receipt.committed_units,
        )


async def assert_one_order_per_pledge(db, campaign_id: int) -> None:  # type: ignore[no-untyped-def]
    """Check one order per member with units at the close, each for the member's last pledged total."""
    final_units: dict[int, int] = {}
    events = await db.fetch(
        "SELECT user_id, units FROM pledge_events WHERE campaign_id = $1 AND kind = 'pledge' ORDER BY seq", campaign_id
    )
    for event in events:
        final_units[event["user_id"]] = event["units"]
    orders = {
        row["buyer_id"]: row["units"]
        for row in await db.fetch("SELECT buyer_id, units FROM orders WHERE campaign_id = $1", campaign_id)
    }
    assert orders == {user_id: units for user_id, units in final_units.items() if units}
    counts = await campaign_counts(db, campaign_id)
    assert counts == {"orders": len(orders), "commissions": len(orders), "mails": len(orders) + 1}


async def test_killed_redis_keeps_acknowledged_pledges(db, private_redis, private_campaigns, wk_settings, market):
    """Pledges acknowledged before and after a SIGKILL of Redis (append-only, fsync always) are all recorded."""
    live = private_campaigns
    consumer = LedgerConsumer(db, live.redis, live.keys, block_ms=50, ledger=CAMPAIGN_LEDGER)
    stop = asyncio.Event()
    consuming = asyncio.create_task(consumer.run(stop))
    campaign_id = await make_campaign(market, live, duration_s=5)
    members = [await market.member(name) for name in ("김가영", "이나래", "박다솜", "최라온")]
    receipts: list[PledgeReceipt] = []

    async def pledger(index: int) -> None:
        for round_no in range(10):
            receipt = await pledge_until_answered(db, live, campaign_id, members[index], round_no + 1)
            if receipt is not None:
                receipts.append(receipt)
            await asyncio.sleep(0.01)

    async def killer() -> None:
        while len(receipts) < 10:
            await asyncio.sleep(0.005)
        await restart(private_redis, wipe=False)

    await asyncio.gather(*(pledger(i) for i in range(4)), killer())
    assert len(receipts) == 40
    await wait_until_deadline(live, campaign_id)
    try:
        status = await close_until_final(db, live, wk_settings, consumer, campaign_id)
    finally:
        stop.set()
        await consuming

    assert status == "succeeded"
    await assert_receipts_recorded(db, campaign_id, receipts)
    assert await db.fetchval("SELECT final_units FROM campaigns WHERE id = $1", campaign_id) == 40
    await assert_one_order_per_pledge(db, campaign_id)
    await check_campaign_invariants(db, private_campaigns, receipts=receipts)


async def test_empty_redis_rebuilds_campaign(db, private_redis, private_campaigns, wk_settings, market):
    """A Redis restarted empty is rebuilt from the ledger after the rebuild grace, and the campaign closes once."""
    live = private_campaigns
    consumer = LedgerConsumer(db, live.redis, live.keys, block_ms=50, ledger=CAMPAIGN_LEDGER)
    campaign_id = await make_campaign(market, live, duration_s=4)
    first, second = await market.member("김가영"), await market.member("이나래")
    receipts = [await pledge_until_answered(db, live, campaign_id, first, 3),
                await pledge_until_answered(db, live, campaign_id, second, 4)]
    await consumer.drain()
    await live.acks.flush(db)
    before = await live.snapshot(campaign_id)

    live.rebuild_grace_ms = GRACE_MS
    await restart(private_redis, wipe=True)
    assert await live.snapshot(campaign_id) is None

    with pytest.raises(DomainError) as pending:
        await submit_pledge(db, live, first, campaign_id, 5, "after-restart")
    assert pending.value.code == "campaign_rebuilding"
    receipts.append(await pledge_until_answered(db, live, campaign_id, first, 5))
    assert all(receipts)
    rebuilt = await live.snapshot(campaign_id)
    assert rebuilt is not None and before is not None
    assert (rebuilt.seq, rebuilt.committed_units) == (before.seq + 1, 9)

    await wait_until_deadline(live, campaign_id)
    assert await close_until_final(db, live, wk_settings, consumer, campaign_id) == "succeeded"
    await assert_receipts_recorded(db, campaign_id, [r for r in receipts if r])
    orders = {
        row["buyer_id"]: (row["units"], row["unit_price_won"])
        for row in await db.fetch("SELECT * FROM orders WHERE campaign_id = $1", campaign_id)
    }
    assert orders == {first.user_id: (5, 9_000), second.user_id: (4, 9_000)}
    await check_campaign_invariants(db, private_campaigns)

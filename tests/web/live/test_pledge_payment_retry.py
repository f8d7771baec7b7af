"""Up-front payments of pledges whose first request failed after Redis applied them, against real servers.

The failure is real: the test holds an ACCESS EXCLUSIVE lock on `campaigns` while a
server whose connections carry `lock_timeout=200ms` handles the pledge. Redis
applies it, then the server's next PostgreSQL statement times out, so no payment
row is written. The retry with the same client id must record the payment once.
Every campaign has the factory's terms: the "at most" price is 9,000원 (the tier
at the minimum of 5 units), so each unit a payment covers is 9,000원.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import pytest

from engine.actors import STAFF, Actor
from engine.config import Settings
from engine.groupbuy.closing import close_due_campaigns
from engine.groupbuy.live import CampaignLive
from engine.groupbuy.payments import confirm_pledge_deposit
from engine.groupbuy.staff import cancel_campaign
from tests.invariants import check_campaign_invariants, check_pledge_payments_money
from tests.web.live.campaign_fixtures import CampaignFactory, engine_campaigns, make_campaign  # noqa: F401
from tests.web.live.conftest import LiveServer, SignedIn, World, insert_user
from tests.web.live.test_ack_socket import lock_timeout_server, pledge_while_campaigns_locked  # noqa: F401
from tests.web.live.test_order_deposit import ledger_consumer  # noqa: F401
from tests.web.live.test_ws_pledges import open_pledge_socket
from tests.web.live.test_ws_pledges import pledge as socket_pledge

pytestmark = pytest.mark.slow

UNIT_WON = 9_000


@asynccontextmanager
async def campaigns_locked(db: asyncpg.Pool) -> AsyncIterator[None]:
    """Hold an ACCESS EXCLUSIVE lock on `campaigns` until the block ends."""
    async with db.acquire() as holder, holder.transaction():
        await holder.execute("LOCK TABLE campaigns IN ACCESS EXCLUSIVE MODE")
        yield


async def api_pledge(member: SignedIn, campaign_id: int, units: int, client_id: str) -> tuple[int, dict[str, Any]]:
    """POST a pledge to the JSON API; return the status and the JSON body (empty for a plain-text 500)."""
    response = await member.http.post(
        f"/api/v1/campaigns/{campaign_id}/pledges",
        json={"units": units, "client_id": client_id},
        headers={"X-CSRF-Token": member.csrf_token},
    )
    is_json = response.headers.get("content-type", "").startswith("application/json")
    return response.status_code, response.json() if is_json else {}


async def failed_pledge(db: asyncpg.Pool, member: SignedIn, campaign_id: int, units: int, client_id: str) -> None:
    """Send a pledge that Redis applies and whose request then fails on the locked `campaigns` table."""
    async with campaigns_locked(db):
        status, _body = await api_pledge(member, campaign_id, units, client_id)
    assert status == 500


async def payments(db: asyncpg.Pool, campaign_id: int) -> list[asyncpg.Record]:
    return await db.fetch(
        """SELECT id, user_id, units, amount_won, status, pledge_seq, hold_expires_at
           FROM pledge_payments WHERE campaign_id = $1 ORDER BY id""",
        campaign_id,
    )


async def requested_mails(db: asyncpg.Pool, payment_id: int) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM outbox WHERE event_key = $1", f"pledge_payment:{payment_id}:requested"
    )


async def new_member(db: asyncpg.Pool, server: LiveServer, clients) -> SignedIn:  # type: ignore[no-untyped-def]
    """Sign in a member made for this test, so no other test's pledges or rate limit count."""
    return await clients(server, await insert_user(db, "박서연"))


async def wait_for_blocked_inserts(db: asyncpg.Pool, count: int) -> None:
    """Wait until `count` backends of this database wait for a lock in an INSERT into pledge_payments."""
    while True:
        blocked = await db.fetchval(
            """SELECT count(*) FROM pg_stat_activity
               WHERE datname = current_database() AND wait_event_type = 'Lock'
                 AND query LIKE 'INSERT INTO pledge_payments%'"""
        )
        if blocked >= count:
            return
        await asyncio.sleep(0.02)


async def test_socket_retry_records_missing_payment(
    lock_timeout_server: LiveServer, engine_campaigns: CampaignLive, make_campaign: CampaignFactory,
    pg_pool: asyncpg.Pool, clients,
) -> None:
    """After a result_unknown ack, the retry records the 1-unit payment, and a second retry returns the same one."""
    campaign_id = await make_campaign(payment_timing="up_front")
    member = await new_member(pg_pool, lock_timeout_server, clients)
    connection = await open_pledge_socket(member)

    [ack] = await pledge_while_campaigns_locked(pg_pool, connection, campaign_id, ["ws-retry"])
    assert ack["error"]["code"] == "result_unknown"
    assert await payments(pg_pool, campaign_id) == []
    assert (await engine_campaigns.pledges(campaign_id))[member.account.user_id] == 1

    retry = await socket_pledge(connection, campaign_id, 1, "ws-retry")
    again = await socket_pledge(connection, campaign_id, 1, "ws-retry")

    assert retry["accepted"] is True
    assert retry["receipt"]["retry"] is True
    rows = await payments(pg_pool, campaign_id)
    assert len(rows) == 1
    [row] = rows
    assert retry["payment_id"] == row["id"]
    assert again["payment_id"] == row["id"]
    assert (row["user_id"], row["units"], row["amount_won"]) == (member.account.user_id, 1, UNIT_WON)
    assert row["status"] == "awaiting_deposit"
    assert row["hold_expires_at"] is not None
    assert row["pledge_seq"] == retry["receipt"]["seq"]
    assert await requested_mails(pg_pool, row["id"]) == 1
    await check_pledge_payments_money(pg_pool, [campaign_id])
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[campaign_id])
    await connection.close()


async def test_http_retry_after_500_records_payment(
    lock_timeout_server: LiveServer, world: World, engine_campaigns: CampaignLive, make_campaign: CampaignFactory,
    pg_pool: asyncpg.Pool, ledger_consumer, settings: Settings, clients,
) -> None:
    """The retry of a pledge that got 500 records its payment, and a cancel after its deposit refunds it in full."""
    campaign_id = await make_campaign(payment_timing="up_front")
    member = await new_member(pg_pool, lock_timeout_server, clients)

    await failed_pledge(pg_pool, member, campaign_id, 3, "http-retry")
    assert await payments(pg_pool, campaign_id) == []
    status, retry = await api_pledge(member, campaign_id, 3, "http-retry")

    assert status == 201
    assert retry["receipt"]["retry"] is True
    [row] = await payments(pg_pool, campaign_id)
    assert retry["payment_id"] == row["id"]
    assert (row["units"], row["amount_won"], row["status"]) == (3, 3 * UNIT_WON, "awaiting_deposit")
    assert row["pledge_seq"] == retry["receipt"]["seq"]

    staff = Actor(world.staff.user_id, STAFF, world.staff.display_name)
    await confirm_pledge_deposit(pg_pool, row["id"], staff)
    await cancel_campaign(pg_pool, engine_campaigns, staff, campaign_id, "산지 출하 중단")
    # A cancel whose ledger was behind is settled by the closer, as the worker's closer does.
    while (status := await pg_pool.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id)) == "open":
        await asyncio.sleep(0.05)
        await close_due_campaigns(pg_pool, engine_campaigns, settings)
    assert status == "cancelled"
    assert await pg_pool.fetchval("SELECT status FROM pledge_payments WHERE id = $1", row["id"]) == "refunded"
    refunded = await pg_pool.fetchval("SELECT sum(amount_won) FROM refunds WHERE payment_id = $1", row["id"])
    assert refunded == 3 * UNIT_WON
    await check_pledge_payments_money(pg_pool, [campaign_id])
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[campaign_id])


async def test_error_inside_recording_fails_request(
    lock_timeout_server: LiveServer, engine_campaigns: CampaignLive, make_campaign: CampaignFactory,
    pg_pool: asyncpg.Pool, clients,
) -> None:
    """With the payment timing cached, a lock timeout inside the payment recording gets 500, not a 201 without a payment."""
    campaign_id = await make_campaign(payment_timing="up_front")
    earlier = await new_member(pg_pool, lock_timeout_server, clients)
    status, _body = await api_pledge(earlier, campaign_id, 1, "cache-timing")
    assert status == 201
    member = await new_member(pg_pool, lock_timeout_server, clients)

    await failed_pledge(pg_pool, member, campaign_id, 2, "inside-record")
    assert [row["user_id"] for row in await payments(pg_pool, campaign_id)] == [earlier.account.user_id]
    status, retry = await api_pledge(member, campaign_id, 2, "inside-record")

    assert status == 201
    rows = [row for row in await payments(pg_pool, campaign_id) if row["user_id"] == member.account.user_id]
    assert [(row["id"], row["units"], row["amount_won"]) for row in rows] == [
        (retry["payment_id"], 2, 2 * UNIT_WON)
    ]
    await check_pledge_payments_money(pg_pool, [campaign_id])
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[campaign_id])


async def test_concurrent_retries_record_once(
    lock_timeout_server: LiveServer, live_server: LiveServer, engine_campaigns: CampaignLive,
    make_campaign: CampaignFactory, pg_pool: asyncpg.Pool, clients,
) -> None:
    """Three retries that reach the payment insert together record one payment, one mail, and return its id."""
    campaign_id = await make_campaign(payment_timing="up_front")
    account = await insert_user(pg_pool, "최지우")
    await failed_pledge(pg_pool, await clients(lock_timeout_server, account), campaign_id, 4, "race")
    # Another web process (no lock timeout) handles the retries, as after a client reconnects elsewhere.
    member = await clients(live_server, account)

    async with pg_pool.acquire() as holder, holder.transaction():
        # Blocks every insert into pledge_payments but not the reads before it.
        await holder.execute("LOCK TABLE pledge_payments IN EXCLUSIVE MODE")
        retries = [asyncio.create_task(api_pledge(member, campaign_id, 4, "race")) for _ in range(3)]
        await wait_for_blocked_inserts(pg_pool, 3)
    answers = await asyncio.gather(*retries)

    assert [status for status, _body in answers] == [201, 201, 201]
    rows = await payments(pg_pool, campaign_id)
    assert len(rows) == 1
    [row] = rows
    assert {body["payment_id"] for _status, body in answers} == {row["id"]}
    assert (row["units"], row["amount_won"]) == (4, 4 * UNIT_WON)
    assert await requested_mails(pg_pool, row["id"]) == 1
    await check_pledge_payments_money(pg_pool, [campaign_id])
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[campaign_id])


async def test_retry_after_reduction_pays_current_units(
    lock_timeout_server: LiveServer, engine_campaigns: CampaignLive, make_campaign: CampaignFactory,
    pg_pool: asyncpg.Pool, clients,
) -> None:
    """A retry of a 4-unit pledge the member has reduced to 1 since records 1 unit, and the page requests 9,000원."""
    campaign_id = await make_campaign(payment_timing="up_front")
    member = await new_member(pg_pool, lock_timeout_server, clients)
    await failed_pledge(pg_pool, member, campaign_id, 4, "cut-4")
    status, reduced = await api_pledge(member, campaign_id, 1, "cut-1")
    assert status == 201
    assert reduced["payment_id"] is None

    page = await member.http.post(
        f"/campaigns/{campaign_id}/pledges", data={"units": "4", "client_id": "cut-4"},
        headers={"HX-Request": "true", "X-CSRF-Token": member.csrf_token},
    )

    assert page.status_code == 200
    assert "계좌이체로 9,000원을 입금해 주세요" in page.text
    assert "36,000원을 입금" not in page.text
    [row] = await payments(pg_pool, campaign_id)
    assert (row["units"], row["amount_won"]) == (1, UNIT_WON)
    assert (await engine_campaigns.pledges(campaign_id))[member.account.user_id] == 1
    await check_pledge_payments_money(pg_pool, [campaign_id])
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[campaign_id])


async def test_retry_after_increase_pays_own_units(
    lock_timeout_server: LiveServer, engine_campaigns: CampaignLive, make_campaign: CampaignFactory,
    pg_pool: asyncpg.Pool, clients,
) -> None:
    """A retry of a 2-unit pledge after the member raised it to 5 (a 3-unit payment) records the missing 2 units."""
    campaign_id = await make_campaign(payment_timing="up_front")
    member = await new_member(pg_pool, lock_timeout_server, clients)
    await failed_pledge(pg_pool, member, campaign_id, 2, "up-2")
    status, raised = await api_pledge(member, campaign_id, 5, "up-5")
    assert status == 201

    status, retry = await api_pledge(member, campaign_id, 2, "up-2")

    assert status == 201
    rows = await payments(pg_pool, campaign_id)
    assert [(row["id"], row["units"], row["amount_won"]) for row in rows] == [
        (raised["payment_id"], 3, 3 * UNIT_WON),
        (retry["payment_id"], 2, 2 * UNIT_WON),
    ]
    assert [row["pledge_seq"] for row in rows] == [raised["receipt"]["seq"], retry["receipt"]["seq"]]
    assert sum(row["units"] for row in rows) == (await engine_campaigns.pledges(campaign_id))[member.account.user_id]
    await check_pledge_payments_money(pg_pool, [campaign_id])
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[campaign_id])


async def test_retry_after_cancel_records_nothing(
    lock_timeout_server: LiveServer, engine_campaigns: CampaignLive, make_campaign: CampaignFactory,
    pg_pool: asyncpg.Pool, clients,
) -> None:
    """A retry of a pledge the member has cancelled since returns the first receipt and records no payment."""
    campaign_id = await make_campaign(payment_timing="up_front")
    member = await new_member(pg_pool, lock_timeout_server, clients)
    await failed_pledge(pg_pool, member, campaign_id, 3, "gone-3")
    cancelled = await member.http.request(
        "DELETE", f"/api/v1/campaigns/{campaign_id}/pledges/mine",
        json={"client_id": f"gone-{secrets.token_hex(4)}"}, headers={"X-CSRF-Token": member.csrf_token},
    )
    assert cancelled.status_code == 200, cancelled.text

    status, retry = await api_pledge(member, campaign_id, 3, "gone-3")

    assert status == 201
    assert retry["receipt"]["retry"] is True
    assert retry["payment_id"] is None
    assert await payments(pg_pool, campaign_id) == []
    assert member.account.user_id not in await engine_campaigns.pledges(campaign_id)
    await check_pledge_payments_money(pg_pool, [campaign_id])
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[campaign_id])

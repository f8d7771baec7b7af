"""The staff list of group buys while Redis is ahead of PostgreSQL, against a real server, Redis and PostgreSQL.

No worker runs in these tests, so a staff cancel stays unsettled (PostgreSQL keeps the
campaign open) until the test itself drains the ledger and runs the closer.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from engine.auction.ledger import LedgerConsumer
from engine.config import Settings
from engine.groupbuy.closing import close_due_campaigns
from engine.groupbuy.ledger import CAMPAIGN_LEDGER
from engine.groupbuy.live import CampaignLive
from tests.invariants import check_campaign_invariants
from tests.web.live.campaign_fixtures import CampaignFactory, engine_campaigns, make_campaign  # noqa: F401
from tests.web.live.conftest import LiveServer, SignedIn, World

pytestmark = pytest.mark.slow

REASON = "산지 태풍 피해로 출하가 어렵습니다"


def staff_row(page: str, campaign_id: int) -> str | None:
    """Return the HTML of the campaign's row in the staff list, or None when the list has no such row."""
    match = re.search(rf'<li class="console-lot" id="staff-campaign-{campaign_id}".*?</li>', page, re.DOTALL)
    return match.group(0) if match else None


async def staff_list(staff: SignedIn, lang: str = "ko") -> str:
    response = await staff.http.get(f"/staff/campaigns?lang={lang}")
    assert response.status_code == 200, response.text
    return response.text


async def run_closer(pg_pool: asyncpg.Pool, live: CampaignLive, settings: Settings) -> dict[int, str]:
    """Store the campaign streams in `pledge_events`, then close or settle every due campaign once.

    Returns the status of each campaign the closer finished, as the worker's two loops would.
    """
    consumer = LedgerConsumer(pg_pool, live.redis, live.keys, block_ms=50, claim_idle_s=0.2, ledger=CAMPAIGN_LEDGER)
    await consumer.drain()
    outcomes = await close_due_campaigns(pg_pool, live, settings)
    return {outcome.campaign_id: outcome.status for outcome in outcomes}


async def stored_status(pg_pool: asyncpg.Pool, campaign_id: int) -> str:
    return await pg_pool.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id)


async def test_unsettled_cancel_shows_cancelled(
    live_server: LiveServer, world: World, make_campaign: CampaignFactory, engine_campaigns: CampaignLive,
    pg_pool: asyncpg.Pool, settings: Settings, clients,
) -> None:
    """A cancel left to the closer shows as cancelled with no form on reload, and leaves the list once settled."""
    cancelled = await make_campaign(title="취소 후 정산을 기다릴 공동구매")
    untouched = await make_campaign(title="그대로 둘 공동구매")
    later = await make_campaign(
        title="내일 시작할 공동구매",
        start_at=datetime.now(timezone.utc) + timedelta(days=1),
        deadline_at=datetime.now(timezone.utc) + timedelta(days=2),
    )
    member = await clients(live_server, world.members[0])
    pledged = await member.http.post(
        f"/api/v1/campaigns/{cancelled}/pledges",
        json={"units": 2, "client_id": secrets.token_hex(8)},
        headers={"X-CSRF-Token": member.csrf_token},
    )
    assert pledged.status_code == 201, pledged.text
    staff = await clients(live_server, world.staff)
    before = await staff_list(staff)
    for campaign_id in (cancelled, untouched, later):
        row = staff_row(before, campaign_id)
        assert row is not None
        assert f'action="/staff/campaigns/{campaign_id}/cancel"' in row

    # The server waits a few seconds for the ledger before it leaves the settlement to the closer.
    response = await staff.http.post(
        f"/api/v1/campaigns/{cancelled}/cancel", json={"reason": REASON},
        headers={"X-CSRF-Token": staff.csrf_token}, timeout=None,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"campaign_id": cancelled, "status": "cancelled", "settled": False}
    assert await stored_status(pg_pool, cancelled) == "open"
    assert (await engine_campaigns.snapshot(cancelled)).status == "cancelled"  # type: ignore[union-attr]

    page = await staff_list(staff)
    row = staff_row(page, cancelled)
    assert row is not None
    assert 'data-status="cancelled"' in row
    assert ">취소됨</span>" in row
    assert "<form" not in row
    untouched_row = staff_row(page, untouched)
    assert untouched_row is not None
    assert 'data-status="open"' in untouched_row
    assert f'action="/staff/campaigns/{untouched}/cancel"' in untouched_row
    # Redis keeps "open" for a campaign that has not started, and the row keeps the stored "scheduled".
    later_row = staff_row(page, later)
    assert later_row is not None
    assert 'data-status="scheduled"' in later_row
    assert f'action="/staff/campaigns/{later}/cancel"' in later_row
    english_row = staff_row(await staff_list(staff, "en"), cancelled)
    assert english_row is not None
    assert ">Cancelled</span>" in english_row

    # The form the row no longer shows would be rejected.
    again = await staff.http.post(
        f"/staff/campaigns/{cancelled}/cancel", data={"reason": REASON},
        headers={"HX-Request": "true", "X-CSRF-Token": staff.csrf_token},
    )
    assert again.status_code == 409
    assert 'data-error-code="campaign_cancelled"' in again.text

    public = (await member.http.get(f"/campaigns/{cancelled}")).text
    assert f'id="campaign-{cancelled}-status" class="campaign-status campaign-status--cancelled"' in public
    assert "취소된 공동구매입니다" in public
    assert "이 공동구매는 성사됩니다" not in public
    assert f'id="campaign-{cancelled}-pledge-form"' not in public
    public_list = (await member.http.get("/campaigns")).text
    assert f'id="campaign-{cancelled}-status" class="campaign-status campaign-status--cancelled"' in public_list

    settled = await run_closer(pg_pool, engine_campaigns, settings)

    assert settled.get(cancelled) == "cancelled"
    assert await stored_status(pg_pool, cancelled) == "cancelled"
    after = await staff_list(staff)
    assert staff_row(after, cancelled) is None
    assert staff_row(after, untouched) is not None
    public = (await member.http.get(f"/campaigns/{cancelled}")).text
    assert 'data-status="cancelled"' in public
    assert "취소된 공동구매입니다" in public
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[cancelled])


async def test_begun_close_shows_closing(
    live_server: LiveServer, world: World, make_campaign: CampaignFactory, engine_campaigns: CampaignLive,
    pg_pool: asyncpg.Pool, settings: Settings, clients,
) -> None:
    """A campaign Redis has begun closing shows as closing with no form while PostgreSQL still has it open."""
    campaign_id = await make_campaign(deadline_at=datetime.now(timezone.utc) + timedelta(seconds=2))
    while True:
        snapshot = await engine_campaigns.snapshot(campaign_id)
        assert snapshot is not None
        if snapshot.server_ms >= snapshot.deadline_ms:
            break
        await asyncio.sleep((snapshot.deadline_ms - snapshot.server_ms) / 1000)
    staff = await clients(live_server, world.staff)
    ended_row = staff_row(await staff_list(staff), campaign_id)
    assert ended_row is not None
    # A deadline that passed does not stop a cancel in Redis, so the form stays until the close begins.
    assert f'action="/staff/campaigns/{campaign_id}/cancel"' in ended_row

    began = await engine_campaigns.begin_close(campaign_id)
    assert "state" in began, began
    assert await stored_status(pg_pool, campaign_id) == "open"

    row = staff_row(await staff_list(staff), campaign_id)
    assert row is not None
    assert 'data-status="closing"' in row
    assert ">마감 처리 중</span>" in row
    assert "<form" not in row

    finished = await run_closer(pg_pool, engine_campaigns, settings)

    assert finished.get(campaign_id) == "failed"
    assert staff_row(await staff_list(staff), campaign_id) is None
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[campaign_id])

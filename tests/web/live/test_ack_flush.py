"""Web processes copy the sequence numbers they acknowledged to PostgreSQL on their own."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from tests.web.live.campaign_fixtures import CampaignFactory, engine_campaigns, make_campaign  # noqa: F401
from tests.web.live.conftest import LiveServer, LotFactory, World
from web.live import ACK_FLUSH_INTERVAL_S

pytestmark = pytest.mark.slow


async def wait_for_mark(db: asyncpg.Pool, query: str, object_id: int, expected: int) -> int | None:
    """Poll the marks table for a few flush intervals; the per-test timeout bounds the wait."""
    for _ in range(20):
        seq = await db.fetchval(query, object_id)
        if seq == expected:
            return seq
        await asyncio.sleep(ACK_FLUSH_INTERVAL_S / 4)
    return await db.fetchval(query, object_id)


async def test_lot_ack_marks_flushed(
    live_server: LiveServer, world: World, make_lot: LotFactory, pg_pool: asyncpg.Pool, clients
) -> None:
    """An accepted bid's seq reaches lot_ack_marks without any Redis failure."""
    lot_id = await make_lot()
    member = await clients(live_server, world.members[0])
    response = await member.bid(lot_id, 50_000)
    assert response.status_code == 201, response.text
    seq = response.json()["receipt"]["seq"]

    stored = await wait_for_mark(pg_pool, "SELECT seq FROM lot_ack_marks WHERE lot_id = $1", lot_id, seq)

    assert stored == seq


async def test_campaign_ack_marks_flushed(
    live_server: LiveServer, world: World, make_campaign: CampaignFactory, pg_pool: asyncpg.Pool, clients
) -> None:
    """An accepted pledge's seq reaches campaign_ack_marks without any Redis failure."""
    campaign_id = await make_campaign()
    member = await clients(live_server, world.members[0])
    response = await member.http.post(
        f"/api/v1/campaigns/{campaign_id}/pledges",
        json={"units": "2", "client_id": secrets.token_hex(8)},
        headers={"X-CSRF-Token": member.csrf_token},
    )
    assert response.status_code in (200, 201), response.text
    seq = response.json()["receipt"]["seq"]

    stored = await wait_for_mark(
        pg_pool, "SELECT seq FROM campaign_ack_marks WHERE campaign_id = $1", campaign_id, seq
    )

    assert stored == seq

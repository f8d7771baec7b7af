"""Engine error details reach the JSON body and never replace the HTTP status."""

from __future__ import annotations

import asyncpg
import pytest

from engine.auction.closing import finalize_lot, settle_live
from engine.auction.ledger import LedgerConsumer
from engine.auction.live import AuctionLive
from engine.config import Settings
from tests.web.live.conftest import LiveServer, LotFactory, World

pytestmark = pytest.mark.slow


async def test_detail_named_status_stays_detail(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients, engine_live: AuctionLive,
    pg_pool: asyncpg.Pool, settings: Settings,
) -> None:
    """Cancelling a cancelled lot is a 409 whose detail carries the lot's status."""
    lot_id = await make_lot()
    staff = await clients(live_server, world.staff)
    headers = {"X-CSRF-Token": staff.csrf_token}
    first = await staff.http.post(f"/api/v1/lots/{lot_id}/cancel", headers=headers)
    assert first.status_code == 200, first.text
    final_seq = (await engine_live.snapshot(lot_id)).seq  # type: ignore[union-attr]
    await LedgerConsumer(pg_pool, engine_live.redis, engine_live.keys).drain()
    outcome = await finalize_lot(pg_pool, settings, lot_id, final_seq)
    assert outcome.status == "cancelled"
    assert await settle_live(engine_live, lot_id, outcome.status)

    again = await staff.http.post(f"/api/v1/lots/{lot_id}/cancel", headers=headers)

    assert again.status_code == 409, again.text
    error = again.json()["error"]
    assert error["code"] == "lot_not_open"
    assert error["detail"]["status"] == "cancelled"

"""The hub drops a lot's cached facts and ack mark once the lot is over, and bounds its name cache."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from engine.auction.closing import finalize_lot, settle_live
from engine.auction.ledger import LedgerConsumer
from engine.auction.live import AuctionLive
from engine.config import Settings
from tests.web.live.conftest import LiveServer, LotFactory, World
from web.live import auction_live
from web.live import hub as hub_module

pytestmark = pytest.mark.slow


async def wait_for(condition) -> None:  # type: ignore[no-untyped-def]
    """Poll `condition()` until it is true (the per-test timeout bounds the wait)."""
    while not condition():
        await asyncio.sleep(0.01)


async def test_lot_caches_dropped_after_cancel_and_settle(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients, engine_live: AuctionLive,
    pg_pool: asyncpg.Pool, settings: Settings,
) -> None:
    """A lot's bid times and staff facts go on its cancel event, and its ack mark when it is settled."""
    app = live_server.app
    hub = app.state.hub  # type: ignore[attr-defined]
    acks = auction_live(app).acks  # type: ignore[arg-type]
    lot_id = await make_lot()
    member = await clients(live_server, world.members[0])
    staff = await clients(live_server, world.staff)
    assert (await member.bid(lot_id, 11_000)).status_code == 201
    await wait_for(lambda: lot_id in hub._bid_times)
    snapshot = await engine_live.snapshot(lot_id)
    assert snapshot is not None
    await hub._staff_row_info(snapshot)
    assert lot_id in hub._staff_info
    assert acks.highest(lot_id) > 0

    cancelled = await staff.http.post(f"/api/v1/lots/{lot_id}/cancel", headers={"X-CSRF-Token": staff.csrf_token})
    assert cancelled.status_code == 200, cancelled.text
    await wait_for(lambda: lot_id not in hub._bid_times)
    assert lot_id not in hub._staff_info
    assert acks.highest(lot_id) > 0

    final_seq = (await engine_live.snapshot(lot_id)).seq  # type: ignore[union-attr]
    await LedgerConsumer(pg_pool, engine_live.redis, engine_live.keys).drain()
    outcome = await finalize_lot(pg_pool, settings, lot_id, final_seq)
    assert outcome.status == "cancelled"
    assert await settle_live(engine_live, lot_id, outcome.status)
    await wait_for(lambda: acks.highest(lot_id) == 0)


async def test_user_name_cache_bounded(live_server: LiveServer, world: World, monkeypatch) -> None:
    """The leader-name cache keeps at most USER_NAME_CACHE_SIZE names, dropping the least recently used."""
    monkeypatch.setattr(hub_module, "USER_NAME_CACHE_SIZE", 2)
    hub = live_server.app.state.hub  # type: ignore[attr-defined]
    first, second, third = world.members[0], world.members[1], world.members[2]

    assert await hub._user_name(first.user_id) == first.display_name
    assert await hub._user_name(second.user_id) == second.display_name
    assert await hub._user_name(first.user_id) == first.display_name
    assert await hub._user_name(third.user_id) == third.display_name

    assert list(hub._user_names) == [first.user_id, third.user_id]

"""A watcher whose message cannot be sent closes its socket, so the page reconnects."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest
from websockets.exceptions import ConnectionClosed

from tests.web.live.conftest import LiveServer, LotFactory, World
from web.live.connection import Outgoing, _flusher_of

pytestmark = pytest.mark.slow


async def test_unsendable_message_closes_with_1011(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients
) -> None:
    """A message uvicorn cannot encode (a lone surrogate) ends the socket with 1011, not silently."""
    lot_id = await make_lot()
    member = await clients(live_server, world.members[0])
    hub = live_server.app.state.hub  # type: ignore[attr-defined]
    async with await member.connect(f"/ws/lots/{lot_id}") as socket:
        await socket.recv()  # the snapshot
        (watcher,) = [watcher for watcher in hub.watchers() if watcher.lot_id == lot_id]

        assert watcher.offer(Outgoing("<p>\ud800</p>", lot_id, 1))
        with pytest.raises(ConnectionClosed):
            await socket.recv()

    assert socket.close_code == 1011
    assert watcher.closed


async def test_healthy_watcher_unaffected_by_unsendable_one(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients
) -> None:
    """Another socket of the same lot still gets the next bid after one socket failed."""
    lot_id = await make_lot()
    broken_account, healthy_account = world.members[0], world.members[1]
    broken_client = await clients(live_server, broken_account)
    healthy_client = await clients(live_server, healthy_account)
    bidder = await clients(live_server, world.members[2])
    hub = live_server.app.state.hub  # type: ignore[attr-defined]
    async with await broken_client.connect(f"/ws/lots/{lot_id}") as broken, \
            await healthy_client.connect(f"/ws/lots/{lot_id}") as healthy:
        await broken.recv()
        await healthy.recv()
        (watcher,) = [watcher for watcher in hub.watchers() if watcher.user_id == broken_account.user_id]
        watcher.offer(Outgoing("<p>\ud800</p>", lot_id, 1))

        response = await bidder.bid(lot_id, "15000")
        assert response.status_code == 201, response.text
        pushed = await healthy.recv()
        while 'data-seq="1"' not in pushed:
            pushed = await healthy.recv()
        with pytest.raises(ConnectionClosed):
            while True:
                await broken.recv()

    assert broken.close_code == 1011


def test_flusher_does_not_keep_its_loop_alive() -> None:
    """The per-loop flusher table references its loops weakly, so a closed loop can be freed."""
    loop = asyncio.new_event_loop()
    _flusher_of(loop)
    loop_ref = weakref.ref(loop)
    loop.close()
    del loop
    gc.collect()

    assert loop_ref() is None

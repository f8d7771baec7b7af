"""The websocket hub against real uvicorn servers, Redis pub/sub and PostgreSQL."""

from __future__ import annotations

import re
import socket

import pytest
from websockets.exceptions import ConnectionClosed

from embedded.common import LOOPBACK
from tests.web.live.conftest import LiveServer, LotFactory, World, receive_until, start_server
from web.live.hub import WS_SLOW_CLOSES

pytestmark = pytest.mark.slow


def price_of(message: str, lot_id: int) -> int | None:
    match = re.search(rf'id="lot-{lot_id}-price"[^>]*data-price-won="(\d+)"', message)
    return int(match.group(1)) if match else None


def seq_of(message: str, lot_id: int) -> int | None:
    match = re.search(rf'id="lot-{lot_id}-status"[^>]*data-seq="(\d+)"', message)
    return int(match.group(1)) if match else None


async def test_bid_reaches_other_process(
    live_server: LiveServer, second_server: LiveServer, world: World, make_lot: LotFactory, clients
) -> None:
    """A bid accepted by one web process is pushed to a websocket of another process."""
    lot_id = await make_lot()
    watcher = await clients(second_server, world.members[1])
    bidder = await clients(live_server, world.members[0])
    async with await watcher.connect(f"/ws/lots/{lot_id}") as socket:
        snapshot = await socket.recv()
        assert seq_of(snapshot, lot_id) == 0
        assert price_of(snapshot, lot_id) == 10_000

        response = await bidder.bid(lot_id, "15000")
        assert response.status_code == 201, response.text
        assert response.json()["receipt"]["seq"] == 1

        pushed = await receive_until(socket, lambda text: seq_of(text, lot_id) == 1)
        assert price_of(pushed, lot_id) == 10_000
        assert 'hx-swap-oob="afterbegin:#lot-' in pushed
        assert "김*수" in pushed

        response = await bidder.bid(lot_id, "12000")
        assert response.status_code == 409
        response = await (await clients(live_server, world.members[2])).bid(lot_id, "12000")
        assert response.status_code == 201
        pushed = await receive_until(socket, lambda text: seq_of(text, lot_id) == 2)
        assert price_of(pushed, lot_id) == 12_500


async def test_reconnect_gets_current_snapshot(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients
) -> None:
    """After the server closes a socket, a new connection starts with a snapshot at the current seq."""
    lot_id = await make_lot()
    bidder = await clients(live_server, world.members[0])
    watcher = await clients(live_server, world.members[1])
    socket = await watcher.connect(f"/ws/lots/{lot_id}")
    assert seq_of(await socket.recv(), lot_id) == 0

    hub = live_server.app.state.hub
    for connection in list(hub.watchers()):
        connection.close(1012, "test restart")
    with pytest.raises(ConnectionClosed):
        while True:
            await socket.recv()
    assert socket.close_code == 1012

    assert (await bidder.bid(lot_id, 11000)).status_code == 201
    assert (await bidder.bid(lot_id, 13000)).status_code == 201
    async with await watcher.connect(f"/ws/lots/{lot_id}") as again:
        snapshot = await again.recv()
        assert seq_of(snapshot, lot_id) == 2
        assert f'id="lot-{lot_id}-history"' in snapshot
        assert snapshot.count("<li data-seq=") == 2


async def test_private_notices_only_to_bidders(
    live_server: LiveServer, second_server: LiveServer, world: World, make_lot: LotFactory, clients
) -> None:
    """Only the outbid member's socket gets the outbid notice; the new leader's gets the winning one."""
    lot_id = await make_lot()
    first = await clients(live_server, world.members[0])
    second = await clients(second_server, world.members[1])
    bystander = await clients(second_server, world.members[2])
    async with (
        await first.connect(f"/ws/lots/{lot_id}") as first_socket,
        await second.connect(f"/ws/lots/{lot_id}") as second_socket,
        await bystander.connect(f"/ws/lots/{lot_id}") as bystander_socket,
    ):
        for socket in (first_socket, second_socket, bystander_socket):
            await socket.recv()
        assert (await first.bid(lot_id, 20000)).status_code == 201
        notice = await receive_until(first_socket, lambda text: "data-notice=" in text)
        assert 'data-notice="winning"' in notice

        assert (await second.bid(lot_id, 30000)).status_code == 201
        outbid = await receive_until(first_socket, lambda text: "data-notice=" in text)
        assert 'data-notice="outbid"' in outbid
        winning = await receive_until(second_socket, lambda text: "data-notice=" in text)
        assert 'data-notice="winning"' in winning

        # The bystander sees both price changes and never a notice.
        seen = ""
        while seq_of(seen, lot_id) != 2:
            seen = await bystander_socket.recv()
            assert "data-notice=" not in seen
        # No user id leaves the server: no attribute or text names a user or leader id.
        assert not re.search(r"(user|leader)[_-]?id", seen)


async def test_slow_consumer_is_cut_off(settings, world: World, make_lot: LotFactory, clients) -> None:
    """A client that stops reading is closed with 1013 while fast clients still get every latest price."""
    server = await start_server(settings, send_buffer_bytes=4096, bid_rate="100000/second")
    try:
        lot_id = await make_lot(start_price_won=1000)
        watcher = await clients(server, world.members[1])
        bidders = [await clients(server, member) for member in (world.members[0], world.members[3])]
        before = WS_SLOW_CLOSES._value.get()
        # A small receive buffer, no compression, and max_queue=1, which makes the
        # client stop reading from the socket once one message waits unread.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((LOOPBACK, server.port))
        slow = await watcher.connect(f"/ws/lots/{lot_id}", max_queue=1, compression=None, sock=sock)
        fast = await watcher.connect(f"/ws/lots/{lot_id}")
        await fast.recv()
        hub = server.app.state.hub

        amount = 1000
        last_price = 0
        bids = 0
        while WS_SLOW_CLOSES._value.get() == before:
            # Each bid is the minimum next bid of the other bidder, so each one takes the lead.
            response = await bidders[bids % 2].bid(lot_id, amount)
            assert response.status_code == 201, response.text
            last_price = response.json()["live"]["price_won"]
            amount = response.json()["live"]["min_next_won"]
            bids += 1
            assert bids < 5000, "the slow client was never cut off"
        assert hub.watcher_count(lot_id) == 1

        # The fast client reaches the latest price.
        await receive_until(fast, lambda text: price_of(text, lot_id) == last_price)
        await fast.close()

        # The slow client, once it reads again, finds its socket closed with 1013.
        with pytest.raises(ConnectionClosed):
            while True:
                await slow.recv()
        assert slow.close_code == 1013
    finally:
        await server.stop()

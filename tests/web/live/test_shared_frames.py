"""Shared pre-encoded frames (`web.live.ws_protocol`): who gets them, and that they read back exactly.

The server tests run real uvicorn servers with the websockets client, which offers
permessage-deflate unless `compression=None` is passed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side

from tests.web.live.conftest import LiveServer, LotFactory, SignedIn, World, receive_until, start_server
from web.live.connection import Outgoing, Watcher, _Messages
from web.live.ws_protocol import SharedFrameProtocol, text_frame


def read_frames(data: bytes) -> list[Frame]:
    """Parse server frames with the websockets library's own client parser."""
    client = Protocol(Side.CLIENT, max_size=None)  # an open connection, past the handshake
    client.receive_data(data)
    return [event for event in client.events_received() if isinstance(event, Frame)]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 200_000])
def test_text_frame_round_trip(size: int) -> None:
    """Each length form of the frame header (7-bit, 16-bit, 64-bit) carries the exact text."""
    text = ("가격" * size)[:size]

    (frame,) = read_frames(text_frame(text))

    assert frame.opcode is Opcode.TEXT
    assert frame.fin
    assert frame.data.decode() == text


def test_two_frames_one_read() -> None:
    frames = read_frames(text_frame("<p>하나</p>") + text_frame("<p>둘</p>"))

    assert [frame.data.decode() for frame in frames] == ["<p>하나</p>", "<p>둘</p>"]


def test_same_pieces_share_message() -> None:
    """One flush joins and encodes a batch once for every watcher with the same pieces pending."""
    state, row = Outgoing("<p>가격</p>", 1, 5, ("state", 1)), Outgoing("<li>입찰</li>", 1, 5)
    messages = _Messages()

    first = messages.of((state, row))
    second = messages.of((state, row))
    other = messages.of((state, row, Outgoing("<p>최고 입찰자입니다</p>", 1, 5)))

    assert second is first
    assert second.frame() is first.frame()
    assert other is not first
    assert other.text == "<p>가격</p><li>입찰</li><p>최고 입찰자입니다</p>"


def test_unique_messages_are_not_all_kept() -> None:
    """Unique batches (connect snapshots) evict the least recently used, so a pass keeps only a few."""
    messages = _Messages()
    snapshots = [(Outgoing(f"<div>스냅샷 {n}</div>", -1, 0),) for n in range(100)]
    shared = (Outgoing("<p>가격</p>", 1, 5, ("state", 1)),)
    first_shared = messages.of(shared)

    for snapshot in snapshots:
        messages.of(snapshot)

    assert len(messages._by_items) == _Messages.MAX_KEPT
    assert messages.of(snapshots[-1]).text == "<div>스냅샷 99</div>"
    assert messages.of(shared) is not first_shared  # evicted, so joined again
    assert messages.of(shared).text == "<p>가격</p>"


def test_message_in_use_stays_cached() -> None:
    """A message that watchers keep asking for survives any number of unique ones in between."""
    messages = _Messages()
    shared = (Outgoing("<p>가격</p>", 1, 5, ("state", 1)),)
    first_shared = messages.of(shared)

    for n in range(100):
        messages.of((Outgoing(f"<div>스냅샷 {n}</div>", -1, 0),))
        assert messages.of(shared) is first_shared


def test_reused_ids_never_return_stale_text() -> None:
    """Batches built and dropped one after another (so CPython may reuse their ids) get their own text."""
    messages = _Messages()

    for n in range(200):
        items = (Outgoing(f"<p>{n}</p>", 1, n),)
        assert messages.of(items).text == f"<p>{n}</p>"
        del items


def counting(send_text: Callable[..., None], calls: list[bytes]) -> Callable[..., None]:
    """Wrap a websockets `send_text` so that each text it encodes is also appended to `calls`."""

    def send_text_counted(data: bytes, *args: object) -> None:
        calls.append(data)
        send_text(data, *args)

    return send_text_counted


def lot_watchers(server: LiveServer, lot_id: int) -> list[Watcher]:
    return [watcher for watcher in server.app.state.hub.watchers() if watcher.lot_id == lot_id]  # type: ignore[attr-defined]


async def open_plain_watcher(viewer: SignedIn, lot_id: int) -> tuple[ClientConnection, Watcher]:
    """Open an uncompressed lot socket, read its snapshot, and return it with its watcher on the server."""
    socket = await viewer.connect(f"/ws/lots/{lot_id}", compression=None)
    await socket.recv()
    (watcher,) = lot_watchers(viewer.server, lot_id)
    return socket, watcher


async def bid_reaches(sockets: list, bidder: SignedIn, lot_id: int) -> list[str]:
    """Place a bid and return the message that carries it, as each socket received it."""
    response = await bidder.bid(lot_id, "15000")
    assert response.status_code == 201, response.text
    return [await receive_until(socket, lambda text: 'data-seq="1"' in text) for socket in sockets]


@pytest.mark.slow
async def test_uncompressed_server_shares_frames(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients
) -> None:
    """With compression off (the default) a client's deflate offer is declined and frames are shared."""
    lot_id = await make_lot()
    viewer = await clients(live_server, world.members[0])
    bidder = await clients(live_server, world.members[1])
    async with await viewer.connect(f"/ws/lots/{lot_id}") as offering, \
            await viewer.connect(f"/ws/lots/{lot_id}", compression=None) as plain:
        await offering.recv()
        await plain.recv()

        assert offering.protocol.extensions == []
        watchers = lot_watchers(live_server, lot_id)
        assert len(watchers) == 2
        assert all(watcher._write_frame is not None for watcher in watchers)
        # Count the frames that websockets itself encodes for these connections: none
        # for the bid, because both get the shared frame.
        encoded_by_websockets: list[bytes] = []
        for watcher in watchers:
            connection = watcher._write_frame.__self__.conn  # type: ignore[union-attr]
            connection.send_text = counting(connection.send_text, encoded_by_websockets)

        first, second = await bid_reaches([offering, plain], bidder, lot_id)
        assert first == second
        assert encoded_by_websockets == []
        assert 'data-price-won="10000"' in first


@pytest.mark.slow
async def test_compressed_connection_uses_asgi_send(settings, world: World, make_lot: LotFactory, clients) -> None:
    """With compression on, a deflate connection has no shared frames; a plain one on the same lot does."""
    server = await start_server(settings, ws_compression=True)
    try:
        lot_id = await make_lot()
        viewer = await clients(server, world.members[0])
        bidder = await clients(server, world.members[1])
        async with await viewer.connect(f"/ws/lots/{lot_id}") as deflating, \
                await viewer.connect(f"/ws/lots/{lot_id}", compression=None) as plain:
            await deflating.recv()
            await plain.recv()

            assert [extension.name for extension in deflating.protocol.extensions] == ["permessage-deflate"]
            writers = sorted(watcher._write_frame is not None for watcher in lot_watchers(server, lot_id))
            assert writers == [False, True]

            compressed, uncompressed = await bid_reaches([deflating, plain], bidder, lot_id)
            assert compressed == uncompressed
    finally:
        await server.stop()


@pytest.mark.slow
async def test_plain_uvicorn_protocol_delivers(settings, world: World, make_lot: LotFactory, clients) -> None:
    """On uvicorn's own protocol, which offers no shared frames, every message goes through ASGI sends."""
    server = await start_server(settings, uvicorn_options={"ws": "websockets-sansio"})
    try:
        lot_id = await make_lot()
        viewer = await clients(server, world.members[0])
        bidder = await clients(server, world.members[1])
        socket, watcher = await open_plain_watcher(viewer, lot_id)
        async with socket:
            assert watcher._write_frame is None

            (message,) = await bid_reaches([socket], bidder, lot_id)
            assert 'data-price-won="10000"' in message
    finally:
        await server.stop()


@pytest.mark.slow
async def test_writer_rejects_paused_or_closed(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients
) -> None:
    """The writer writes only while the socket is open and not paused by backpressure."""
    lot_id = await make_lot()
    viewer = await clients(live_server, world.members[0])
    socket, watcher = await open_plain_watcher(viewer, lot_id)
    async with socket:
        protocol = watcher._write_frame.__self__  # type: ignore[union-attr]
        assert isinstance(protocol, SharedFrameProtocol)
        frame = text_frame("<p>직접</p>")

        protocol.pause_writing()
        assert protocol.write_frame(frame) is False
        protocol.resume_writing()
        assert protocol.write_frame(frame) is True
        assert await socket.recv() == "<p>직접</p>"

        await watcher.websocket.close(1000)
        assert protocol.write_frame(frame) is False


@pytest.mark.slow
async def test_writer_rejects_after_client_close(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients
) -> None:
    """Once the client's close frame has arrived, the writer writes nothing more."""
    lot_id = await make_lot()
    viewer = await clients(live_server, world.members[0])
    socket, watcher = await open_plain_watcher(viewer, lot_id)
    protocol = watcher._write_frame.__self__  # type: ignore[union-attr]

    await socket.close(1000)

    assert protocol.write_frame(text_frame("<p>늦음</p>")) is False

"""Bidding over `/ws/bids` against a real server, Redis and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.web.live.conftest import LiveServer, LotFactory, World, start_server

pytestmark = pytest.mark.slow


async def open_bid_socket(member, csrf_token: str | None = None):  # type: ignore[no-untyped-def]
    connection = await member.connect("/ws/bids")
    await connection.send(json.dumps({"type": "hello", "csrf_token": csrf_token or member.csrf_token}))
    return connection


async def test_bid_acknowledged_with_receipt(live_server: LiveServer, world: World, make_lot: LotFactory, clients) -> None:
    """A bid on the socket is acked with the HTTP route's receipt, and a retry returns the same receipt."""
    lot_id = await make_lot(start_price_won=12_000)
    member = await clients(live_server, world.members[0])
    connection = await open_bid_socket(member)
    assert json.loads(await connection.recv()) == {"type": "ready"}

    await connection.send(json.dumps({"type": "bid", "lot_id": lot_id, "amount_won": 15_000, "client_id": "ws-1"}))
    ack = json.loads(await connection.recv())
    assert ack["type"] == "ack"
    assert ack["accepted"] is True
    assert ack["client_id"] == "ws-1"
    assert ack["receipt"]["amount_won"] == 15_000
    assert ack["live"]["price_won"] == 12_000

    await connection.send(json.dumps({"type": "bid", "lot_id": lot_id, "amount_won": 15_000, "client_id": "ws-1"}))
    retry = json.loads(await connection.recv())
    assert retry["receipt"]["seq"] == ack["receipt"]["seq"]
    assert retry["receipt"]["retry"] is True
    await connection.close()


async def test_rejected_bid_acked_with_error(live_server: LiveServer, world: World, make_lot: LotFactory, clients) -> None:
    """A bid below the minimum is acked as not accepted with the HTTP route's error code."""
    lot_id = await make_lot(start_price_won=12_000)
    member = await clients(live_server, world.members[1])
    connection = await open_bid_socket(member)
    await connection.recv()
    await connection.send(json.dumps({"type": "bid", "lot_id": lot_id, "amount_won": 11_000, "client_id": "low-1"}))
    ack = json.loads(await connection.recv())
    assert ack["accepted"] is False
    assert ack["error"]["code"] == "bid_too_low"
    await connection.close()


async def test_malformed_message_answered_with_error(live_server: LiveServer, world: World, clients) -> None:
    """A frame that is not a bid message is answered with invalid_json and the socket stays open."""
    member = await clients(live_server, world.members[2])
    connection = await open_bid_socket(member)
    await connection.recv()
    await connection.send("not json")
    reply = json.loads(await connection.recv())
    assert reply["type"] == "error"
    assert reply["error"]["code"] == "invalid_json"
    await connection.close()


async def test_wrong_csrf_token_closes(live_server: LiveServer, world: World, clients) -> None:
    """A hello with a wrong CSRF token gets csrf_failed and a 1008 close."""
    member = await clients(live_server, world.members[0])
    connection = await open_bid_socket(member, csrf_token="wrong")
    reply = json.loads(await connection.recv())
    assert reply["error"]["code"] == "csrf_failed"
    with pytest.raises(ConnectionClosed) as closed:
        await connection.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def test_missing_hello_closes(settings, world: World, clients) -> None:
    """A socket that sends no hello within the timeout gets csrf_failed and a 1008 close."""
    server = await start_server(settings, ws_hello_timeout_s=0.2)
    try:
        member = await clients(server, world.members[0])
        connection = await member.connect("/ws/bids")
        reply = json.loads(await connection.recv())
        assert reply["error"]["code"] == "csrf_failed"
        with pytest.raises(ConnectionClosed) as closed:
            await connection.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
    finally:
        await server.stop()


async def test_anonymous_handshake_rejected(live_server: LiveServer, clients) -> None:
    """Without a signed-in session the handshake is answered 403."""
    anonymous = await clients(live_server, None)
    with pytest.raises(InvalidStatus) as rejected:
        await anonymous.connect("/ws/bids")
    assert rejected.value.response.status_code == 403


async def test_foreign_origin_rejected(live_server: LiveServer, world: World, clients) -> None:
    """A handshake from an origin that is not allowed is answered 403."""
    member = await clients(live_server, world.members[0])
    with pytest.raises(InvalidStatus) as rejected:
        await member.connect("/ws/bids", origin="http://evil.example")
    assert rejected.value.response.status_code == 403


async def test_out_of_range_lot_id_acked_not_found(live_server: LiveServer, world: World, make_lot: LotFactory, clients) -> None:
    """A lot_id outside 1..2^63-1 is acked not_found and the socket keeps serving bids."""
    lot_id = await make_lot(start_price_won=12_000)
    member = await clients(live_server, world.members[3])
    connection = await open_bid_socket(member)
    await connection.recv()

    for bad_id in (2**63, 2**64 - 1, 0, -1, True, "1"):
        await connection.send(json.dumps({"type": "bid", "lot_id": bad_id, "amount_won": 15_000, "client_id": "big-1"}))
        ack = json.loads(await connection.recv())
        assert ack["accepted"] is False, bad_id
        assert ack["error"]["code"] == "not_found", bad_id

    await connection.send(json.dumps({"type": "bid", "lot_id": lot_id, "amount_won": 15_000, "client_id": "big-2"}))
    assert json.loads(await connection.recv())["accepted"] is True
    await connection.close()


async def test_binary_frame_answered_with_error(live_server: LiveServer, world: World, clients) -> None:
    """A binary frame, before or after the hello, is answered with an error message instead of closing with 1011."""
    member = await clients(live_server, world.members[2])
    connection = await member.connect("/ws/bids")
    await connection.send(b'{"type": "hello"}')
    reply = json.loads(await connection.recv())
    assert reply["error"]["code"] == "csrf_failed"

    connection = await open_bid_socket(member)
    await connection.recv()
    await connection.send(b"\x00\x01")
    reply = json.loads(await connection.recv())
    assert reply["type"] == "error"
    assert reply["error"]["code"] == "invalid_json"
    await connection.send("still open?")
    assert json.loads(await connection.recv())["error"]["code"] == "invalid_json"
    await connection.close()


async def test_out_of_range_ids_in_paths_and_bodies(live_server: LiveServer, world: World, clients) -> None:
    """Ids beyond bigint in a page path or a JSON body are answered 404 or 422, never 500."""
    staff = await clients(live_server, world.staff)
    huge = "9" * 25

    page = await staff.http.get(f"/lots/{huge}")
    api = await staff.http.get(f"/api/v1/lots/{huge}")
    created = await staff.http.post(
        "/api/v1/lots", json={"product_id": 2**63, "title": "x", "start_price_won": 1000,
                              "start_at": "2030-01-01T10:00", "end_at": "2030-01-01T12:00"},
        headers={"X-CSRF-Token": staff.csrf_token},
    )

    assert page.status_code == 404
    assert api.status_code == 404
    assert created.status_code == 422
    assert created.json()["error"]["code"] == "invalid_field"
    assert created.json()["error"]["detail"]["field"] == "product_id"

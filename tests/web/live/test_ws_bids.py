"""Bidding over `/ws/bids` against a real server, Redis and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.web.live.conftest import LiveServer, LotFactory, World

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

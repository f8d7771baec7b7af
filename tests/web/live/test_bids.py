"""Bidding over HTTP and the websocket's guards, against a real server, Redis and PostgreSQL."""

from __future__ import annotations

import re
import secrets

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.web.live.conftest import LiveServer, LotFactory, World, insert_user, receive_until

pytestmark = pytest.mark.slow

BAD_AMOUNTS = ["1,000", "１０００", "-5", "1e3", 12500.5, True, "", " 12500", "12500.0", None, [12500]]


async def lot_state(server: LiveServer, lot_id: int) -> tuple[int, int]:
    """The lot's seq in Redis and the length of its shard's ledger stream."""
    state = server.app.state
    seq = int(await state.redis.hget(state.keys.lot_state(lot_id), "seq"))
    stream_length = await state.redis.xlen(state.keys.ledger_stream_for_lot(lot_id))
    return seq, stream_length


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
async def test_bad_amount_rejected(live_server: LiveServer, world: World, make_lot: LotFactory, clients, amount) -> None:
    """Amounts that are not plain ASCII digits are 400 invalid_amount and change nothing."""
    lot_id = await make_lot()
    member = await clients(live_server, world.members[0])
    before = await lot_state(live_server, lot_id)
    response = await member.bid(lot_id, amount)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_amount"
    assert await lot_state(live_server, lot_id) == before


async def test_bid_too_low_message(live_server: LiveServer, world: World, make_lot: LotFactory, clients) -> None:
    """A bid below the minimum names the minimum in Korean and English."""
    lot_id = await make_lot(start_price_won=12_000)
    member = await clients(live_server, world.members[0])
    assert (await member.bid(lot_id, 12_000)).status_code == 201
    response = await (await clients(live_server, world.members[1])).bid(lot_id, 12_100)
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "bid_too_low"
    assert error["detail"]["min_next_won"] == 12_500
    assert error["message"]["ko"].startswith("최소 입찰가는 12,500원입니다")


async def test_retry_same_client_id(live_server: LiveServer, world: World, make_lot: LotFactory, clients) -> None:
    """A retried bid with the same client id gets the first receipt and is applied once."""
    lot_id = await make_lot()
    member = await clients(live_server, world.members[0])
    first = await member.bid(lot_id, 15_000, "attempt-1")
    again = await member.bid(lot_id, 15_000, "attempt-1")
    assert first.status_code == again.status_code == 201
    assert again.json()["receipt"]["seq"] == first.json()["receipt"]["seq"]
    assert again.json()["receipt"]["retry"] is True
    other = await member.bid(lot_id, 16_000, "attempt-1")
    assert other.json()["error"]["code"] == "client_id_reused"
    assert (await lot_state(live_server, lot_id))[0] == 1


async def test_oversized_body_413(live_server: LiveServer, world: World, make_lot: LotFactory, clients) -> None:
    """A request body over the limit is refused with 413 before the bid runs."""
    lot_id = await make_lot()
    member = await clients(live_server, world.members[0])
    before = await lot_state(live_server, lot_id)
    body = '{"amount_won": "12500", "client_id": "x", "pad": "' + "a" * 70_000 + '"}'
    response = await member.http.post(
        f"/api/v1/lots/{lot_id}/bids", content=body,
        headers={"X-CSRF-Token": member.csrf_token, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert await lot_state(live_server, lot_id) == before


async def test_missing_csrf_403(live_server: LiveServer, world: World, make_lot: LotFactory, clients) -> None:
    """A bid without the CSRF token is 403 csrf_failed and changes nothing."""
    lot_id = await make_lot()
    member = await clients(live_server, world.members[0])
    before = await lot_state(live_server, lot_id)
    response = await member.http.post(f"/api/v1/lots/{lot_id}/bids", json={"amount_won": 12000, "client_id": "c1"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"
    page = await member.http.post(f"/lots/{lot_id}/bids", data={"amount_won": "12000", "client_id": "c2"})
    assert page.status_code == 403
    assert await lot_state(live_server, lot_id) == before


async def test_oversized_ws_frame_closes(live_server: LiveServer, world: World, make_lot: LotFactory, clients) -> None:
    """A websocket frame over max_ws_frame_bytes closes the connection."""
    lot_id = await make_lot()
    member = await clients(live_server, world.members[0])
    async with await member.connect(f"/ws/lots/{lot_id}") as socket:
        await socket.recv()
        await socket.send("x" * (live_server.app.state.settings.max_ws_frame_bytes + 1))
        with pytest.raises(ConnectionClosed):
            while True:
                await socket.recv()
        assert socket.close_code == 1009


async def test_foreign_origin_rejected(live_server: LiveServer, world: World, make_lot: LotFactory, clients) -> None:
    """A websocket handshake from a foreign Origin is rejected with 403."""
    lot_id = await make_lot()
    member = await clients(live_server, world.members[0])
    with pytest.raises(InvalidStatus) as raised:
        await member.connect(f"/ws/lots/{lot_id}", origin="http://evil.example")
    assert raised.value.response.status_code == 403


async def test_supplier_own_lot(live_server: LiveServer, world: World, make_lot: LotFactory, clients) -> None:
    """A supplier bidding on its own lot gets own_lot, and the lot does not change."""
    lot_id = await make_lot(buy_now_won=50_000)
    supplier = await clients(live_server, world.supplier)
    before = await lot_state(live_server, lot_id)
    response = await supplier.bid(lot_id, 12_000)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "own_lot"
    response = await supplier.http.post(
        f"/api/v1/lots/{lot_id}/buy-now", json={"client_id": "own"}, headers={"X-CSRF-Token": supplier.csrf_token}
    )
    assert response.json()["error"]["code"] == "own_lot"
    assert await lot_state(live_server, lot_id) == before
    page = await supplier.http.get(f"/lots/{lot_id}")
    assert 'name="amount_won"' not in page.text
    assert "/buy-now" not in page.text


async def test_member_denied_staff(live_server: LiveServer, world: World, make_lot: LotFactory, clients) -> None:
    """A member gets 403 on the staff console, the staff API and the staff websocket."""
    lot_id = await make_lot()
    member = await clients(live_server, world.members[0])
    assert (await member.http.get("/staff", headers={"Accept": "text/html"})).status_code == 403
    for path, body in (
        (f"/api/v1/lots/{lot_id}/cancel", {}),
        (f"/api/v1/lots/{lot_id}/extend", {"end_at": "2099-01-01T00:00:00+09:00"}),
        (f"/api/v1/lots/{lot_id}/bids/1/void", {}),
        ("/api/v1/orders/1/confirm-deposit", {}),
    ):
        response = await member.http.post(path, json=body, headers={"X-CSRF-Token": member.csrf_token})
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "forbidden"
    response = await member.http.post(f"/staff/lots/{lot_id}/cancel", headers={"X-CSRF-Token": member.csrf_token})
    assert response.status_code == 403
    with pytest.raises(InvalidStatus) as raised:
        await member.connect("/ws/staff")
    assert raised.value.response.status_code == 403
    assert (await lot_state(live_server, lot_id))[0] == 0


async def test_display_name_escaped(
    live_server: LiveServer, pg_pool, world: World, make_lot: LotFactory, clients
) -> None:
    """A display name with markup is escaped in the history fragment and in websocket pushes."""
    lot_id = await make_lot()
    attacker = await insert_user(pg_pool, "<script>alert(1)</script>")
    watcher = await clients(live_server, world.members[1])
    bidder = await clients(live_server, attacker)
    async with await watcher.connect(f"/ws/lots/{lot_id}") as socket:
        await socket.recv()
        assert (await bidder.bid(lot_id, 12_000)).status_code == 201
        pushed = await receive_until(socket, lambda text: "<li data-seq=" in text)
    assert "<script" not in pushed
    assert "&lt;*" in pushed
    page = await watcher.http.get(f"/lots/{lot_id}")
    assert "<script>alert" not in page.text
    assert "&lt;*" in page.text


async def test_page_bid_fragment(live_server: LiveServer, world: World, make_lot: LotFactory, clients) -> None:
    """An htmx bid answers a receipt fragment with a fresh client id; a low one a Korean error."""
    lot_id = await make_lot(start_price_won=12_000)
    member = await clients(live_server, world.members[0])
    page = await member.http.get(f"/lots/{lot_id}")
    assert "최대 입찰가" in page.text
    client_id = re.search(rf'id="lot-{lot_id}-client-id" name="client_id" value="([^"]+)"', page.text).group(1)
    headers = {"HX-Request": "true", "X-CSRF-Token": member.csrf_token}
    response = await member.http.post(
        f"/lots/{lot_id}/bids", data={"amount_won": "12000", "client_id": client_id}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert 'bid-result--accepted" data-seq="1"' in response.text
    fresh = re.search(rf'id="lot-{lot_id}-client-id" name="client_id" value="([^"]+)"', response.text).group(1)
    assert fresh != client_id

    other = await clients(live_server, world.members[1])
    response = await other.http.post(
        f"/lots/{lot_id}/bids", data={"amount_won": "12100", "client_id": secrets.token_hex(8)},
        headers={"HX-Request": "true", "X-CSRF-Token": other.csrf_token},
    )
    assert response.status_code == 409
    assert "최소 입찰가는 12,500원입니다" in response.text

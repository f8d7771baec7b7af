"""Lot creation (API and supplier page) and the staff console, against a real server."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from engine.auction.live import AuctionLive
from tests.web.live.conftest import LiveServer, LotFactory, World, receive_until
from web.i18n import KST

pytestmark = pytest.mark.slow


def kst_local(moment: datetime) -> str:
    """A datetime-local value (Korea time, no offset), as the supplier form sends it."""
    return moment.astimezone(KST).strftime("%Y-%m-%dT%H:%M")


async def test_create_lot_api(live_server: LiveServer, world: World, clients) -> None:
    """A supplier lists its own product through the API; naive times are Korea time."""
    supplier = await clients(live_server, world.supplier)
    start = datetime.now(timezone.utc) + timedelta(hours=1)
    body = {
        "product_id": world.product_id, "title": "설 선물 김 세트", "quantity": 2, "start_price_won": "20000",
        "reserve_won": 30000, "buy_now_won": "45000", "start_at": kst_local(start),
        "end_at": kst_local(start + timedelta(hours=2)), "soft_close_window_s": 60, "extension_s": 90,
        "increments": [[0, 500], [50000, 1000]],
    }
    response = await supplier.http.post("/api/v1/lots", json=body, headers={"X-CSRF-Token": supplier.csrf_token})
    assert response.status_code == 201, response.text
    lot = response.json()
    assert lot["live"]["status"] == "scheduled"
    assert lot["has_reserve"] is True
    assert "reserve_won" not in lot
    assert datetime.fromisoformat(lot["start_at"]) == start.replace(second=0, microsecond=0)
    assert lot["increments"] == [[0, 500], [50000, 1000]]

    bad = await supplier.http.post(
        "/api/v1/lots", json={**body, "start_price_won": 20000.0}, headers={"X-CSRF-Token": supplier.csrf_token}
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_amount"
    low = await supplier.http.post(
        "/api/v1/lots", json={**body, "buy_now_won": 25000}, headers={"X-CSRF-Token": supplier.csrf_token}
    )
    assert low.json()["error"]["code"] == "buy_now_below_reserve"


async def test_member_cannot_create_lot(live_server: LiveServer, world: World, clients) -> None:
    """A member creating a lot is refused with 403."""
    member = await clients(live_server, world.members[0])
    response = await member.http.post(
        "/api/v1/lots", json={"product_id": world.product_id}, headers={"X-CSRF-Token": member.csrf_token}
    )
    assert response.status_code == 403


async def test_supplier_form_errors_korean(live_server: LiveServer, world: World, clients) -> None:
    """The supplier form re-renders invalid input with Korean messages next to the fields."""
    supplier = await clients(live_server, world.supplier)
    page = await supplier.http.get("/supplier/lots")
    assert page.status_code == 200
    assert "광산 햇김 선물세트" in page.text
    start = datetime.now(timezone.utc) + timedelta(hours=1)
    form = {
        "csrf_token": supplier.csrf_token, "product_id": str(world.product_id), "title": "김 경매",
        "quantity": "1", "start_price_won": "1,000", "reserve_won": "", "buy_now_won": "",
        "start_at": kst_local(start), "end_at": kst_local(start - timedelta(hours=1)), "hard_cap_at": "",
        "soft_close_window_s": "120", "extension_s": "120", "increments": "",
    }
    response = await supplier.http.post("/supplier/lots", data=form)
    assert response.status_code == 422
    assert "입찰가는 원 단위 숫자만 입력해 주세요" in response.text
    form["start_price_won"] = "1000"
    response = await supplier.http.post("/supplier/lots", data=form)
    assert response.status_code == 422
    assert "마감 시각은 시작 시각보다 뒤여야 합니다" in response.text

    form["end_at"] = kst_local(start + timedelta(hours=1))
    response = await supplier.http.post("/supplier/lots", data=form)
    assert response.status_code == 303
    assert re.fullmatch(r"/lots/\d+", response.headers["location"])


async def test_staff_console_live(
    live_server: LiveServer, second_server: LiveServer, world: World, make_lot: LotFactory, clients
) -> None:
    """The staff console gets each lot's row on connect and again, with the full leader name, after a bid."""
    lot_id = await make_lot()
    staff = await clients(live_server, world.staff)
    page = await staff.http.get("/staff")
    assert page.status_code == 200
    bidder = await clients(second_server, world.members[0])
    async with await staff.connect("/ws/staff") as socket:
        snapshot = await socket.recv()
        assert f'id="staff-lot-{lot_id}"' in snapshot
        assert (await bidder.bid(lot_id, 12_000)).status_code == 201
        row = await receive_until(socket, lambda text: f'id="staff-lot-{lot_id}"' in text and "김민수" in text)
        assert 'hx-swap-oob="true"' in row

        response = await staff.http.post(
            f"/staff/lots/{lot_id}/extend", data={"end_at": kst_local(datetime.now(timezone.utc) + timedelta(hours=3))},
            headers={"X-CSRF-Token": staff.csrf_token, "HX-Request": "true"},
        )
        assert response.status_code == 200, response.text
        await receive_until(socket, lambda text: f'id="staff-lot-{lot_id}"' in text and 'data-seq="2"' in text)

        response = await staff.http.post(
            f"/staff/lots/{lot_id}/cancel", headers={"X-CSRF-Token": staff.csrf_token, "HX-Request": "true"}
        )
        assert response.status_code == 200, response.text
    live: AuctionLive = live_server.app.state.live
    assert (await live.snapshot(lot_id)).status == "cancelled"
    response = await bidder.bid(lot_id, 20_000)
    assert response.json()["error"]["code"] == "lot_cancelled"

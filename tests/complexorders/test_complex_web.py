"""Complex orders over HTTP and websockets against a real uvicorn server."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import date, datetime, timedelta, timezone

import pytest
import websockets

from engine.outbox import OutboxSender
from tests.complexorders.conftest import ComplexWorld
from tests.web.live.conftest import LiveServer, SignedIn, receive_until

pytestmark = pytest.mark.slow


def draft(world: ComplexWorld, **overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "kind": "apartment", "complex_name": "수완 대방노블랜드 6차", "road_address": "광주광역시 광산구 장신로 50",
        "pickup_point": "관리사무소", "delivery_date": (date.today() + timedelta(days=4)).isoformat(),
        "delivery_slot": "14:00-16:00",
        "closes_at": (datetime.now(timezone.utc) + timedelta(days=1)).isoformat(),
        "items": [{"product_id": world.product_ids[0], "per_household_limit": 2},
                  {"product_id": world.product_ids[1], "per_household_limit": "5"}],
        "min_total_won": "30000", "free_shipping_from_won": 60000, "shipping_fee_won": "3000", "reward_bp": 200,
    }
    body.update(overrides)
    return body


async def post(client: SignedIn, path: str, body: object, method: str = "POST"):
    return await client.http.request(method, path, json=body, headers={"X-CSRF-Token": client.csrf_token})


async def open_order(client: SignedIn, world: ComplexWorld, **overrides: object) -> dict:
    response = await post(client, "/api/v1/complex-orders", draft(world, **overrides))
    assert response.status_code == 201, response.text
    return response.json()


def lines(order: dict, *quantities: object) -> list[dict[str, object]]:
    return [{"item_id": item["id"], "quantity": quantity} for item, quantity in zip(order["items"], quantities)]


async def test_staff_grants_coordinator_role(live_server: LiveServer, complex_world: ComplexWorld, clients, pg_pool) -> None:
    """Staff make a member a coordinator (audited); a member calling the same endpoint gets 403."""
    staff = await clients(live_server, complex_world.staff)
    member = await clients(live_server, complex_world.members[7])
    target = complex_world.members[6].user_id
    denied = await post(member, f"/api/v1/users/{target}/role", {"role": "coordinator"})
    assert denied.status_code == 403
    granted = await post(staff, f"/api/v1/users/{target}/role", {"role": "coordinator"})
    assert granted.status_code == 200, granted.text
    assert await pg_pool.fetchval("SELECT role FROM users WHERE id = $1", target) == "coordinator"
    assert await pg_pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'user.set_role' AND target_id = $1", target
    ) == 1
    staff_target = await post(staff, f"/api/v1/users/{complex_world.staff.user_id}/role", {"role": "member"})
    assert staff_target.json()["error"]["code"] == "role_not_changeable"
    back = await post(staff, f"/api/v1/users/{target}/role", {"role": "member"})
    assert back.status_code == 200


async def test_create_returns_code_link_and_qr(live_server: LiveServer, complex_world: ComplexWorld, clients) -> None:
    """A coordinator's order keeps every setting and gets a code, a share link and an SVG QR code."""
    coordinator = await clients(live_server, complex_world.coordinator)
    order = await open_order(coordinator, complex_world)
    assert 6 <= len(order["code"]) <= 8
    assert order["share_url"].endswith(f"/c/{order['code']}")
    assert (order["min_total_won"], order["free_shipping_from_won"], order["shipping_fee_won"], order["reward_bp"]) == (
        30_000, 60_000, 3_000, 200)
    assert [item["per_household_limit"] for item in order["items"]] == [2, 5]
    assert [item["unit_price_won"] for item in order["items"]] == [30_000, 5_000]
    qr = await coordinator.http.get(order["qr_svg_url"])
    assert qr.headers["content-type"].startswith("image/svg+xml")
    assert qr.text.lstrip().startswith("<svg")
    page = await coordinator.http.get(f"/complex/{order['id']}")
    assert page.status_code == 200
    assert "<svg" in page.text
    assert order["code"] in page.text

    member = await clients(live_server, complex_world.members[0])
    refused = await post(member, "/api/v1/complex-orders", draft(complex_world))
    assert refused.status_code == 403
    document = (await member.http.get("/api/v1/openapi.json")).json()
    assert "/api/v1/complex-orders/{complex_order_id}/participants" in document["paths"]
    assert "household_limit_exceeded" in document["components"]["schemas"]["Error"]["description"]


async def test_neighbours_share_limit_and_see_masked_units(live_server: LiveServer, complex_world: ComplexWorld, clients) -> None:
    """Two accounts of 101동 1203호 share the limit; others see 101동 12**호 and no names or phones."""
    coordinator = await clients(live_server, complex_world.coordinator)
    order = await open_order(coordinator, complex_world)
    first = await clients(live_server, complex_world.members[0])
    second = await clients(live_server, complex_world.members[1])
    other = await clients(live_server, complex_world.members[2])
    path = f"/api/v1/complex-orders/{order['id']}/participants"

    joined = await post(first, path, {"building": "101", "unit": "1203", "phone": "01011112222",
                                      "lines": lines(order, 2, 0)})
    assert joined.status_code == 201, joined.text
    over = await post(second, path, {"building": "101", "unit": "1203", "phone": "01033334444",
                                     "lines": lines(order, 1, 0)})
    assert over.status_code == 409
    assert over.json()["error"]["code"] == "household_limit_exceeded"
    assert over.json()["error"]["detail"]["remaining"] == 0
    assert "2" in over.json()["error"]["message"]["ko"]
    assert (await post(second, path, {"building": "101", "unit": "1203", "phone": "01033334444",
                                      "lines": lines(order, 0, 5)})).status_code == 201
    assert (await post(other, path, {"building": "1001", "unit": "302", "phone": "01055556666",
                                     "lines": lines(order, 1, 1)})).status_code == 201

    view = (await other.http.get(f"/api/v1/complex-orders/{order['id']}")).json()
    assert sorted(entry["household"] for entry in view["households"]) == ["1001동 3**호", "101동 12**호"]
    text = str(view)
    for secret in ("01011112222", "01033334444", "김민수", "이서연", "1203"):
        assert secret not in text
    assert view["my_participation"]["household"] == "1001동 302호"

    page = await other.http.get(f"/c/{order['code']}")
    assert "101동 12**호" in page.text
    assert "01011112222" not in page.text
    assert "김민수" not in page.text


async def test_neighbour_cannot_read_other_household(live_server: LiveServer, complex_world: ComplexWorld, clients) -> None:
    """A participant reads their own order; another household's order is 404, its lines unchangeable."""
    coordinator = await clients(live_server, complex_world.coordinator)
    order = await open_order(coordinator, complex_world)
    owner = await clients(live_server, complex_world.members[0])
    neighbour = await clients(live_server, complex_world.members[1])
    path = f"/api/v1/complex-orders/{order['id']}/participants"
    mine = (await post(owner, path, {"building": "101", "unit": "101", "phone": "01011112222",
                                     "lines": lines(order, 1, 0)})).json()
    await post(neighbour, path, {"building": "102", "unit": "101", "phone": "01022223333", "lines": lines(order, 1, 0)})

    own = await owner.http.get(f"{path}/{mine['id']}")
    assert own.status_code == 200
    assert own.json()["phone"] == "01011112222"
    foreign = await neighbour.http.get(f"{path}/{mine['id']}")
    assert foreign.status_code == 404
    assert "01011112222" not in foreign.text
    change = await post(neighbour, f"{path}/{mine['id']}/lines", {"lines": lines(order, 0, 0)}, method="PUT")
    assert change.status_code == 404
    coordinator_view = await coordinator.http.get(f"{path}/{mine['id']}")
    assert coordinator_view.status_code == 200


async def test_member_cannot_close_or_see_roster(live_server: LiveServer, complex_world: ComplexWorld, clients) -> None:
    """A member who is not the coordinator gets 403 on close, roster, sheets and pages, and no roster socket."""
    coordinator = await clients(live_server, complex_world.coordinator)
    order = await open_order(coordinator, complex_world)
    member = await clients(live_server, complex_world.members[3])
    base = f"/api/v1/complex-orders/{order['id']}"
    assert (await post(member, f"{base}/close", {})).status_code == 403
    for path in (f"{base}/roster", f"{base}/pick-lists", f"{base}/deliveries"):
        assert (await member.http.get(path)).status_code == 403
    for path in (f"/complex/{order['id']}", f"/complex/{order['id']}/delivery-sheet.csv",
                 f"/complex/{order['id']}/handover"):
        assert (await member.http.get(path)).status_code == 403
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        await member.connect(f"/ws/complex/{order['id']}")
    assert refused.value.response.status_code == 403


async def test_csrf_and_bad_input_rejected(live_server: LiveServer, complex_world: ComplexWorld, clients) -> None:
    """Joins without the CSRF token, with a hyphenated phone, markup in 동/호 or separated quantities fail."""
    coordinator = await clients(live_server, complex_world.coordinator)
    order = await open_order(coordinator, complex_world)
    member = await clients(live_server, complex_world.members[4])
    path = f"/api/v1/complex-orders/{order['id']}/participants"
    good = {"building": "101", "unit": "1203", "phone": "01011112222", "lines": lines(order, 1, 0)}

    no_token = await member.http.post(path, json=good)
    assert no_token.status_code == 403
    assert no_token.json()["error"]["code"] == "csrf_failed"
    cases = [
        ({**good, "phone": "010-1111-2222"}, "invalid_phone"),
        ({**good, "phone": "0101111222a"}, "invalid_phone"),
        ({**good, "building": "<b>101</b>"}, "invalid_household"),
        ({**good, "unit": "<script>alert(1)</script>"}, "invalid_household"),
        ({**good, "lines": lines(order, "1,000", 0)}, "invalid_number"),
        ({**good, "lines": lines(order, 1.0, 0)}, "invalid_number"),
        ({**good, "lines": lines(order, "-1", 0)}, "invalid_number"),
        ({**good, "lines": lines(order, "３", 0)}, "invalid_number"),
        ({**good, "lines": lines(order, 0, 0)}, "empty_order"),
    ]
    for body, code in cases:
        response = await post(member, path, body)
        assert response.status_code in (400, 422), (body, response.text)
        assert response.json()["error"]["code"] == code, body

    form = await member.http.post(f"/c/{order['code']}", data={
        "csrf_token": member.csrf_token, "building": "<img src=x onerror=alert(1)>", "unit": "1203",
        "phone": "01011112222", f"qty_{order['items'][0]['id']}": "1",
    })
    assert form.status_code == 422
    assert "<img src=x" not in form.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in form.text

    institution = await open_order(coordinator, complex_world, kind="institution", complex_name="광산구청")
    markup = await post(member, f"/api/v1/complex-orders/{institution['id']}/participants",
                        {**good, "building": "총무과<script>", "lines": lines(institution, 1, 0)})
    assert markup.json()["error"]["code"] == "invalid_household"
    desk = await post(member, f"/api/v1/complex-orders/{institution['id']}/participants",
                      {**good, "building": "총무과", "unit": "민원창구", "lines": lines(institution, 1, 0)})
    assert desk.status_code == 201
    assert desk.json()["household"] == "총무과 민원창구"


async def test_roster_gains_row_live(live_server: LiveServer, complex_world: ComplexWorld, clients) -> None:
    """The coordinator's roster socket receives the new row when a neighbour joins, then its change."""
    coordinator = await clients(live_server, complex_world.coordinator)
    order = await open_order(coordinator, complex_world)
    socket = await coordinator.connect(f"/ws/complex/{order['id']}")
    try:
        snapshot = await socket.recv()
        assert f'id="complex-{order["id"]}-roster"' in snapshot
        neighbour = await clients(live_server, complex_world.members[5])
        joined = await post(neighbour, f"/api/v1/complex-orders/{order['id']}/participants",
                            {"building": "103", "unit": "1502", "phone": "01099998888", "lines": lines(order, 1, 2)})
        participant_id = joined.json()["id"]
        row_id = f'id="complex-{order["id"]}-row-{participant_id}"'
        pushed = await receive_until(socket, lambda text: row_id in text)
        assert f'hx-swap-oob="beforeend:#complex-{order["id"]}-roster"' in pushed
        assert "103동 1502호" in pushed
        assert "01099998888" in pushed
        assert "강바다" in pushed
        assert "103동 1502호 세대가 참여했습니다." in pushed

        await post(neighbour, f"/api/v1/complex-orders/{order['id']}/participants/{participant_id}/lines",
                   {"lines": lines(order, 2, 2)}, method="PUT")
        changed = await receive_until(socket, lambda text: row_id in text and "outerHTML" in text)
        assert "× 2" in changed
    finally:
        await socket.close()


async def test_close_sheets_arrival_and_handover(live_server: LiveServer, complex_world: ComplexWorld, clients,
                                                 pg_pool, settings, smtp_sink) -> None:
    """Closing makes orders with shipping charged below the total; CSV, arrival mails and check-off follow."""
    coordinator = await clients(live_server, complex_world.coordinator)
    order = await open_order(coordinator, complex_world, min_total_won=None, complex_name="신가 부영 3차")
    base = f"/api/v1/complex-orders/{order['id']}"
    neighbours = [await clients(live_server, complex_world.members[index]) for index in (0, 1)]
    await post(neighbours[0], f"{base}/participants", {"building": "1001", "unit": "101", "phone": "01011112222",
                                                       "lines": lines(order, 1, 0)})
    await post(neighbours[1], f"{base}/participants", {"building": "101", "unit": "902", "phone": "01022223333",
                                                       "lines": lines(order, 0, 3)})
    closed = await post(coordinator, f"{base}/close", {})
    assert closed.status_code == 200, closed.text
    assert closed.json()["shipping"] == {"fee_won": 3_000, "waived": False}
    again = await post(coordinator, f"{base}/close", {})
    assert again.json()["error"]["code"] == "complex_not_open"
    orders = await pg_pool.fetch("SELECT amount_won, channel, source_key, status FROM orders WHERE complex_order_id = $1"
                                 " ORDER BY id", order["id"])
    assert [row["amount_won"] for row in orders] == [31_500, 16_500]
    assert {row["channel"] for row in orders} == {"complex"}
    assert {row["status"] for row in orders} == {"awaiting_payment"}
    late = await post(neighbours[0], f"{base}/participants", {"building": "1001", "unit": "101", "lines": lines(order, 1, 1)})
    assert late.json()["error"]["code"] == "complex_not_open"

    sheet = await coordinator.http.get(f"/complex/{order['id']}/delivery-sheet.csv")
    assert sheet.headers["content-type"].startswith("text/csv")
    assert sheet.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(sheet.content[3:].decode("utf-8"), newline="")))
    assert rows == [
        ["동", "호", "상품", "단위", "수량", "금액(원)", "구분"],
        ["101", "902", "우리밀 국수", "1봉", "3", "15000", ""],
        ["101동 소계", "", "", "", "3", "15000", ""],
        ["1001", "101", "광산 햇김 선물세트", "1세트", "1", "30000", ""],
        ["1001동 소계", "", "", "", "1", "30000", ""],
        ["합계", "", "", "", "4", "45000", ""],
    ]
    printable = await coordinator.http.get(f"/complex/{order['id']}/delivery-sheet")
    assert printable.text.index("101동 소계") < printable.text.index("1001동 소계")

    arrived = await post(coordinator, f"{base}/deliveries/arrived", {})
    assert arrived.json()["mails_queued"] == 2
    sender = OutboxSender(pg_pool, smtp_url=settings.smtp_url, mail_from=settings.mail_from)
    while await sender.send_due():
        pass
    notices = [message for message in smtp_sink.messages if "신가 부영 3차" in str(message.message["Subject"])
               and "도착" in str(message.message["Subject"])]
    assert sorted(message.envelope_to[0] for message in notices) == sorted(
        [complex_world.members[0].email, complex_world.members[1].email])

    deliveries = (await coordinator.http.get(f"{base}/deliveries")).json()
    household_id = deliveries["buildings"][0]["households"][0]["household_id"]
    tick_path = f"/complex/{order['id']}/handover/{household_id}"
    assert (await coordinator.http.post(tick_path, data={"handed_over": "1"})).status_code == 403
    ticked = await coordinator.http.post(tick_path, data={"handed_over": "1", "csrf_token": coordinator.csrf_token},
                                         headers={"HX-Request": "true"})
    assert ticked.status_code == 200
    assert 'aria-pressed="true"' in ticked.text
    deliveries = (await coordinator.http.get(f"{base}/deliveries")).json()
    assert deliveries["buildings"][0]["households"][0]["handed_over"] is True
    page = await coordinator.http.get(f"/complex/{order['id']}/handover")
    assert page.status_code == 200
    assert 'name="viewport"' in page.text


async def test_refund_over_api_reduces_order(live_server: LiveServer, complex_world: ComplexWorld, clients, pg_pool) -> None:
    """A shortage refund through the API lowers the order's amount and the reward shown to neighbours."""
    coordinator = await clients(live_server, complex_world.coordinator)
    order = await open_order(coordinator, complex_world, min_total_won=None, reward_bp=1000)
    base = f"/api/v1/complex-orders/{order['id']}"
    neighbour = await clients(live_server, complex_world.members[2])
    joined = (await post(neighbour, f"{base}/participants", {"building": "105", "unit": "201", "phone": "01033334444",
                                                            "lines": lines(order, 2, 2)})).json()
    await post(coordinator, f"{base}/close", {})
    assert (await neighbour.http.get(base)).json()["totals"]["reward_won"] == 7_000
    body = {"household_id": joined["household_id"], "item_id": order["items"][0]["id"], "units": "1",
            "reason": "배송 중 파손", "refund_key": "dmg-1"}
    refunded = await post(coordinator, f"{base}/refunds", body)
    assert refunded.status_code == 201, refunded.text
    assert refunded.json()["refunds"][0]["amount_won"] == 30_000
    repeat = await post(coordinator, f"{base}/refunds", body)
    assert repeat.json()["refunds"][0]["source_key"] == refunded.json()["refunds"][0]["source_key"]
    mine = (await neighbour.http.get(f"{base}/participants/{joined['id']}")).json()
    # Laver (60,000원) and noodles (10,000원) are two suppliers' goods: two orders, the laver order refunded.
    laver_order, noodle_order = sorted(mine["orders"], key=lambda part: part["supplier"]["id"])
    assert laver_order["supplier"]["id"] == complex_world.supplier_ids[0]
    assert laver_order["amount_won"] == 60_000 - 30_000
    assert noodle_order["amount_won"] == 10_000
    view = (await neighbour.http.get(base)).json()
    assert view["totals"]["paid_won"] == 40_000
    assert view["totals"]["reward_won"] == 4_000
    assert await pg_pool.fetchval("SELECT count(*) FROM refunds WHERE order_id = $1", laver_order["id"]) == 1
    denied = await post(neighbour, f"{base}/refunds", {**body, "refund_key": "x2"})
    assert denied.status_code == 403


async def test_nav_links_for_coordinator_and_staff(live_server: LiveServer, complex_world: ComplexWorld, clients) -> None:
    """Coordinators see 단지 공동구매 linking to their list; staff see 코디네이터 지정; members see neither."""
    coordinator = await clients(live_server, complex_world.coordinator)
    staff = await clients(live_server, complex_world.staff)
    member = await clients(live_server, complex_world.members[7])
    coordinator_page = (await coordinator.http.get("/complex")).text
    staff_page = (await staff.http.get("/complex")).text
    member_page = (await member.http.get("/complex")).text
    assert '<a href="/complex">단지 공동구매</a>' in coordinator_page
    assert '<a href="/staff/coordinators">코디네이터 지정</a>' in staff_page
    assert '<a href="/staff/coordinators">' not in coordinator_page
    assert '<a href="/complex">단지 공동구매</a>' not in member_page


async def test_role_change_ends_target_sessions(live_server: LiveServer, complex_world: ComplexWorld, clients, pg_pool) -> None:
    """After staff change a user's role, that user's open session is signed out at once."""
    staff = await clients(live_server, complex_world.staff)
    target_account = complex_world.members[5]
    target = await clients(live_server, target_account)
    assert (await target.http.get("/api/v1/session")).json()["user"] is not None

    granted = await post(staff, f"/api/v1/users/{target_account.user_id}/role", {"role": "coordinator"})
    assert granted.status_code == 200, granted.text

    assert (await target.http.get("/api/v1/session")).json()["user"] is None
    await post(staff, f"/api/v1/users/{target_account.user_id}/role", {"role": "member"})

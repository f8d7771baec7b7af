"""Coordinator messages to the participants of a complex order, through the outbox to SMTP."""

from __future__ import annotations

import pytest

from engine.complexorders import messages
from engine.complexorders.service import submit_participation
from engine.errors import DomainError
from engine.outbox import OutboxSender
from tests.complexorders.conftest import ComplexFactory, ComplexWorld, actor
from tests.complexorders.test_complex_web import open_order, post
from tests.web.live.conftest import LiveServer


async def send_all(pg_pool, settings) -> None:
    sender = OutboxSender(pg_pool, smtp_url=settings.smtp_url, mail_from=settings.mail_from)
    while await sender.send_due():
        pass


@pytest.mark.slow
async def test_message_reaches_each_participant_once(live_server: LiveServer, complex_world: ComplexWorld, clients,
                                                     pg_pool, settings, smtp_sink) -> None:
    """Each participant gets the coordinator's message exactly once; the reply shows no address; a neighbour gets 403."""
    coordinator = await clients(live_server, complex_world.coordinator)
    order = await open_order(coordinator, complex_world, min_total_won=None, complex_name="첨단 대우 2차")
    base = f"/api/v1/complex-orders/{order['id']}"
    neighbours = [await clients(live_server, complex_world.members[index]) for index in (3, 4, 5)]
    for index, neighbour in enumerate(neighbours):
        joined = await post(neighbour, f"{base}/participants", {
            "building": "201", "unit": str(1101 + index), "phone": "01077778888",
            "lines": [{"item_id": order["items"][1]["id"], "quantity": 1}],
        })
        assert joined.status_code == 201, joined.text

    denied = await post(neighbours[0], f"{base}/messages", {"subject": "안녕하세요", "body": "이웃입니다"})
    assert denied.status_code == 403

    sent = await post(coordinator, f"{base}/messages",
                      {"subject": "수령 시간 안내", "body": "토요일 10시부터 관리사무소에서 나눠 드립니다.\r\n<b>감사합니다</b>"})
    assert sent.status_code == 201, sent.text
    assert sent.json()["recipients"] == 3
    assert "@" not in sent.text
    message_id = sent.json()["message_id"]

    await send_all(pg_pool, settings)
    await send_all(pg_pool, settings)
    received = [m for m in smtp_sink.messages if "수령 시간 안내" in str(m.message["Subject"])]
    expected = sorted(complex_world.members[index].email for index in (3, 4, 5))
    assert sorted(m.envelope_to[0] for m in received) == expected
    body = received[0].message.get_content()
    assert "공동주문 담당자가 참여자 모두에게 보낸 안내입니다." in body  # members registered in Korean
    assert "토요일 10시부터 관리사무소에서 나눠 드립니다.\n<b>감사합니다</b>" in body
    assert await pg_pool.fetchval("SELECT count(*) FROM outbox WHERE event_key = $1",
                                  f"complex:{order['id']}:message:{message_id}") == 3

    injected = await post(coordinator, f"{base}/messages", {"subject": "안내\r\nBcc: x@example.com", "body": "본문"})
    assert injected.status_code == 422
    assert injected.json()["error"]["code"] == "invalid_field"

    page = await coordinator.http.get(f"/complex/{order['id']}")
    assert 'action="/complex/' + str(order["id"]) + '/messages"' in page.text
    for participant in complex_world.members[3:6]:
        assert participant.email not in page.text


async def test_message_rate_limited_per_hour(pg_pool, complex_world: ComplexWorld, make_complex: ComplexFactory) -> None:
    """A sixth message within an hour is rejected with the seconds to wait, and writes nothing."""
    complex_order = await make_complex()
    await submit_participation(pg_pool, actor(complex_world.members[0]), complex_order.id,
                               quantities={complex_order.items[0].id: 1}, building="101", unit="101",
                               phone="01012345678")
    coordinator = actor(complex_world.coordinator)
    for index in range(messages.MAX_MESSAGES_PER_HOUR):
        sent = await messages.send_message(pg_pool, coordinator, complex_order.id, subject=f"안내 {index}", body="본문")
        assert sent.recipients == 1
    with pytest.raises(DomainError) as caught:
        await messages.send_message(pg_pool, coordinator, complex_order.id, subject="여섯 번째", body="본문")
    assert caught.value.code == "message_rate_limited"
    assert 0 < caught.value.detail["retry_after_s"] <= 3600
    assert await pg_pool.fetchval("SELECT count(*) FROM complex_messages WHERE complex_order_id = $1",
                                  complex_order.id) == messages.MAX_MESSAGES_PER_HOUR


@pytest.mark.parametrize(("subject", "body"), [
    ("", "본문"),
    ("가" * 101, "본문"),
    ("줄\n바꿈", "본문"),
    ("제목", ""),
    ("제목", "가" * 2_001),
    ("제목", "벨\x07"),
    (None, "본문"),
])
async def test_message_input_rejected(pg_pool, complex_world: ComplexWorld, make_complex: ComplexFactory,
                                      subject, body) -> None:
    """Empty or oversized subjects and bodies, line breaks in the subject and control characters are rejected."""
    complex_order = await make_complex()
    with pytest.raises(DomainError) as caught:
        await messages.send_message(pg_pool, actor(complex_world.coordinator), complex_order.id,
                                    subject=subject, body=body)
    assert caught.value.code == "invalid_field"


async def test_message_from_neighbour_forbidden(pg_pool, complex_world: ComplexWorld,
                                                make_complex: ComplexFactory) -> None:
    """A participant who is not the coordinator cannot send; staff can."""
    complex_order = await make_complex()
    with pytest.raises(DomainError) as caught:
        await messages.send_message(pg_pool, actor(complex_world.members[0]), complex_order.id,
                                    subject="안내", body="본문")
    assert caught.value.code == "forbidden"
    sent = await messages.send_message(pg_pool, actor(complex_world.staff), complex_order.id,
                                       subject="운영자 안내", body="본문")
    assert sent.recipients == 0

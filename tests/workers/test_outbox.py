"""The mail outbox: one row per (event, recipient), retried until sent, sent once each."""

from __future__ import annotations

import asyncio
import email.policy
from email.parser import BytesParser

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from embedded.common import LOOPBACK, find_free_port
from engine.outbox import OutboxSender, build_message, enqueue

FROM = "광산구 장터 <no-reply@jangteo.local>"


class Inbox:
    """An aiosmtpd handler that keeps the parsed messages."""

    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.messages.append(BytesParser(policy=email.policy.default).parsebytes(envelope.original_content))
        return "250 OK"


async def add_mails(db: asyncpg.Pool, count: int) -> None:
    async with db.acquire() as connection:
        async with connection.transaction():
            for i in range(count):
                assert await enqueue(connection, f"test:{i}:notice", f"buyer{i}@example.com",
                                     f"[광산구 장터] 알림 {i}", f"본문 {i}\n")


async def test_enqueue_keeps_one_row_per_event_and_recipient(db):
    """Enqueueing the same (event, recipient) twice leaves one row and reports the repeat."""
    async with db.acquire() as connection:
        assert await enqueue(connection, "lot:1:won", "a@example.com", "제목", "본문")
        assert not await enqueue(connection, "lot:1:won", "a@example.com", "제목", "본문")
        assert await enqueue(connection, "lot:1:won", "b@example.com", "제목", "본문")
    assert await db.fetchval("SELECT count(*) FROM outbox") == 2


@pytest.mark.parametrize(
    ("recipient", "subject"),
    [
        ("a@example.com\r\nBcc: victim@example.com", "제목"),
        ("a@example.com", "제목\r\nBcc: victim@example.com"),
        ("a@example.com", "제목\nX-Injected: 1"),
        ("a@example.com, b@example.com", "제목"),
        ("not-an-address", "제목"),
    ],
)
async def test_enqueue_rejects_header_injection(db, recipient: str, subject: str):
    """A recipient or subject that could add a header raises ValueError and writes nothing."""
    async with db.acquire() as connection:
        with pytest.raises(ValueError):
            await enqueue(connection, "lot:1:won", recipient, subject, "본문")
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


def test_message_has_stable_id_and_korean_subject():
    """The message of a row carries `<outbox-ID@domain>` and the Korean subject, UTF-8 encoded."""
    message = build_message(outbox_id=42, mail_from=FROM, recipient="a@example.com",
                            subject="[광산구 장터] 낙찰되었습니다", body="축하합니다.\n")
    parsed = BytesParser(policy=email.policy.default).parsebytes(message.as_bytes())
    assert parsed["Message-ID"] == "<outbox-42@jangteo.local>"
    assert str(parsed["Subject"]) == "[광산구 장터] 낙찰되었습니다"
    assert parsed["From"].addresses[0].addr_spec == "no-reply@jangteo.local"
    assert parsed.get_content() == "축하합니다.\n"


async def test_sender_retries_until_server_is_up(db):
    """With no SMTP listener rows stay pending with growing attempts; once it listens each is sent once."""
    port = find_free_port()
    await add_mails(db, 3)
    sender = OutboxSender(db, smtp_url=f"smtp://{LOOPBACK}:{port}", mail_from=FROM,
                          backoff_base_s=0.01, backoff_max_s=0.05, timeout_s=5)

    for _ in range(12):
        assert await sender.send_due() == 0
        await asyncio.sleep(0.02)

    rows = await db.fetch("SELECT status, attempts, last_error FROM outbox ORDER BY id")
    assert {row["status"] for row in rows} == {"pending"}
    assert all(row["attempts"] >= 2 for row in rows)
    assert all(row["last_error"] for row in rows)

    inbox = Inbox()
    controller = Controller(inbox, hostname=LOOPBACK, port=port)
    controller.start()
    try:
        sent = 0
        while sent < 3:
            sent += await sender.send_due()
            await asyncio.sleep(0.02)
        assert await sender.send_due() == 0
    finally:
        controller.stop()

    assert len(inbox.messages) == 3
    assert sorted(m["To"] for m in inbox.messages) == [f"buyer{i}@example.com" for i in range(3)]
    statuses = await db.fetch("SELECT status, sent_at FROM outbox")
    assert {row["status"] for row in statuses} == {"sent"}
    assert all(row["sent_at"] is not None for row in statuses)


async def test_concurrent_senders_send_each_row_once(db, smtp_sink):
    """Three senders working the same outbox deliver every row exactly once."""
    await add_mails(db, 30)
    senders = [OutboxSender(db, smtp_url=smtp_sink.url, mail_from=FROM, batch_size=5) for _ in range(3)]

    while await db.fetchval("SELECT count(*) FROM outbox WHERE status = 'pending'"):
        await asyncio.gather(*(sender.send_due() for sender in senders))

    assert len(smtp_sink.messages) == 30
    assert len({m.message["Message-ID"] for m in smtp_sink.messages}) == 30

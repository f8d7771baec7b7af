"""The mail outbox: one row per (event, recipient), retried until sent, sent once each."""

from __future__ import annotations

import asyncio
import email.policy
import logging
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
    "subject",
    ["제목\r\nBcc: victim@example.com", "제목\nX-Injected: 1", "가" * 201],
)
async def test_enqueue_rejects_bad_subject(db, subject: str):
    """A subject that could add a header, or is too long, raises ValueError and writes nothing."""
    async with db.acquire() as connection:
        with pytest.raises(ValueError):
            await enqueue(connection, "lot:1:won", "a@example.com", subject, "본문")
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0


UNSENDABLE = [
    "a@example.com\r\nBcc: victim@example.com",
    "a@example.com, b@example.com",
    'x"y@example.com',
    "a<b@example.com",
    "a:b@example.com",
    "not-an-address",
]


@pytest.mark.parametrize("recipient", UNSENDABLE)
async def test_enqueue_skips_unsendable_recipient(db, caplog, recipient: str):
    """A recipient that is not one plain address is skipped (False, no row) and logged by ids, not address."""
    await db.execute("ALTER TABLE users DROP CONSTRAINT users_email_plain")
    user_id = await db.fetchval(
        "INSERT INTO users (email, password_hash, display_name) VALUES ($1, 'x', '김민수') RETURNING id", recipient
    )
    caplog.set_level(logging.WARNING, logger="jangteo.outbox")
    async with db.acquire() as connection:
        async with connection.transaction():
            assert await enqueue(connection, "lot:7:won", recipient, "제목", "본문") is False
            assert await enqueue(connection, "lot:7:lost", "ok@example.com", "제목", "본문") is True
    assert await db.fetchval("SELECT count(*) FROM outbox") == 1
    skipped = [record.getMessage() for record in caplog.records if "mail skipped" in record.getMessage()]
    assert len(skipped) == 1
    assert "event_key=lot:7:won" in skipped[0]
    assert f"user_ids=[{user_id}]" in skipped[0]
    assert recipient not in caplog.text


@pytest.mark.parametrize("email", UNSENDABLE)
async def test_users_check_rejects_unsendable_email(db, email: str):
    """The users table itself rejects an address the outbox cannot send to."""
    with pytest.raises(asyncpg.CheckViolationError):
        await db.execute("INSERT INTO users (email, password_hash, display_name) VALUES ($1, 'x', '김민수')", email)


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

from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from embedded.smtp import ensure_smtp_sink, list_messages, stop_smtp_sink


def _mail(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "광산구 장터 <no-reply@jangteo.local>"
    message["To"] = "buyer@example.com"
    message["Subject"] = subject
    message.set_content("낙찰을 축하합니다.")
    return message


@pytest.mark.slow
async def test_smtp_sink_process_stores_in_maildir(tmp_path: Path) -> None:
    """A message sent to the sink process lands in the Maildir with its subject and envelope recipients."""
    maildir = tmp_path / "mail"
    url = ensure_smtp_sink(tmp_path / "smtp", maildir)
    try:
        port = int(url.rsplit(":", 1)[1])
        await aiosmtplib.send(
            _mail("낙찰 안내"),
            hostname="127.0.0.1",
            port=port,
            recipients=["buyer@example.com", "audit@example.com"],
        )

        captured = list_messages(maildir)

        assert len(captured) == 1
        assert captured[0].subject == "낙찰 안내"
        assert captured[0].envelope_from == "no-reply@jangteo.local"
        assert captured[0].envelope_to == ("buyer@example.com", "audit@example.com")
        assert captured[0].message.get_content().strip() == "낙찰을 축하합니다."
        assert (maildir / "new" / captured[0].key).exists()
    finally:
        stop_smtp_sink(tmp_path / "smtp")


@pytest.mark.slow
async def test_smtp_sink_reused_and_lists_newest_first(tmp_path: Path) -> None:
    """A second start reuses the running sink, and list_messages returns the newest message first."""
    maildir = tmp_path / "mail"
    url = ensure_smtp_sink(tmp_path / "smtp", maildir)
    try:
        assert ensure_smtp_sink(tmp_path / "smtp", maildir) == url
        port = int(url.rsplit(":", 1)[1])
        for subject in ("첫째", "둘째", "셋째"):
            await aiosmtplib.send(_mail(subject), hostname="127.0.0.1", port=port)

        assert [mail.subject for mail in list_messages(maildir, limit=2)] == ["셋째", "둘째"]
    finally:
        stop_smtp_sink(tmp_path / "smtp")


def test_list_messages_without_maildir(tmp_path: Path) -> None:
    """A Maildir that does not exist yet lists no messages."""
    assert list_messages(tmp_path / "missing") == []


async def test_session_smtp_sink_captures(smtp_sink) -> None:
    """The test SMTP sink fixture records each message with its envelope."""
    port = int(smtp_sink.url.rsplit(":", 1)[1])
    await aiosmtplib.send(_mail("테스트"), hostname="127.0.0.1", port=port)

    messages = await smtp_sink.wait_for(1)

    assert messages[0].message["Subject"] == "테스트"
    assert messages[0].envelope_to == ("buyer@example.com",)

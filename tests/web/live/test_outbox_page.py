"""The staff outbox page lists queued mail for staff only."""

from __future__ import annotations

import secrets

import asyncpg
import pytest

from tests.web.live.conftest import LiveServer, World

pytestmark = pytest.mark.slow


async def test_outbox_page_lists_rows_for_staff(live_server: LiveServer, world: World, pg_pool: asyncpg.Pool, clients) -> None:
    """Staff see each queued mail with its status; markup in a subject is shown escaped."""
    event_key = f"lot:{secrets.token_hex(4)}:won"
    await pg_pool.execute(
        "INSERT INTO outbox (event_key, recipient, subject, body_text) VALUES ($1, $2, $3, $4)",
        event_key, "winner@example.com", "[장터] 낙찰 <b>안내</b>", "본문",
    )
    staff = await clients(live_server, world.staff)

    response = await staff.http.get("/staff/outbox")

    assert response.status_code == 200
    assert "메일 발송함" in response.text
    assert event_key in response.text
    assert "[장터] 낙찰 &lt;b&gt;안내&lt;/b&gt;" in response.text
    assert "<b>안내</b>" not in response.text


async def test_outbox_page_rejects_member(live_server: LiveServer, world: World, clients) -> None:
    """A member asking for the outbox page gets 403 and no mail rows."""
    member = await clients(live_server, world.members[0])

    response = await member.http.get("/staff/outbox")

    assert response.status_code == 403
    assert "winner@example.com" not in response.text


async def test_outbox_status_in_korean(live_server: LiveServer, world: World, pg_pool: asyncpg.Pool, clients) -> None:
    """Each mail's status reads 대기, 발송 or 실패, and every cell names its column for the phone layout."""
    keys = {}
    for status in ("pending", "sent", "failed"):
        keys[status] = f"lot:{secrets.token_hex(4)}:{status}"
        await pg_pool.execute(
            "INSERT INTO outbox (event_key, recipient, subject, body_text, status, sent_at)"
            " VALUES ($1, 'member@example.com', '[장터] 안내', '본문', $2,"
            " CASE WHEN $2 = 'sent' THEN now() END)",
            keys[status], status,
        )
    staff = await clients(live_server, world.staff)

    page = (await staff.http.get("/staff/outbox")).text

    for status, label in (("pending", "대기"), ("sent", "발송"), ("failed", "실패")):
        row = page[page.index(keys[status]):]
        row = row[: row.index("</tr>")]
        assert f'data-status="{status}">{label}</td>' in row
        assert 'data-label="상태"' in row

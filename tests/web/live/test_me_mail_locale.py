"""A locale changed with `PATCH /api/v1/me` applies to the member's next mail, through the outbox to SMTP."""

from __future__ import annotations

import secrets

import asyncpg
import pytest

from engine.config import Settings
from engine.outbox import OutboxSender
from tests.web.live.campaign_fixtures import CampaignFactory, engine_campaigns, make_campaign  # noqa: F401
from tests.web.live.conftest import LiveServer, SignedIn, World, insert_user

pytestmark = pytest.mark.slow

TITLE = "Gwangsan laver gift set"


async def _pledge(member: SignedIn, campaign_id: int, units: int) -> int:
    """Pledge a new total of `units` and return the id of the up-front payment it recorded."""
    response = await member.http.post(
        f"/api/v1/campaigns/{campaign_id}/pledges",
        json={"units": units, "client_id": secrets.token_hex(8)},
        headers={"X-CSRF-Token": member.csrf_token},
    )
    assert response.status_code == 201, response.text
    payment_id = response.json()["payment_id"]
    assert isinstance(payment_id, int), response.text
    return payment_id


async def _set_locale(member: SignedIn, locale: str) -> None:
    response = await member.http.patch("/api/v1/me", json={"locale": locale},
                                       headers={"X-CSRF-Token": member.csrf_token})
    assert response.status_code == 200, response.text
    assert response.json()["locale"] == locale


async def _queued_subject(db: asyncpg.Pool, payment_id: int, email: str) -> str:
    subject = await db.fetchval(
        "SELECT subject FROM outbox WHERE event_key = $1 AND recipient = $2",
        f"pledge_payment:{payment_id}:requested", email,
    )
    assert subject is not None, f"no payment mail queued for payment {payment_id}"
    return subject


async def test_patch_me_sets_next_mail_locale(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                              pg_pool: asyncpg.Pool, settings: Settings, smtp_sink, clients) -> None:
    """Each up-front pledge's payment mail follows the locale stored just before it: Korean, English, Korean."""
    campaign_id = await make_campaign(payment_timing="up_front", title=TITLE)
    account = await insert_user(pg_pool, "Alice Kim")
    member = await clients(live_server, account)

    first = await _pledge(member, campaign_id, 1)
    await _set_locale(member, "en")
    second = await _pledge(member, campaign_id, 2)
    await _set_locale(member, "ko")
    third = await _pledge(member, campaign_id, 3)

    korean_subject = f"[광산구 장터] 공동구매 입금 안내: {TITLE}"
    english_subject = f"[Gwangsan Market] Group buy payment details: {TITLE}"
    assert await _queued_subject(pg_pool, first, account.email) == korean_subject
    assert await _queued_subject(pg_pool, second, account.email) == english_subject
    assert await _queued_subject(pg_pool, third, account.email) == korean_subject

    assert settings.smtp_url
    await OutboxSender(pg_pool, smtp_url=settings.smtp_url, mail_from=settings.mail_from).send_due()
    delivered = [m.message for m in smtp_sink.messages if m.message["To"] == account.email]
    assert [str(message["Subject"]) for message in delivered] == [korean_subject, english_subject, korean_subject]
    assert f"You pledged 1 unit to group buy #{campaign_id} “{TITLE}”." in delivered[1].get_content()
    assert f"공동구매 #{campaign_id} '{TITLE}'에 1개를 신청하셨습니다." in delivered[2].get_content()

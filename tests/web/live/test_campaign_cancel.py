"""Staff cancel of a group buy through the JSON API and the staff page, against a real server, Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from engine.actors import STAFF, Actor
from engine.config import Settings
from engine.groupbuy.closing import close_due_campaigns
from engine.groupbuy.live import CampaignLive
from engine.groupbuy.payments import confirm_pledge_deposit
from tests.invariants import check_campaign_invariants, check_orders_money
from tests.web.live.campaign_fixtures import (  # noqa: F401  (fixtures)
    CampaignFactory, engine_campaigns, ledger_consumer, make_campaign,
)
from tests.web.live.conftest import LiveServer, SignedIn, World

pytestmark = pytest.mark.slow

REASON = "산지 태풍 피해로 출하가 어렵습니다"


async def pledge(member: SignedIn, campaign_id: int, units: int) -> dict:
    response = await member.http.post(
        f"/api/v1/campaigns/{campaign_id}/pledges",
        json={"units": units, "client_id": secrets.token_hex(8)},
        headers={"X-CSRF-Token": member.csrf_token},
    )
    return {"status": response.status_code, **response.json()}


async def cancel(client: SignedIn, campaign_id: int, reason: object = REASON, key: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"X-CSRF-Token": client.csrf_token}
    if key:
        headers["Idempotency-Key"] = key
    return await client.http.post(f"/api/v1/campaigns/{campaign_id}/cancel", json={"reason": reason}, headers=headers)


async def recorded_state(db: asyncpg.Pool, live: CampaignLive, campaign_id: int) -> dict:
    """Everything a rejected cancel must leave as it was, in both stores."""
    snapshot = await live.snapshot(campaign_id)
    assert snapshot is not None
    return {
        "campaign": dict(await db.fetchrow(
            "SELECT status, final_seq, cancel_reason, cancelled_by, closed_at FROM campaigns WHERE id = $1",
            campaign_id,
        )),
        "live": (snapshot.status, snapshot.seq),
        "events": await db.fetchval("SELECT count(*) FROM pledge_events WHERE campaign_id = $1", campaign_id),
        "audit": await db.fetchval(
            "SELECT count(*) FROM audit_log WHERE target_type = 'campaign' AND target_id = $1", campaign_id
        ),
        "payments": [tuple(row) for row in await db.fetch(
            "SELECT id, status FROM pledge_payments WHERE campaign_id = $1 ORDER BY id", campaign_id
        )],
        "outbox": await db.fetchval("SELECT count(*) FROM outbox WHERE event_key LIKE $1", f"campaign:{campaign_id}:%"),
    }


async def test_api_cancel_refunds_once(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                       engine_campaigns: CampaignLive, pg_pool, ledger_consumer, clients) -> None:
    """A staff cancel refunds the paid pledge, releases the unpaid one, mails both, and replays on a retry."""
    campaign_id = await make_campaign(payment_timing="up_front")
    payer = await clients(live_server, world.members[0])
    unpaid = await clients(live_server, world.members[1])
    paid_answer = await pledge(payer, campaign_id, 3)
    unpaid_answer = await pledge(unpaid, campaign_id, 2)
    staff_actor = Actor(world.staff.user_id, STAFF, world.staff.display_name)
    await confirm_pledge_deposit(pg_pool, paid_answer["payment_id"], staff_actor)
    staff = await clients(live_server, world.staff)
    key = f"cancel-{secrets.token_hex(8)}"

    first = await cancel(staff, campaign_id, key=key)
    assert first.status_code == 200, first.text
    assert first.json() == {"campaign_id": campaign_id, "status": "cancelled", "settled": True}
    retry = await cancel(staff, campaign_id, key=key)
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    again = await cancel(staff, campaign_id, key=f"cancel-{secrets.token_hex(8)}")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "campaign_cancelled"

    assert await pg_pool.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == "cancelled"
    audit = await pg_pool.fetch(
        "SELECT actor_id, detail FROM audit_log WHERE action = 'campaign.cancel' AND target_id = $1", campaign_id
    )
    assert [(row["actor_id"], row["detail"]["reason"]) for row in audit] == [(world.staff.user_id, REASON)]
    statuses = dict(await pg_pool.fetch("SELECT id, status FROM pledge_payments WHERE campaign_id = $1", campaign_id))
    assert statuses == {paid_answer["payment_id"]: "refunded", unpaid_answer["payment_id"]: "expired"}
    refunds = await pg_pool.fetch(
        "SELECT amount_won FROM refunds WHERE payment_id = ANY($1::bigint[])", list(statuses)
    )
    assert [row["amount_won"] for row in refunds] == [27_000]
    ledger = await pg_pool.fetch(
        "SELECT entry, amount_won FROM money_ledger WHERE pledge_payment_id = ANY($1::bigint[]) ORDER BY id",
        list(statuses),
    )
    assert [(row["entry"], row["amount_won"]) for row in ledger] == [("payment", 27_000), ("refund", 27_000)]
    recipients = await pg_pool.fetch(
        "SELECT recipient FROM outbox WHERE event_key = $1", f"campaign:{campaign_id}:cancelled"
    )
    assert sorted(row["recipient"] for row in recipients) == sorted((world.members[0].email, world.members[1].email))

    late = await pledge(payer, campaign_id, 4)
    assert late["status"] == 409
    assert late["error"]["code"] == "campaign_cancelled"
    page = (await payer.http.get(f"/campaigns/{campaign_id}")).text
    assert "취소된 공동구매입니다" in page
    assert 'data-status="cancelled"' in page
    assert "이 공동구매는 성사됩니다" not in page  # the minimum of 5 was pledged, but it does not go ahead
    assert f'id="campaign-{campaign_id}-pledge-form"' not in page
    english = (await payer.http.get(f"/campaigns/{campaign_id}?lang=en")).text
    assert "This group buy was cancelled. Every pledge is released" in english
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[campaign_id])
    await check_orders_money(pg_pool, [])


async def test_member_cannot_cancel(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                    engine_campaigns: CampaignLive, pg_pool, clients) -> None:
    """A member gets 403 forbidden from the API and the staff form, and the campaign stays open."""
    campaign_id = await make_campaign()
    member = await clients(live_server, world.members[2])
    assert (await pledge(member, campaign_id, 2))["status"] == 201
    before = await recorded_state(pg_pool, engine_campaigns, campaign_id)

    response = await cancel(member, campaign_id)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    form = await member.http.post(f"/staff/campaigns/{campaign_id}/cancel",
                                  data={"csrf_token": member.csrf_token, "reason": REASON})
    assert form.status_code == 403
    assert await recorded_state(pg_pool, engine_campaigns, campaign_id) == before
    assert before["live"][0] == "open"


async def test_cancel_closed_campaign_rejected(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                               engine_campaigns: CampaignLive, pg_pool, settings: Settings,
                                               ledger_consumer, clients) -> None:
    """A cancel of a campaign that closed is 409 campaign_not_open with a Korean and English message, and changes nothing."""
    now = datetime.now(timezone.utc)
    campaign_id = await make_campaign(deadline_at=now + timedelta(seconds=2))
    member = await clients(live_server, world.members[3])
    assert (await pledge(member, campaign_id, 5))["status"] == 201
    status = None
    for _ in range(100):
        await close_due_campaigns(pg_pool, engine_campaigns, settings)
        status = await pg_pool.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id)
        snapshot = await engine_campaigns.snapshot(campaign_id)
        if status == "succeeded" and snapshot is not None and snapshot.status == status:
            break
        await asyncio.sleep(0.1)
    assert status == "succeeded"
    before = await recorded_state(pg_pool, engine_campaigns, campaign_id)
    staff = await clients(live_server, world.staff)

    response = await cancel(staff, campaign_id)

    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "campaign_not_open"
    assert error["detail"]["campaign_status"] == "succeeded"
    assert "더 이상 취소할 수 없습니다" in error["message"]["ko"]
    assert "can no longer be cancelled" in error["message"]["en"]
    assert await recorded_state(pg_pool, engine_campaigns, campaign_id) == before
    orders = [row["id"] for row in await pg_pool.fetch("SELECT id FROM orders WHERE campaign_id = $1", campaign_id)]
    assert len(orders) == 1
    await check_orders_money(pg_pool, orders)
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[campaign_id])


async def test_staff_page_cancel_form(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                      engine_campaigns: CampaignLive, pg_pool, ledger_consumer, clients) -> None:
    """The staff page's cancel form needs a reason and returns a fragment to htmx and a redirect to a plain post."""
    by_htmx = await make_campaign()
    by_form = await make_campaign()
    staff = await clients(live_server, world.staff)
    page = (await staff.http.get("/staff/campaigns")).text
    for campaign_id in (by_htmx, by_form):
        assert f'action="/staff/campaigns/{campaign_id}/cancel"' in page
    assert "· open" not in page
    assert "참여 받는 중" in page
    assert f'name="csrf_token" value="{staff.csrf_token}"' in page
    htmx = {"HX-Request": "true", "X-CSRF-Token": staff.csrf_token}

    empty = await staff.http.post(f"/staff/campaigns/{by_htmx}/cancel", data={"reason": "  "}, headers=htmx)
    assert empty.status_code == 422
    assert 'data-error-code="invalid_cancel_reason"' in empty.text
    assert "취소 사유를 1자에서 500자 사이로 입력해 주세요" in empty.text
    assert await pg_pool.fetchval("SELECT status FROM campaigns WHERE id = $1", by_htmx) == "open"

    no_token = await staff.http.post(f"/staff/campaigns/{by_htmx}/cancel", data={"reason": REASON},
                                     headers={"HX-Request": "true"})
    assert no_token.status_code == 403
    assert await pg_pool.fetchval("SELECT status FROM campaigns WHERE id = $1", by_htmx) == "open"

    done = await staff.http.post(f"/staff/campaigns/{by_htmx}/cancel", data={"reason": REASON}, headers=htmx)
    assert done.status_code == 200, done.text
    assert f"#{by_htmx} 공동구매를 취소했습니다" in done.text
    plain = await staff.http.post(f"/staff/campaigns/{by_form}/cancel",
                                  data={"csrf_token": staff.csrf_token, "reason": REASON})
    assert plain.status_code == 303
    assert plain.headers["location"] == f"/campaigns/{by_form}"
    for campaign_id in (by_htmx, by_form):
        assert await pg_pool.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == "cancelled"
        assert await pg_pool.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'campaign.cancel' AND target_id = $1", campaign_id
        ) == 1
    page = (await staff.http.get("/staff/campaigns")).text
    assert f'action="/staff/campaigns/{by_htmx}/cancel"' not in page
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[by_htmx, by_form])


async def test_openapi_lists_cancel(live_server: LiveServer, clients) -> None:
    """The OpenAPI document has the staff cancel with its request body and the Idempotency-Key header."""
    anonymous = await clients(live_server, None)
    document = (await anonymous.http.get("/api/v1/openapi.json")).json()
    operation = document["paths"]["/api/v1/campaigns/{campaign_id}/cancel"]["post"]
    assert {"$ref": "#/components/parameters/IdempotencyKey"} in operation["parameters"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["reason"]
    assert "200" in operation["responses"]

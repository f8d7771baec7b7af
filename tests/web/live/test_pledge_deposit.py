"""Staff confirm up-front group-buy bank transfers on the staff page and through the JSON API, against a real server.

Each test pledges 4 units to an up-front campaign whose "at most" price is
9,000원, so the pledge awaits a 36,000원 deposit. Members are made per test,
because the list and the search read every payment in the run's database.
"""

from __future__ import annotations

import asyncio
import re
import secrets

import asyncpg
import pytest

from engine.actors import MEMBER, Actor
from engine.groupbuy.live import CampaignLive
from engine.groupbuy.payments import expire_hold, record_up_front_payment, release_key
from engine.groupbuy.service import submit_pledge
from tests.invariants import check_campaign_invariants, check_pledge_payments_money
from tests.web.live.campaign_fixtures import CampaignFactory, engine_campaigns, make_campaign  # noqa: F401
from tests.web.live.conftest import Account, LiveServer, SignedIn, World, insert_user
from tests.web.live.test_order_deposit import ledger_consumer  # noqa: F401
from web.i18n import KST

pytestmark = pytest.mark.slow

UNITS = 4
DEPOSIT_WON = UNITS * 9_000
LIST_PATH = "/staff/pledge-payments"
CONFIRM_ACTION = "pledge_payment.confirm_deposit"


async def awaiting_payment(
    db: asyncpg.Pool, live: CampaignLive, make: CampaignFactory, name: str = "김민수"
) -> tuple[Account, int, int]:
    """Pledge 4 units as a new member of an up-front campaign; return the member, campaign id and payment id."""
    member = await insert_user(db, name)
    campaign_id = await make(payment_timing="up_front")
    actor = Actor(member.user_id, MEMBER, member.display_name)
    outcome = await submit_pledge(db, live, actor, campaign_id, UNITS, secrets.token_hex(8))
    assert outcome.accepted, outcome.code
    payment_id = await record_up_front_payment(db, campaign_id, member.user_id, UNITS, DEPOSIT_WON)
    return member, campaign_id, payment_id


async def expired_after_release(db: asyncpg.Pool, live: CampaignLive, payment_id: int) -> None:
    """Let the payment's hold lapse, expire it (Redis releases the units) and wait for the ledger to store the release."""
    await db.execute("UPDATE pledge_payments SET hold_expires_at = now() - interval '1 second' WHERE id = $1",
                     payment_id)
    assert await expire_hold(db, live, payment_id)
    for _ in range(200):
        if await db.fetchval("SELECT 1 FROM pledge_events WHERE client_id = $1", release_key(payment_id)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the ledger never stored the release of payment {payment_id}")


async def payment_ledger(db: asyncpg.Pool, payment_id: int) -> list[tuple[str, int]]:
    rows = await db.fetch(
        "SELECT entry, amount_won FROM money_ledger WHERE pledge_payment_id = $1 ORDER BY id", payment_id
    )
    return [(row["entry"], row["amount_won"]) for row in rows]


async def confirmation_count(db: asyncpg.Pool, payment_id: int) -> dict[str, int]:
    """Count what a confirmation writes: audit rows, paid mails and refunds of the payment."""
    return {
        "audit": await db.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = $1 AND target_id = $2", CONFIRM_ACTION, payment_id
        ),
        "mails": await db.fetchval(
            "SELECT count(*) FROM outbox WHERE event_key = $1", f"pledge_payment:{payment_id}:paid"
        ),
        "refunds": await db.fetchval("SELECT count(*) FROM refunds WHERE payment_id = $1", payment_id),
    }


def payment_row(page: str, payment_id: int) -> str:
    """Return the HTML of the payment's row on the list page."""
    match = re.search(rf'<li class="console-lot" id="pledge-payment-{payment_id}".*?</li>', page, re.S)
    assert match is not None, f"payment {payment_id} is not listed"
    return match.group(0)


async def post_confirm(staff: SignedIn, payment_id: int, *, final: bool, **fields: str):  # type: ignore[no-untyped-def]
    data = {"csrf_token": staff.csrf_token, **fields}
    if final:
        data["step"] = "final"
    return await staff.http.post(f"{LIST_PATH}/{payment_id}/confirm", data=data)


async def test_page_lists_and_confirms_once(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                          engine_campaigns: CampaignLive, pg_pool, clients) -> None:
    """The page lists the pledge, shows a confirmation step, confirms once, and a second try changes nothing."""
    member, campaign_id, payment_id = await awaiting_payment(pg_pool, engine_campaigns, make_campaign)
    hold_expires_at = await pg_pool.fetchval("SELECT hold_expires_at FROM pledge_payments WHERE id = $1", payment_id)
    staff = await clients(live_server, world.staff)

    page = await staff.http.get(LIST_PATH)
    assert page.status_code == 200
    row = payment_row(page.text, payment_id)
    assert 'data-status="awaiting_deposit"' in row
    assert "광산 햇김 공동구매" in row
    assert f"김*수 ({member.email})" in row
    assert "김민수" not in row
    assert "36,000원" in row
    assert "입금자명" in row
    # The hold expiry in Korea time (UTC+9).
    assert hold_expires_at.astimezone(KST).strftime("%Y-%m-%d %H:%M") in row
    assert f'action="{LIST_PATH}/{payment_id}/confirm"' in row
    assert 'name="csrf_token"' in row
    assert 'href="/staff/pledge-payments"' in page.text  # the staff menu

    by_email = await staff.http.get(LIST_PATH, params={"q": member.email.upper()})
    payment_row(by_email.text, payment_id)
    by_id = await staff.http.get(LIST_PATH, params={"q": str(payment_id)})
    payment_row(by_id.text, payment_id)
    unmatched = await staff.http.get(LIST_PATH, params={"q": "nobody-" + secrets.token_hex(4)})
    assert f'id="pledge-payment-{payment_id}"' not in unmatched.text
    assert "검색과 일치하는 신청이 없습니다." in unmatched.text

    step = await post_confirm(staff, payment_id, final=False, q=member.email)
    assert step.status_code == 200
    assert "36,000원이 계좌에 들어왔나요?" in step.text
    assert 'name="step" value="final"' in step.text
    assert f'name="q" value="{member.email}"' in step.text
    assert await pg_pool.fetchval("SELECT status FROM pledge_payments WHERE id = $1", payment_id) == "awaiting_deposit"
    assert await payment_ledger(pg_pool, payment_id) == []

    confirmed = await post_confirm(staff, payment_id, final=True, q=member.email)

    assert confirmed.status_code == 303, confirmed.text
    assert confirmed.headers["location"] == f"{LIST_PATH}?confirmed={payment_id}&q={member.email.replace('@', '%40')}"
    result = await staff.http.get(confirmed.headers["location"])
    assert f'data-result="held" data-payment="{payment_id}"' in result.text
    assert "입금을 확인했습니다. 신청 수량은 공동구매 마감까지 유지되고" in result.text
    assert f'id="pledge-payment-{payment_id}"' not in result.text
    paid = await pg_pool.fetchrow("SELECT status, confirmed_by, paid_at FROM pledge_payments WHERE id = $1", payment_id)
    assert (paid["status"], paid["confirmed_by"]) == ("paid", world.staff.user_id)
    assert paid["paid_at"] is not None
    assert await payment_ledger(pg_pool, payment_id) == [("payment", DEPOSIT_WON)]
    assert await confirmation_count(pg_pool, payment_id) == {"audit": 1, "mails": 1, "refunds": 0}

    again = await post_confirm(staff, payment_id, final=True)
    assert again.status_code == 409
    assert "이 결제의 입금은 이미 확인되었거나" in again.text
    step_again = await post_confirm(staff, payment_id, final=False)
    assert step_again.status_code == 409
    assert await payment_ledger(pg_pool, payment_id) == [("payment", DEPOSIT_WON)]
    assert await confirmation_count(pg_pool, payment_id) == {"audit": 1, "mails": 1, "refunds": 0}
    assert await pg_pool.fetchval("SELECT status FROM pledge_payments WHERE id = $1", payment_id) == "paid"
    await check_pledge_payments_money(pg_pool, [campaign_id])
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[campaign_id])


async def test_page_rejects_others_and_no_csrf(live_server: LiveServer, world: World,
                                              make_campaign: CampaignFactory, engine_campaigns: CampaignLive,
                                              pg_pool, clients) -> None:
    """Members, suppliers, visitors and a form without the CSRF token confirm nothing."""
    _, campaign_id, payment_id = await awaiting_payment(pg_pool, engine_campaigns, make_campaign, "이서연")
    staff = await clients(live_server, world.staff)
    member = await clients(live_server, world.members[0])
    supplier = await clients(live_server, world.supplier)
    visitor = await clients(live_server, None)

    for signed in (member, supplier):
        assert (await signed.http.get(LIST_PATH)).status_code == 403
        assert (await post_confirm(signed, payment_id, final=True)).status_code == 403
    anonymous = await visitor.http.get(LIST_PATH)
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Fstaff%2Fpledge-payments"
    anonymous_post = await post_confirm(visitor, payment_id, final=True)
    assert anonymous_post.status_code == 303
    assert anonymous_post.headers["location"].startswith("/login?next=")
    no_token = await staff.http.post(f"{LIST_PATH}/{payment_id}/confirm", data={"step": "final"})
    assert no_token.status_code == 403
    wrong_token = await staff.http.post(f"{LIST_PATH}/{payment_id}/confirm",
                                        data={"step": "final", "csrf_token": "x" * 43})
    assert wrong_token.status_code == 403
    assert (await post_confirm(staff, 999_999_999_999, final=True)).status_code == 404
    member_nav = (await member.http.get("/campaigns")).text
    assert 'href="/staff/pledge-payments"' not in member_nav

    english = await staff.http.get(LIST_PATH, params={"lang": "en"})
    assert "Group-buy deposits" in english.text
    assert "Awaiting deposit" in english.text

    assert await pg_pool.fetchval("SELECT status FROM pledge_payments WHERE id = $1", payment_id) == "awaiting_deposit"
    assert await payment_ledger(pg_pool, payment_id) == []
    assert await confirmation_count(pg_pool, payment_id) == {"audit": 0, "mails": 0, "refunds": 0}
    await check_pledge_payments_money(pg_pool, [campaign_id])


async def test_page_refunds_late_deposit(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                        engine_campaigns: CampaignLive, pg_pool, ledger_consumer, clients) -> None:
    """A hold that expired and released its units is listed as expired, and its late deposit is refunded in full."""
    member, campaign_id, payment_id = await awaiting_payment(pg_pool, engine_campaigns, make_campaign, "박정민")
    await expired_after_release(pg_pool, engine_campaigns, payment_id)
    assert await engine_campaigns.pledges(campaign_id) == {}
    staff = await clients(live_server, world.staff)

    page = await staff.http.get(LIST_PATH)
    row = payment_row(page.text, payment_id)
    assert 'data-status="expired"' in row
    assert page.text.index('id="expired-heading"') < page.text.index(f'id="pledge-payment-{payment_id}"')
    step = await post_confirm(staff, payment_id, final=False)
    assert 'data-note="late"' in step.text

    confirmed = await post_confirm(staff, payment_id, final=True)

    assert confirmed.status_code == 303, confirmed.text
    result = await staff.http.get(confirmed.headers["location"])
    assert 'data-result="late_refunded"' in result.text
    assert "신청 수량이 해제된 뒤에 도착한 입금이어서, 입금을 기록하고 전액 환불합니다." in result.text
    english = await staff.http.get(confirmed.headers["location"] + "&lang=en")
    assert "The deposit arrived after its hold expired and the units were released" in english.text
    assert await pg_pool.fetchval("SELECT status FROM pledge_payments WHERE id = $1", payment_id) == "refunded"
    refunds = await pg_pool.fetch("SELECT order_id, amount_won, reason FROM refunds WHERE payment_id = $1", payment_id)
    assert [tuple(refund.values()) for refund in refunds] == [(None, DEPOSIT_WON, "late_deposit")]
    assert await payment_ledger(pg_pool, payment_id) == [("payment", DEPOSIT_WON), ("refund", DEPOSIT_WON)]
    assert await confirmation_count(pg_pool, payment_id) == {"audit": 1, "mails": 1, "refunds": 1}
    assert (await post_confirm(staff, payment_id, final=True)).status_code == 409
    assert await confirmation_count(pg_pool, payment_id) == {"audit": 1, "mails": 1, "refunds": 1}
    await check_pledge_payments_money(pg_pool, [campaign_id])
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[campaign_id])


async def test_api_lists_and_confirms_once(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                          engine_campaigns: CampaignLive, pg_pool, clients) -> None:
    """The API lists the pledge for staff only, confirms it once with CSRF, and replays an Idempotency-Key."""
    member, campaign_id, payment_id = await awaiting_payment(pg_pool, engine_campaigns, make_campaign, "최유진")
    staff = await clients(live_server, world.staff)
    other = await clients(live_server, world.members[1])
    supplier = await clients(live_server, world.supplier)
    visitor = await clients(live_server, None)
    confirm_path = f"/api/v1/pledge-payments/{payment_id}/confirm-deposit"

    listed = await staff.http.get("/api/v1/pledge-payments", params={"status": "awaiting_deposit", "q": member.email})
    assert listed.status_code == 200
    body = listed.json()
    assert body["truncated"] is False
    [payment] = body["payments"]
    assert payment["payment_id"] == payment_id
    assert payment["campaign"] == {"id": campaign_id, "title": "광산 햇김 공동구매"}
    assert payment["member"] == {"id": member.user_id, "masked_name": "최*진", "email": member.email}
    assert (payment["units"], payment["amount_won"], payment["status"]) == (UNITS, DEPOSIT_WON, "awaiting_deposit")
    assert payment["depositor_name"] is None
    assert payment["hold_expires_at"].endswith("+00:00")
    expired_only = await staff.http.get("/api/v1/pledge-payments", params={"status": "expired", "q": member.email})
    assert expired_only.json()["payments"] == []
    invalid = await staff.http.get("/api/v1/pledge-payments", params={"status": "paid"})
    assert invalid.status_code == 422
    assert invalid.json()["error"]["code"] == "invalid_field"
    assert invalid.json()["error"]["detail"]["field"] == "status"
    for signed in (other, supplier):
        forbidden = await signed.http.get("/api/v1/pledge-payments")
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["code"] == "forbidden"
        rejected = await signed.http.post(confirm_path, headers={"X-CSRF-Token": signed.csrf_token})
        assert rejected.status_code == 403
        assert rejected.json()["error"]["code"] == "forbidden"
    assert (await visitor.http.get("/api/v1/pledge-payments")).json()["error"]["code"] == "not_authenticated"
    no_token = await staff.http.post(confirm_path)
    assert no_token.status_code == 403
    assert no_token.json()["error"]["code"] == "csrf_failed"
    assert await confirmation_count(pg_pool, payment_id) == {"audit": 0, "mails": 0, "refunds": 0}

    headers = {"X-CSRF-Token": staff.csrf_token, "Idempotency-Key": f"confirm-{payment_id}"}
    confirmed = await staff.http.post(confirm_path, headers=headers)

    assert confirmed.status_code == 200, confirmed.text
    result = confirmed.json()
    assert (result["late"], result["outcome"]) == (False, "held")
    assert (result["payment"]["payment_id"], result["payment"]["status"]) == (payment_id, "paid")
    assert result["message"]["ko"].startswith("입금을 확인했습니다.")
    assert result["message"]["en"].startswith("The deposit was confirmed.")
    replayed = await staff.http.post(confirm_path, headers=headers)
    assert replayed.status_code == 200
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == result
    again = await staff.http.post(confirm_path, headers={"X-CSRF-Token": staff.csrf_token})
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "payment_not_awaiting_deposit"
    assert error["detail"] == {"payment_id": payment_id, "status": "paid"}
    assert error["message"]["ko"].startswith("이 결제의 입금은 이미 확인되었거나")
    assert error["message"]["en"].startswith("This payment's deposit was already confirmed")
    for unknown in ("999999999999", "abc", "1" * 19):
        missing = await staff.http.post(f"/api/v1/pledge-payments/{unknown}/confirm-deposit",
                                        headers={"X-CSRF-Token": staff.csrf_token})
        assert missing.status_code == 404, unknown
        assert missing.json()["error"]["code"] == "payment_not_found", unknown

    assert await payment_ledger(pg_pool, payment_id) == [("payment", DEPOSIT_WON)]
    assert await confirmation_count(pg_pool, payment_id) == {"audit": 1, "mails": 1, "refunds": 0}
    await check_pledge_payments_money(pg_pool, [campaign_id])
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[campaign_id])


async def test_api_refunds_late_deposit(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                       engine_campaigns: CampaignLive, pg_pool, ledger_consumer, clients) -> None:
    """Through the API, a late deposit after the release is listed as expired and refunded in full."""
    member, campaign_id, payment_id = await awaiting_payment(pg_pool, engine_campaigns, make_campaign, "정하늘")
    await expired_after_release(pg_pool, engine_campaigns, payment_id)
    staff = await clients(live_server, world.staff)

    listed = await staff.http.get("/api/v1/pledge-payments", params={"status": "expired", "q": member.email})
    assert [p["payment_id"] for p in listed.json()["payments"]] == [payment_id]
    confirmed = await staff.http.post(f"/api/v1/pledge-payments/{payment_id}/confirm-deposit",
                                      headers={"X-CSRF-Token": staff.csrf_token})

    assert confirmed.status_code == 200, confirmed.text
    result = confirmed.json()
    assert (result["late"], result["outcome"], result["payment"]["status"]) == (True, "refunded", "refunded")
    assert result["message"]["en"].startswith("The deposit arrived after its hold expired")
    assert await payment_ledger(pg_pool, payment_id) == [("payment", DEPOSIT_WON), ("refund", DEPOSIT_WON)]
    assert await confirmation_count(pg_pool, payment_id) == {"audit": 1, "mails": 1, "refunds": 1}
    await check_pledge_payments_money(pg_pool, [campaign_id])
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[campaign_id])


async def test_openapi_lists_pledge_payments(live_server: LiveServer, clients) -> None:
    """The OpenAPI document lists both routes, the confirmation with CSRF and Idempotency-Key, and the new codes."""
    visitor = await clients(live_server, None)
    document = (await visitor.http.get("/api/v1/openapi.json")).json()
    listed = document["paths"]["/api/v1/pledge-payments"]["get"]
    assert "awaiting_deposit" in listed["summary"]
    confirm = document["paths"]["/api/v1/pledge-payments/{payment_id}/confirm-deposit"]["post"]
    parameters = [parameter["$ref"] for parameter in confirm["parameters"]]
    assert parameters == ["#/components/parameters/CsrfToken", "#/components/parameters/IdempotencyKey"]
    codes = document["components"]["schemas"]["Error"]["description"]
    assert "payment_not_found" in codes
    assert "payment_not_awaiting_deposit" in codes

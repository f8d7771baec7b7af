"""Staff confirm an order's bank transfer on the staff page and through the JSON API, against a real server.

The order is the partly prepaid group-buy order: 4 units paid up front (36,000원),
the pledge raised to 10, and the campaign closed at 8,000원, so the 80,000원 order
awaits the 44,000원 remainder.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from engine.actors import MEMBER, STAFF, Actor
from engine.config import Settings
from engine.groupbuy.closing import close_due_campaigns
from engine.groupbuy.live import CampaignLive
from engine.groupbuy.payments import confirm_pledge_deposit, record_up_front_payment
from engine.groupbuy.service import submit_pledge
from tests.invariants import check_campaign_invariants, check_orders_money
from tests.web.live.campaign_fixtures import (  # noqa: F401  (fixtures)
    CampaignFactory, engine_campaigns, ledger_consumer, make_campaign,
)
from tests.web.live.conftest import Account, LiveServer, SignedIn, World

pytestmark = pytest.mark.slow


async def pledge(db: asyncpg.Pool, live: CampaignLive, campaign_id: int, member: Account, units: int) -> None:
    actor = Actor(member.user_id, MEMBER, member.display_name)
    outcome = await submit_pledge(db, live, actor, campaign_id, units, secrets.token_hex(8))
    assert outcome.accepted, outcome.code


async def partly_prepaid_order(
    db: asyncpg.Pool, live: CampaignLive, settings: Settings, make: CampaignFactory, world: World, member: Account
) -> asyncpg.Record:
    """Close a campaign in which `member` paid 36,000원 for 4 units and then raised the pledge to 10."""
    campaign_id = await make(payment_timing="up_front", per_member_limit=10,
                             deadline_at=datetime.now(timezone.utc) + timedelta(seconds=2))
    await pledge(db, live, campaign_id, member, 4)
    payment_id = await record_up_front_payment(db, campaign_id, member.user_id, 4, 36_000)
    await confirm_pledge_deposit(db, payment_id, Actor(world.staff.user_id, STAFF, world.staff.display_name))
    await pledge(db, live, campaign_id, member, 10)
    status = None
    for _ in range(100):
        await close_due_campaigns(db, live, settings)
        status = await db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id)
        if status == "succeeded":
            break
        await asyncio.sleep(0.1)
    assert status == "succeeded"
    order = await db.fetchrow("SELECT * FROM orders WHERE campaign_id = $1", campaign_id)
    assert (order["status"], order["amount_won"], order["prepaid_won"]) == ("awaiting_payment", 80_000, 36_000)
    return order


def amount_shown(page: str, name: str) -> str:
    """Return the text of the balance value marked `data-amount="name"`, without tags."""
    match = re.search(rf'data-amount="{name}">(.*?)</dd>', page, re.S)
    assert match is not None, f"no {name} amount on the page"
    return re.sub(r"<[^>]+>", "", match.group(1)).strip()


async def post_deposit(staff: SignedIn, order_id: int, amount: str):  # type: ignore[no-untyped-def]
    return await staff.http.post(
        f"/staff/orders/{order_id}/deposit", data={"deposit_won": amount, "csrf_token": staff.csrf_token}
    )


async def test_staff_page_confirms_remainder(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                            engine_campaigns: CampaignLive, pg_pool, settings, ledger_consumer,
                                            clients) -> None:
    """The page shows the 44,000원 due, and a full 80,000원 transfer is confirmed with 36,000원 refunded."""
    order = await partly_prepaid_order(pg_pool, engine_campaigns, settings, make_campaign, world, world.members[0])
    staff = await clients(live_server, world.staff)

    found = await staff.http.get("/staff/orders", params={"order_no": order["order_no"]})
    assert found.status_code == 303
    assert found.headers["location"] == f"/staff/orders/{order['id']}/deposit"
    page = (await staff.http.get(found.headers["location"])).text
    assert amount_shown(page, "amount") == "80,000원"
    assert amount_shown(page, "prepaid") == "36,000원"
    assert amount_shown(page, "due").startswith("44,000원")
    assert 'name="deposit_won"' in page
    assert 'value="44000"' in page

    response = await post_deposit(staff, order["id"], "80000")

    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/staff/orders/{order['id']}/deposit?confirmed=1"
    page = (await staff.http.get(response.headers["location"])).text
    assert 'data-result="confirmed"' in page
    assert 'data-status="paid"' in page
    assert amount_shown(page, "deposit") == "80,000원"
    assert amount_shown(page, "refund") == "36,000원"
    assert 'name="deposit_won"' not in page
    paid = await pg_pool.fetchrow("SELECT status, prepaid_won, deposit_won FROM orders WHERE id = $1", order["id"])
    assert tuple(paid.values()) == ("paid", 36_000, 80_000)
    assert await pg_pool.fetchval(
        "SELECT amount_won FROM refunds WHERE order_id = $1 AND reason = 'deposit_excess'", order["id"]
    ) == 36_000
    assert await pg_pool.fetchval(
        "SELECT status FROM pledge_payments WHERE campaign_id = $1", order["campaign_id"]
    ) == "settled"
    again = await post_deposit(staff, order["id"], "44000")
    assert again.status_code == 409
    assert "입금 대기 중인 주문이 아닙니다." in again.text
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[order["campaign_id"]])
    await check_orders_money(pg_pool, [order["id"]])


async def test_staff_page_rejects_bad_amounts(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                             engine_campaigns: CampaignLive, pg_pool, settings, ledger_consumer,
                                             clients) -> None:
    """A short or malformed amount, a member and an unknown order number change nothing."""
    order = await partly_prepaid_order(pg_pool, engine_campaigns, settings, make_campaign, world, world.members[1])
    staff = await clients(live_server, world.staff)
    member = await clients(live_server, world.members[1])

    short = await post_deposit(staff, order["id"], "40000")
    assert short.status_code == 409
    assert "입금액 40,000원이 이 주문에 남은 결제 금액 44,000원보다 적습니다" in short.text
    assert 'value="40000"' in short.text
    assert 'aria-invalid="true"' in short.text
    for malformed in ("4만", "44,000", "-44000", "44000.0", "４４０００", ""):
        response = await post_deposit(staff, order["id"], malformed)
        assert response.status_code == 400, malformed
        assert 'aria-invalid="true"' in response.text, malformed
    assert (await member.http.get(f"/staff/orders/{order['id']}/deposit")).status_code == 403
    assert (await post_deposit(member, order["id"], "44000")).status_code == 403
    assert (await staff.http.get("/staff/orders/999999999999/deposit")).status_code == 404
    missing = await staff.http.get("/staff/orders", params={"order_no": "G-none"})
    assert missing.status_code == 404
    english = (await staff.http.get(f"/staff/orders/{order['id']}/deposit?lang=en")).text
    assert "Amount due by bank transfer" in english

    after = await pg_pool.fetchrow("SELECT status, deposit_won FROM orders WHERE id = $1", order["id"])
    assert tuple(after.values()) == ("awaiting_payment", None)
    assert await pg_pool.fetchval(
        "SELECT status FROM pledge_payments WHERE campaign_id = $1", order["campaign_id"]
    ) == "paid"
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[order["campaign_id"]])
    await check_orders_money(pg_pool, [order["id"]])


async def test_api_confirms_remainder_once(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                          engine_campaigns: CampaignLive, pg_pool, settings, ledger_consumer,
                                          clients) -> None:
    """The API reads the balance, rejects bad and short amounts, and confirms the remainder once."""
    order = await partly_prepaid_order(pg_pool, engine_campaigns, settings, make_campaign, world, world.members[2])
    staff = await clients(live_server, world.staff)
    path = f"/api/v1/orders/{order['id']}"
    headers = {"X-CSRF-Token": staff.csrf_token}

    balance = (await staff.http.get(f"{path}/balance")).json()
    assert (balance["amount_won"], balance["prepaid_won"], balance["due_won"]) == (80_000, 36_000, 44_000)
    assert (balance["status"], balance["deposit_won"]) == ("awaiting_payment", None)
    for bad in (1.5, True, "44,000", -1, 0):
        response = await staff.http.post(f"{path}/confirm-deposit", json={"deposit_won": bad}, headers=headers)
        assert response.status_code == 400, bad
        assert response.json()["error"]["code"] == "invalid_amount", bad
    short = await staff.http.post(f"{path}/confirm-deposit", json={"deposit_won": 43_999}, headers=headers)
    assert short.status_code == 409
    assert short.json()["error"]["code"] == "deposit_short"
    assert short.json()["error"]["detail"] == {"order_id": order["id"], "deposit_won": 43_999, "due_won": 44_000}

    confirmed = await staff.http.post(f"{path}/confirm-deposit", json={"deposit_won": "44000"}, headers=headers)

    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json() == {
        "status": "paid", "order_id": order["id"], "order_no": order["order_no"], "amount_won": 80_000,
        "prepaid_won": 36_000, "due_won": 44_000, "deposit_won": 44_000, "refund_won": 0,
    }
    again = await staff.http.post(f"{path}/confirm-deposit", headers=headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "order_not_awaiting_payment"
    balance = (await staff.http.get(f"{path}/balance")).json()
    assert (balance["status"], balance["prepaid_won"], balance["deposit_won"]) == ("paid", 36_000, 44_000)
    assert await pg_pool.fetchval("SELECT count(*) FROM refunds WHERE order_id = $1", order["id"]) == 0
    await check_campaign_invariants(pg_pool, engine_campaigns, campaign_ids=[order["campaign_id"]])
    await check_orders_money(pg_pool, [order["id"]])

"""The group-buy JSON API and the pledge form against a real server, Redis and PostgreSQL."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import pytest

from engine.groupbuy.live import CampaignLive
from web.i18n import KST
from tests.web.live.campaign_fixtures import CampaignFactory, engine_campaigns, make_campaign  # noqa: F401
from tests.web.live.conftest import LiveServer, SignedIn, World, insert_user

pytestmark = pytest.mark.slow

BAD_UNITS = ["1,000", "-1", "1.5", 1.5, True, False, "１", "1e3", " 3", "", None, [3], "+3", "0x10", "9999999"]


async def pledge(member: SignedIn, campaign_id: int, units: object, client_id: str = "") -> dict:
    response = await member.http.post(
        f"/api/v1/campaigns/{campaign_id}/pledges",
        json={"units": units, "client_id": client_id or secrets.token_hex(8)},
        headers={"X-CSRF-Token": member.csrf_token},
    )
    return {"status": response.status_code, **response.json()}


async def campaign_state(live: CampaignLive, campaign_id: int) -> tuple[int, int, dict[int, int]]:
    """The campaign's seq and committed units in Redis, and every member's units."""
    snapshot = await live.snapshot(campaign_id)
    assert snapshot is not None
    return snapshot.seq, snapshot.committed_units, await live.pledges(campaign_id)


@pytest.mark.parametrize("units", BAD_UNITS, ids=repr)
async def test_bad_units_rejected(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                  engine_campaigns: CampaignLive, clients, units) -> None:
    """Units that are not plain ASCII digits within bounds are 400 invalid_units and change nothing."""
    campaign_id = await make_campaign()
    member = await clients(live_server, world.members[0])
    before = await campaign_state(engine_campaigns, campaign_id)
    answer = await pledge(member, campaign_id, units)
    assert answer["status"] == 400, answer
    assert answer["error"]["code"] == "invalid_units"
    assert answer["error"]["message"]["ko"].startswith("수량은 숫자만")
    assert await campaign_state(engine_campaigns, campaign_id) == before


async def test_over_stock_rejected_whole(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                         engine_campaigns: CampaignLive, clients) -> None:
    """A pledge of 3 when 2 remain is rejected whole, saying 2 are left, and changes nothing."""
    campaign_id = await make_campaign(stock_cap_units=8, per_member_limit=6, tiers=[(5, 9_000)])
    first = await clients(live_server, world.members[0])
    assert (await pledge(first, campaign_id, "6"))["status"] == 201
    second = await clients(live_server, world.members[1])
    before = await campaign_state(engine_campaigns, campaign_id)
    answer = await pledge(second, campaign_id, "3")
    assert answer["status"] == 409, answer
    error = answer["error"]
    assert error["code"] == "over_stock"
    assert error["detail"]["units_left"] == 2
    assert error["detail"]["units_allowed"] == 2
    assert error["message"]["ko"].startswith("남은 수량은 2개입니다")
    assert "Only 2 units are left" in error["message"]["en"]
    assert await campaign_state(engine_campaigns, campaign_id) == before
    assert (await pledge(second, campaign_id, "2"))["status"] == 201


async def test_over_member_limit_rejected(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                          engine_campaigns: CampaignLive, clients) -> None:
    """A total above the per-member limit is rejected with the limit named, and changes nothing."""
    campaign_id = await make_campaign(per_member_limit=4)
    member = await clients(live_server, world.members[0])
    before = await campaign_state(engine_campaigns, campaign_id)
    answer = await pledge(member, campaign_id, 5)
    assert answer["status"] == 409
    assert answer["error"]["code"] == "over_member_limit"
    assert answer["error"]["detail"]["per_member_limit"] == 4
    assert "1인당 최대 4개" in answer["error"]["message"]["ko"]
    assert await campaign_state(engine_campaigns, campaign_id) == before


async def test_change_and_cancel(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                 engine_campaigns: CampaignLive, clients) -> None:
    """A new total replaces the pledge, DELETE cancels it, and /pledges/mine follows both."""
    campaign_id = await make_campaign()
    member = await clients(live_server, world.members[0])
    first = await pledge(member, campaign_id, "3")
    assert first["receipt"]["units"] == 3
    changed = await pledge(member, campaign_id, "5")
    assert changed["receipt"]["delta_units"] == 2
    assert changed["live"]["unit_price_won"] == 9_000
    assert changed["pay_at_most_won"] == 45_000
    mine = (await member.http.get(f"/api/v1/campaigns/{campaign_id}/pledges/mine")).json()
    assert mine["units"] == 5
    assert mine["per_member_limit"] == 6
    assert mine["pay_at_most_won"] == 45_000

    response = await member.http.delete(
        f"/api/v1/campaigns/{campaign_id}/pledges/mine", headers={"X-CSRF-Token": member.csrf_token}
    )
    assert response.status_code == 200, response.text
    assert response.json()["receipt"]["units"] == 0
    assert response.json()["live"]["committed_units"] == 0
    assert (await member.http.get(f"/api/v1/campaigns/{campaign_id}/pledges/mine")).json()["units"] == 0
    again = await member.http.delete(
        f"/api/v1/campaigns/{campaign_id}/pledges/mine", headers={"X-CSRF-Token": member.csrf_token}
    )
    assert again.json()["error"]["code"] == "no_pledge"
    assert (await campaign_state(engine_campaigns, campaign_id))[2] == {}


async def test_retry_same_client_id(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                    engine_campaigns: CampaignLive, clients) -> None:
    """A retried pledge with the same client id gets the first receipt and is applied once."""
    campaign_id = await make_campaign()
    member = await clients(live_server, world.members[0])
    first = await pledge(member, campaign_id, "2", "attempt-1")
    again = await pledge(member, campaign_id, "2", "attempt-1")
    assert first["status"] == again["status"] == 201
    assert again["receipt"]["seq"] == first["receipt"]["seq"]
    assert again["receipt"]["retry"] is True
    assert (await campaign_state(engine_campaigns, campaign_id))[:2] == (1, 2)


async def test_missing_csrf_403(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                engine_campaigns: CampaignLive, clients) -> None:
    """A pledge, a cancellation or a creation without the CSRF token is 403 and changes nothing."""
    campaign_id = await make_campaign()
    member = await clients(live_server, world.members[0])
    before = await campaign_state(engine_campaigns, campaign_id)
    response = await member.http.post(f"/api/v1/campaigns/{campaign_id}/pledges",
                                      json={"units": "2", "client_id": "no-csrf"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"
    response = await member.http.delete(f"/api/v1/campaigns/{campaign_id}/pledges/mine")
    assert response.status_code == 403
    form = await member.http.post(f"/campaigns/{campaign_id}/pledges", data={"units": "2", "client_id": "no-csrf"})
    assert form.status_code == 403
    assert await campaign_state(engine_campaigns, campaign_id) == before


async def test_signed_out_pledge_401(live_server: LiveServer, make_campaign: CampaignFactory, clients) -> None:
    """A pledge without a session is 401 not_authenticated."""
    campaign_id = await make_campaign()
    anonymous = await clients(live_server, None)
    answer = await pledge(anonymous, campaign_id, "1")
    assert answer["status"] == 401
    assert answer["error"]["code"] == "not_authenticated"


async def test_staff_and_own_goods_cannot_pledge(live_server: LiveServer, world: World,
                                                 make_campaign: CampaignFactory, clients) -> None:
    """Staff get not_allowed_to_pledge and the supplier of the goods gets own_goods."""
    campaign_id = await make_campaign()
    staff = await clients(live_server, world.staff)
    assert (await pledge(staff, campaign_id, "1"))["error"]["code"] == "not_allowed_to_pledge"
    supplier = await clients(live_server, world.supplier)
    answer = await pledge(supplier, campaign_id, "1")
    assert answer["status"] == 403
    assert answer["error"]["code"] == "own_goods"


async def test_unknown_campaign_404(live_server: LiveServer, world: World, clients) -> None:
    """Reads and pledges of a campaign that does not exist are 404 campaign_not_found."""
    member = await clients(live_server, world.members[0])
    assert (await member.http.get("/api/v1/campaigns/999999999")).json()["error"]["code"] == "campaign_not_found"
    assert (await member.http.get("/api/v1/campaigns/abc")).status_code == 404
    assert (await pledge(member, 999_999_999, "1"))["error"]["code"] == "campaign_not_found"


async def test_reads_hide_pledgers(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                   clients) -> None:
    """The list and the campaign read show terms and live counts but no user ids."""
    campaign_id = await make_campaign()
    member = await clients(live_server, world.members[0])
    await pledge(member, campaign_id, "5")
    listing = (await member.http.get("/api/v1/campaigns")).json()["campaigns"]
    assert campaign_id in [campaign["id"] for campaign in listing]
    one = (await member.http.get(f"/api/v1/campaigns/{campaign_id}")).json()
    assert one["tiers"] == [[5, 9_000], [10, 8_000]]
    assert one["product"]["origin_label"] == "국내산(광주광역시 광산구)"
    assert one["live"]["committed_units"] == 5
    assert one["live"]["participants"] == 1
    assert one["live"]["minimum_met"] is True
    assert one["live"]["next_tier_units"] == 10
    assert "user_id" not in str(one)


def campaign_body(world: World, **overrides: object) -> dict[str, object]:
    now = datetime.now(timezone.utc)
    body: dict[str, object] = {
        "product_id": world.product_id, "title": "햇김 공동구매", "list_price_won": 10_000,
        "tiers": [[10, 9_000], [50, 8_000]], "min_total_units": 10, "stock_cap_units": 100,
        "per_member_limit": 5, "start_at": now.isoformat(), "deadline_at": (now + timedelta(days=3)).isoformat(),
        "close_when_sold_out": True, "fulfilment": "pickup", "fulfilment_terms": "광산구청 1층에서 수령",
        "payment_timing": "up_front", "hold_s": 7_200, "min_buyers": 3,
    }
    body.update(overrides)
    return body


async def test_staff_creates_campaign(live_server: LiveServer, world: World, clients) -> None:
    """Staff create a campaign with every setting; it is live at once and reads back the same."""
    staff = await clients(live_server, world.staff)
    response = await staff.http.post("/api/v1/campaigns", json=campaign_body(world),
                                      headers={"X-CSRF-Token": staff.csrf_token})
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["close_when_sold_out"] is True
    assert created["fulfilment"] == "pickup"
    assert created["payment_timing"] == "up_front"
    assert created["hold_s"] == 7_200
    assert created["min_buyers"] == 3
    assert created["live"]["status"] == "open"
    assert created["live"]["at_most_price_won"] == 9_000


async def test_member_cannot_create(live_server: LiveServer, world: World, clients) -> None:
    """A member creating a campaign gets 403 forbidden, by the API and by the staff form."""
    member = await clients(live_server, world.members[0])
    response = await member.http.post("/api/v1/campaigns", json=campaign_body(world),
                                      headers={"X-CSRF-Token": member.csrf_token})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"
    page = await member.http.get("/staff/campaigns")
    assert page.status_code == 403
    form = await member.http.post("/staff/campaigns", data={"title": "x", "csrf_token": member.csrf_token})
    assert form.status_code == 403


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"tiers": [[50, 8_000], [10, 9_000]]}, "tiers_not_ascending"),
        ({"tiers": [[10, 11_000]]}, "tier_price_above_list"),
        ({"tiers": "10:9,000"}, "invalid_tiers"),
        ({"min_total_units": 200}, "min_above_cap"),
        ({"per_member_limit": "1.5"}, "invalid_member_limit"),
        ({"list_price_won": "10,000"}, "invalid_amount"),
        ({"start_at": "2019-12-01T00:00", "deadline_at": "2020-01-01T00:00"}, "deadline_in_past"),
        ({"deadline_at": "2000-01-01T00:00"}, "deadline_before_start"),
        ({"fulfilment": "drone"}, "invalid_fulfilment"),
        ({"payment_timing": "later"}, "invalid_payment_timing"),
        ({"hold_s": 10}, "invalid_hold"),
    ],
)
async def test_invalid_campaign_rejected(live_server: LiveServer, world: World, pg_pool, clients,
                                         overrides, code) -> None:
    """Invalid settings are 4xx with the setting's code and a Korean message, and create nothing."""
    staff = await clients(live_server, world.staff)
    before = await pg_pool.fetchval("SELECT count(*) FROM campaigns")
    response = await staff.http.post("/api/v1/campaigns", json=campaign_body(world, **overrides),
                                     headers={"X-CSRF-Token": staff.csrf_token})
    assert response.status_code in (400, 409, 422), response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]["ko"]
    assert await pg_pool.fetchval("SELECT count(*) FROM campaigns") == before


def kst_minutes(offset_min: int) -> str:
    """Return now plus `offset_min` minutes in Korea time, as a datetime-local input sends it."""
    moment = datetime.now(KST) + timedelta(minutes=offset_min)
    return moment.strftime("%Y-%m-%dT%H:%M")


async def test_staff_form_korean_errors(live_server: LiveServer, world: World, pg_pool, clients) -> None:
    """The staff form shows Korean errors next to the fields and creates nothing."""
    staff = await clients(live_server, world.staff)
    before = await pg_pool.fetchval("SELECT count(*) FROM campaigns")
    response = await staff.http.post("/staff/campaigns", data={
        "csrf_token": staff.csrf_token, "product_id": str(world.product_id), "title": "김 공동구매",
        "list_price_won": "10000", "tiers": "10:12000", "min_total_units": "10", "stock_cap_units": "100",
        "per_member_limit": "5", "start_at": kst_minutes(0), "deadline_at": kst_minutes(7 * 24 * 60),
        "fulfilment": "delivery", "payment_timing": "after_success", "payment_due_hours": "48", "hold_hours": "24",
    })
    assert response.status_code == 422
    assert "구간 가격은 정가보다 높을 수 없습니다" in response.text
    assert await pg_pool.fetchval("SELECT count(*) FROM campaigns") == before


async def test_staff_form_creates(live_server: LiveServer, world: World, clients) -> None:
    """The staff form creates a campaign from Korea-time inputs and redirects to its page."""
    staff = await clients(live_server, world.staff)
    form_page = await staff.http.get("/staff/campaigns")
    assert form_page.status_code == 200
    assert "공동구매 만들기" in form_page.text
    assert 'name="tiers"' in form_page.text
    response = await staff.http.post("/staff/campaigns", data={
        "csrf_token": staff.csrf_token, "product_id": str(world.product_id), "title": "김 공동구매 (폼)",
        "list_price_won": "10000", "tiers": "10:9000, 50:8000", "min_total_units": "10", "stock_cap_units": "100",
        "per_member_limit": "5", "start_at": kst_minutes(0), "deadline_at": kst_minutes(7 * 24 * 60),
        "close_when_sold_out": "on", "fulfilment": "pickup", "fulfilment_terms": "구청 1층",
        "payment_timing": "up_front", "payment_due_hours": "48", "hold_hours": "12",
    })
    assert response.status_code == 303, response.text
    page = await staff.http.get(response.headers["location"])
    assert "김 공동구매 (폼)" in page.text
    assert kst_minutes(7 * 24 * 60).replace("T", " ") in page.text
    assert "12시간" in page.text


async def test_page_pledge_fragment(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                    clients) -> None:
    """An htmx pledge gets a result fragment; one that does not fit says the units left in Korean."""
    campaign_id = await make_campaign(stock_cap_units=7, tiers=[(5, 9_000)])
    member = await clients(live_server, world.members[0])
    headers = {"HX-Request": "true", "X-CSRF-Token": member.csrf_token}
    accepted = await member.http.post(f"/campaigns/{campaign_id}/pledges", data={"units": "5", "client_id": "f1"},
                                      headers=headers)
    assert accepted.status_code == 200
    assert "최대 45,000원을 결제하게 됩니다" in accepted.text
    assert f'id="campaign-{campaign_id}-cancel"' in accepted.text
    other = await clients(live_server, world.members[1])
    rejected = await other.http.post(f"/campaigns/{campaign_id}/pledges", data={"units": "3", "client_id": "f2"},
                                     headers={"HX-Request": "true", "X-CSRF-Token": other.csrf_token})
    assert rejected.status_code == 409
    assert "남은 수량은 2개입니다" in rejected.text
    assert 'data-error-code="over_stock"' in rejected.text


async def test_pledge_rate_limited(settings, world: World, make_campaign: CampaignFactory, pg_pool, clients) -> None:
    """Pledges past the per-user rate are 429 rate_limited."""
    from tests.web.live.conftest import start_server

    server = await start_server(settings, bid_rate="3/minute")
    try:
        campaign_id = await make_campaign()
        member_account = await insert_user(pg_pool, "한지민")
        member = await clients(server, member_account)
        codes = [(await pledge(member, campaign_id, str(units), f"rate-{units}"))["status"] for units in (1, 2, 3, 4)]
        assert codes[:3] == [201, 201, 201]
        assert codes[3] == 429
    finally:
        await server.stop()


async def test_openapi_lists_campaigns(live_server: LiveServer, clients) -> None:
    """The OpenAPI document has the campaign and pledge operations, with CSRF on unsafe ones."""
    anonymous = await clients(live_server, None)
    paths = (await anonymous.http.get("/api/v1/openapi.json")).json()["paths"]
    assert set(paths["/api/v1/campaigns"]) == {"get", "post"}
    assert "get" in paths["/api/v1/campaigns/{campaign_id}"]
    assert "post" in paths["/api/v1/campaigns/{campaign_id}/pledges"]
    assert set(paths["/api/v1/campaigns/{campaign_id}/pledges/mine"]) == {"get", "delete"}
    assert paths["/api/v1/campaigns/{campaign_id}/pledges"]["post"]["parameters"]


async def test_up_front_pledge_records_payment(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                               pg_pool, clients) -> None:
    """An up-front pledge records a bank transfer for each increase at the at-most price; a retry returns it again."""
    campaign_id = await make_campaign(payment_timing="up_front", hold_s=3_600)
    member = await clients(live_server, world.members[2])
    first = await pledge(member, campaign_id, "3", "upfront-1")
    assert first["status"] == 201
    assert first["payment_id"] is not None
    retry = await pledge(member, campaign_id, "3", "upfront-1")
    assert retry["payment_id"] == first["payment_id"]
    raised = await pledge(member, campaign_id, "5", "upfront-2")
    lowered = await pledge(member, campaign_id, "4", "upfront-3")
    assert lowered["payment_id"] is None
    rows = await pg_pool.fetch(
        "SELECT id, units, amount_won, status, hold_expires_at IS NOT NULL AS held FROM pledge_payments"
        " WHERE campaign_id = $1 ORDER BY id", campaign_id,
    )
    assert [row["id"] for row in rows] == [first["payment_id"], raised["payment_id"]]
    assert [(row["units"], row["amount_won"]) for row in rows] == [(3, 27_000), (2, 18_000)]
    assert {row["status"] for row in rows} == {"awaiting_deposit"}
    assert all(row["held"] for row in rows)


async def test_after_success_pledge_records_no_payment(live_server: LiveServer, world: World,
                                                       make_campaign: CampaignFactory, pg_pool, clients) -> None:
    """A pledge to an after-success campaign records no payment."""
    campaign_id = await make_campaign()
    member = await clients(live_server, world.members[2])
    answer = await pledge(member, campaign_id, "2")
    assert answer["payment_id"] is None
    assert await pg_pool.fetchval("SELECT count(*) FROM pledge_payments WHERE campaign_id = $1", campaign_id) == 0


async def test_page_in_english(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                               clients) -> None:
    """The campaign page renders in English with the next-tier line and won amounts."""
    campaign_id = await make_campaign()
    member = await clients(live_server, world.members[0])
    page = (await member.http.get(f"/campaigns/{campaign_id}?lang=en")).text
    assert "5 more units bring the price to ₩9,000" in page
    assert "Join this group buy" in page


async def test_up_front_form_asks_for_transfer(live_server: LiveServer, world: World,
                                               make_campaign: CampaignFactory, clients) -> None:
    """The pledge form's answer on an up-front campaign names the amount to transfer."""
    campaign_id = await make_campaign(payment_timing="up_front")
    member = await clients(live_server, world.members[3])
    response = await member.http.post(
        f"/campaigns/{campaign_id}/pledges", data={"units": "3", "client_id": "form-upfront"},
        headers={"HX-Request": "true", "X-CSRF-Token": member.csrf_token},
    )
    assert response.status_code == 200
    assert "계좌이체로 27,000원을 입금해 주세요" in response.text

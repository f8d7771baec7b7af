"""Campaign pages and pushes over two real web servers sharing one Redis and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.web.live.campaign_fixtures import CampaignFactory, engine_campaigns, make_campaign  # noqa: F401
from tests.web.live.conftest import LiveServer, World, receive_until

pytestmark = pytest.mark.slow


def region(message: str, element_id: str) -> str:
    """Return the opening tag and text of the element with `element_id` in a pushed message."""
    match = re.search(rf'<[a-z]+ id="{element_id}"[^>]*>.*?</', message, re.S)
    assert match, f"{element_id} not in {message[:400]}"
    return match.group(0)


async def test_pledge_reaches_other_server(
    live_server: LiveServer, second_server: LiveServer, world: World, make_campaign: CampaignFactory, clients
) -> None:
    """A pledge through one server reaches a watcher on the other: counter, price and tier fragments."""
    campaign_id = await make_campaign()
    pledger = await clients(live_server, world.members[0])
    watcher = await clients(second_server, world.members[1])
    async with await watcher.connect(f"/ws/campaigns/{campaign_id}") as socket:
        snapshot = await receive_until(socket, lambda text: f"campaign-{campaign_id}-units" in text)
        assert 'data-units="0"' in region(snapshot, f"campaign-{campaign_id}-units")
        assert 'data-price-won="10000"' in snapshot

        response = await pledger.http.post(
            f"/api/v1/campaigns/{campaign_id}/pledges", json={"units": "5", "client_id": "first-pledge"},
            headers={"X-CSRF-Token": pledger.csrf_token},
        )
        assert response.status_code == 201, response.text
        assert response.json()["pay_at_most_won"] == 5 * 9_000

        pushed = await receive_until(socket, lambda text: 'data-units="5"' in text)
        assert "5개" in region(pushed, f"campaign-{campaign_id}-units")
        assert 'data-price-won="9000"' in region(pushed, f"campaign-{campaign_id}-price")
        assert "9,000원" in pushed
        assert 'data-reached-tier="0"' in pushed
        assert "5개 더 모이면 8,000원" in pushed
        assert "1명" in region(pushed, f"campaign-{campaign_id}-participants")
        # The tier changed, so the polite live region gets a sentence.
        assert f'id="campaign-{campaign_id}-announce"' in pushed
        # The member concerned is another user: no private region, and no user id anywhere.
        assert f"campaign-{campaign_id}-mine" not in pushed
        assert "user_id" not in pushed


async def test_unit_change_without_tier_change_not_announced(
    live_server: LiveServer, world: World, make_campaign: CampaignFactory, clients
) -> None:
    """A pledge that changes counters but not the tier updates regions without an announcement."""
    campaign_id = await make_campaign()
    pledger = await clients(live_server, world.members[0])
    async with await (await clients(live_server, world.members[1])).connect(f"/ws/campaigns/{campaign_id}") as socket:
        await receive_until(socket, lambda text: f"campaign-{campaign_id}-units" in text)
        response = await pledger.http.post(
            f"/api/v1/campaigns/{campaign_id}/pledges", json={"units": 2, "client_id": "two-units"},
            headers={"X-CSRF-Token": pledger.csrf_token},
        )
        assert response.status_code == 201, response.text
        pushed = await receive_until(socket, lambda text: 'data-units="2"' in text)
        assert f"campaign-{campaign_id}-announce" not in pushed
        assert "3개 더 모이면 9,000원" in pushed


async def test_own_pledge_pushed_to_member(
    live_server: LiveServer, second_server: LiveServer, world: World, make_campaign: CampaignFactory, clients
) -> None:
    """The member's own pledge region is pushed to that member's sockets only, with the at-most amount."""
    campaign_id = await make_campaign()
    member_a = await clients(live_server, world.members[0])
    member_b = await clients(second_server, world.members[1])
    async with await member_a.connect(f"/ws/campaigns/{campaign_id}") as socket_a, \
            await member_b.connect(f"/ws/campaigns/{campaign_id}") as socket_b:
        first_a = await receive_until(socket_a, lambda text: f"campaign-{campaign_id}-mine" in text)
        assert 'data-mine-units="0"' in first_a
        await receive_until(socket_b, lambda text: f"campaign-{campaign_id}-mine" in text)

        response = await member_a.http.post(
            f"/api/v1/campaigns/{campaign_id}/pledges", json={"units": "3", "client_id": "mine-3"},
            headers={"X-CSRF-Token": member_a.csrf_token},
        )
        assert response.status_code == 201, response.text
        mine = await receive_until(socket_a, lambda text: 'data-mine-units="3"' in text)
        # The at-most price is the price at the minimum total (5 units → 9,000원).
        assert "최대 27,000원을 결제하게 됩니다" in mine
        other = await receive_until(socket_b, lambda text: 'data-units="3"' in text)
        assert f"campaign-{campaign_id}-mine" not in other


async def test_script_title_escaped_in_page_and_push(
    live_server: LiveServer, world: World, make_campaign: CampaignFactory, clients
) -> None:
    """A product title with markup is escaped on the list, the campaign page and in pushes."""
    title = '<script>alert("x")</script>김'
    campaign_id = await make_campaign(title=title, fulfilment_terms="<img src=x onerror=alert(1)>")
    member = await clients(live_server, world.members[0])
    for path in ("/campaigns", f"/campaigns/{campaign_id}"):
        page = (await member.http.get(path)).text
        assert "<script>alert" not in page, path
        assert "&lt;script&gt;alert(" in page, path
        assert "<img src=x" not in page, path
    async with await member.connect(f"/ws/campaigns/{campaign_id}") as socket:
        await receive_until(socket, lambda text: f"campaign-{campaign_id}-units" in text)
        response = await member.http.post(
            f"/api/v1/campaigns/{campaign_id}/pledges", json={"units": "1", "client_id": "escape-1"},
            headers={"X-CSRF-Token": member.csrf_token},
        )
        assert response.status_code == 201
        pushed = await receive_until(socket, lambda text: 'data-units="1"' in text)
        assert "<script>" not in pushed


async def test_ws_foreign_origin_rejected(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                          clients) -> None:
    """A campaign websocket from another origin is refused at the handshake."""
    campaign_id = await make_campaign()
    member = await clients(live_server, world.members[0])
    with pytest.raises(InvalidStatus) as refused:
        await member.connect(f"/ws/campaigns/{campaign_id}", origin="http://evil.example")
    assert refused.value.response.status_code == 403


async def test_page_shows_live_regions(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                       clients) -> None:
    """The campaign page renders every live region, the tiers, the at-most line and the payment note."""
    campaign_id = await make_campaign(payment_timing="up_front", hold_s=86_400)
    member = await clients(live_server, world.members[0])
    page = (await member.http.get(f"/campaigns/{campaign_id}")).text
    for suffix in ("units", "participants", "price", "next-tier", "progress", "stock", "end", "status", "tiers",
                   "announce", "mine", "pledge-fieldset", "pay-at-most"):
        assert f'id="campaign-{campaign_id}-{suffix}"' in page, suffix
    assert "5개 더 모이면 9,000원" in page
    assert "개당 최대 9,000원" in page
    assert "24시간" in page
    listing = (await member.http.get("/campaigns")).text
    assert f'href="/campaigns/{campaign_id}"' in listing
    assert "공동구매" in listing


async def test_cancel_pushes_status_and_closes_form(
    live_server: LiveServer, world: World, make_campaign: CampaignFactory, engine_campaigns, clients
) -> None:
    """A staff cancel pushes the new status with an announcement, and the page then shows no pledge form."""
    campaign_id = await make_campaign()
    member = await clients(live_server, world.members[0])
    async with await member.connect(f"/ws/campaigns/{campaign_id}") as socket:
        await receive_until(socket, lambda text: f"campaign-{campaign_id}-units" in text)
        reply = await engine_campaigns.admin(campaign_id, "cancel", "", world.staff.user_id)
        assert reply.get("ok") is not False, reply
        pushed = await receive_until(socket, lambda text: 'data-status="cancelled"' in text)
        assert "취소됨" in region(pushed, f"campaign-{campaign_id}-status")
        assert f'id="campaign-{campaign_id}-announce"' in pushed
        assert "약속 받기가 끝났습니다" in pushed
    page = (await member.http.get(f"/campaigns/{campaign_id}")).text
    assert f'id="campaign-{campaign_id}-pledge-form"' not in page
    assert "약속 받기가 끝났습니다" in page
    pledge = await member.http.post(
        f"/api/v1/campaigns/{campaign_id}/pledges", json={"units": "1", "client_id": "after-cancel"},
        headers={"X-CSRF-Token": member.csrf_token},
    )
    assert pledge.status_code == 409
    assert pledge.json()["error"]["code"] == "campaign_cancelled"


async def test_oversized_ws_frame_closes(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                         clients) -> None:
    """A frame over max_ws_frame_bytes on a campaign socket closes it with 1009."""
    campaign_id = await make_campaign()
    member = await clients(live_server, world.members[0])
    async with await member.connect(f"/ws/campaigns/{campaign_id}") as socket:
        await socket.recv()
        await socket.send("x" * (live_server.app.state.settings.max_ws_frame_bytes + 1))
        with pytest.raises(ConnectionClosed):
            while True:
                await socket.recv()
        assert socket.close_code == 1009


async def test_signed_out_watcher_gets_public_regions(live_server: LiveServer, world: World,
                                                      make_campaign: CampaignFactory, clients) -> None:
    """A signed-out watcher gets the public regions and pushes but no member region."""
    campaign_id = await make_campaign()
    anonymous = await clients(live_server, None)
    pledger = await clients(live_server, world.members[0])
    async with await anonymous.connect(f"/ws/campaigns/{campaign_id}") as socket:
        snapshot = await receive_until(socket, lambda text: f"campaign-{campaign_id}-units" in text)
        assert f"campaign-{campaign_id}-mine" not in snapshot
        response = await pledger.http.post(
            f"/api/v1/campaigns/{campaign_id}/pledges", json={"units": "1", "client_id": "public-1"},
            headers={"X-CSRF-Token": pledger.csrf_token},
        )
        assert response.status_code == 201
        pushed = await receive_until(socket, lambda text: 'data-units="1"' in text)
        assert f"campaign-{campaign_id}-mine" not in pushed


async def test_unknown_campaign_socket_closed(live_server: LiveServer, world: World, clients) -> None:
    """A socket for a campaign that does not exist is closed with 1008."""
    member = await clients(live_server, world.members[0])
    async with await member.connect("/ws/campaigns/999999999") as socket:
        with pytest.raises(ConnectionClosed):
            while True:
                await socket.recv()
        assert socket.close_code == 1008

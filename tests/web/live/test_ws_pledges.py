"""Pledging over `/ws/pledges` against a real server, Redis and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from engine.groupbuy.live import CampaignLive
from tests.web.live.campaign_fixtures import CampaignFactory, engine_campaigns, make_campaign  # noqa: F401
from tests.web.live.conftest import LiveServer, SignedIn, World, insert_user, start_server
from web.sessions import revoke_user_sessions

pytestmark = pytest.mark.slow


async def open_pledge_socket(member: SignedIn, csrf_token: str | None = None) -> ClientConnection:
    """Connect, send the hello and check that the socket replies ready."""
    connection = await member.connect("/ws/pledges")
    await connection.send(json.dumps({"type": "hello", "csrf_token": csrf_token or member.csrf_token}))
    assert json.loads(await connection.recv()) == {"type": "ready"}
    return connection


async def send_json(connection: ClientConnection, message: dict[str, Any]) -> dict[str, Any]:
    """Send one message and return the decoded reply."""
    await connection.send(json.dumps(message))
    return json.loads(await connection.recv())


async def pledge(connection: ClientConnection, campaign_id: object, units: object, client_id: object) -> dict[str, Any]:
    return await send_json(
        connection, {"type": "pledge", "campaign_id": campaign_id, "units": units, "client_id": client_id}
    )


async def campaign_state(live: CampaignLive, campaign_id: int) -> tuple[int, int, dict[int, int]]:
    """The campaign's seq and committed units in Redis, and every member's units."""
    snapshot = await live.snapshot(campaign_id)
    assert snapshot is not None
    return snapshot.seq, snapshot.committed_units, await live.pledges(campaign_id)


async def expect_close(connection: ClientConnection, code: int) -> None:
    """Read until the server closes the socket, then check the close code it sent."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await connection.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == code


async def test_pledge_acked_with_receipt(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                         engine_campaigns: CampaignLive, clients) -> None:
    """A pledge is acked with the HTTP route's receipt, and each accepted pledge gets the next sequence number."""
    campaign_id = await make_campaign()
    first = await open_pledge_socket(await clients(live_server, world.members[0]))
    second = await open_pledge_socket(await clients(live_server, world.members[1]))

    ack = await pledge(first, campaign_id, 3, "ws-p1")
    other = await pledge(second, campaign_id, "2", "ws-p2")

    assert ack["type"] == "ack"
    assert ack["client_id"] == "ws-p1"
    assert ack["accepted"] is True
    receipt = ack["receipt"]
    assert receipt["seq"] == 1
    assert receipt["units"] == 3
    assert receipt["previous_units"] == 0
    assert receipt["delta_units"] == 3
    assert receipt["committed_units"] == 3
    assert receipt["retry"] is False
    assert ack["pay_at_most_won"] == 27_000
    assert ack["payment_id"] is None
    assert ack["live"]["committed_units"] == 3
    assert ack["live"]["status"] == "open"
    assert other["accepted"] is True
    assert other["receipt"]["seq"] == 2
    assert other["receipt"]["committed_units"] == 5
    assert other["live"]["unit_price_won"] == 9_000
    assert await campaign_state(engine_campaigns, campaign_id) == (
        2, 5, {world.members[0].user_id: 3, world.members[1].user_id: 2},
    )
    await first.close()
    await second.close()


async def test_retry_gets_first_answer(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                       engine_campaigns: CampaignLive, clients) -> None:
    """A pledge sent again with the same client id gets the first receipt and is applied once."""
    campaign_id = await make_campaign()
    connection = await open_pledge_socket(await clients(live_server, world.members[0]))

    first = await pledge(connection, campaign_id, 2, "again-1")
    again = await pledge(connection, campaign_id, 2, "again-1")

    assert first["accepted"] is True
    assert again["accepted"] is True
    assert again["receipt"]["seq"] == first["receipt"]["seq"]
    assert again["receipt"]["units"] == 2
    assert again["receipt"]["retry"] is True
    assert await campaign_state(engine_campaigns, campaign_id) == (1, 2, {world.members[0].user_id: 2})
    await connection.close()


async def test_reused_client_id_rejected(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                         engine_campaigns: CampaignLive, clients) -> None:
    """The same client id with other units is acked client_id_reused and changes nothing."""
    campaign_id = await make_campaign()
    connection = await open_pledge_socket(await clients(live_server, world.members[1]))
    assert (await pledge(connection, campaign_id, 2, "reuse-1"))["accepted"] is True
    before = await campaign_state(engine_campaigns, campaign_id)

    ack = await pledge(connection, campaign_id, 4, "reuse-1")

    assert ack["accepted"] is False
    assert ack["client_id"] == "reuse-1"
    assert ack["error"]["code"] == "client_id_reused"
    assert await campaign_state(engine_campaigns, campaign_id) == before
    await connection.close()


async def test_over_stock_rejected_with_units_left(live_server: LiveServer, world: World,
                                                   make_campaign: CampaignFactory, engine_campaigns: CampaignLive,
                                                   clients) -> None:
    """A pledge of 3 when 2 remain is rejected whole with the HTTP route's body, naming the 2 units left."""
    campaign_id = await make_campaign(stock_cap_units=8, per_member_limit=6, tiers=[(5, 9_000)])
    first = await open_pledge_socket(await clients(live_server, world.members[0]))
    second = await open_pledge_socket(await clients(live_server, world.members[1]))
    assert (await pledge(first, campaign_id, 6, "stock-1"))["accepted"] is True
    before = await campaign_state(engine_campaigns, campaign_id)

    ack = await pledge(second, campaign_id, 3, "stock-2")

    assert ack["accepted"] is False
    error = ack["error"]
    assert error["code"] == "over_stock"
    assert error["detail"]["units_left"] == 2
    assert error["detail"]["units_allowed"] == 2
    assert error["message"]["ko"].startswith("남은 수량은 2개입니다")
    assert "Only 2 units are left" in error["message"]["en"]
    assert await campaign_state(engine_campaigns, campaign_id) == before
    assert (await pledge(second, campaign_id, 2, "stock-3"))["accepted"] is True
    await first.close()
    await second.close()


async def test_over_member_limit_rejected(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                          engine_campaigns: CampaignLive, clients) -> None:
    """A total above the per-member limit is acked over_member_limit with the limit named, and changes nothing."""
    campaign_id = await make_campaign(per_member_limit=4)
    connection = await open_pledge_socket(await clients(live_server, world.members[2]))
    before = await campaign_state(engine_campaigns, campaign_id)

    ack = await pledge(connection, campaign_id, 5, "limit-1")

    assert ack["accepted"] is False
    assert ack["error"]["code"] == "over_member_limit"
    assert ack["error"]["detail"]["per_member_limit"] == 4
    assert "1인당 최대 4개" in ack["error"]["message"]["ko"]
    assert await campaign_state(engine_campaigns, campaign_id) == before
    await connection.close()


async def test_cancel_with_and_without_client_id(live_server: LiveServer, world: World,
                                                 make_campaign: CampaignFactory, engine_campaigns: CampaignLive,
                                                 clients) -> None:
    """A cancel sets the total to 0; without a client id a second cancel is acked no_pledge, as over DELETE."""
    campaign_id = await make_campaign()
    connection = await open_pledge_socket(await clients(live_server, world.members[3]))
    assert (await pledge(connection, campaign_id, 3, "cancel-p1"))["accepted"] is True

    cancelled = await send_json(connection, {"type": "cancel", "campaign_id": campaign_id, "client_id": "cancel-c1"})
    retried = await send_json(connection, {"type": "cancel", "campaign_id": campaign_id, "client_id": "cancel-c1"})

    assert cancelled["accepted"] is True
    assert cancelled["client_id"] == "cancel-c1"
    assert cancelled["receipt"]["units"] == 0
    assert cancelled["receipt"]["delta_units"] == -3
    assert cancelled["live"]["committed_units"] == 0
    assert retried["accepted"] is True
    assert retried["receipt"]["retry"] is True
    assert (await campaign_state(engine_campaigns, campaign_id))[2] == {}

    assert (await pledge(connection, campaign_id, 2, "cancel-p2"))["accepted"] is True
    anonymous_id = await send_json(connection, {"type": "cancel", "campaign_id": campaign_id})
    again = await send_json(connection, {"type": "cancel", "campaign_id": campaign_id})

    assert anonymous_id["accepted"] is True
    assert anonymous_id["client_id"] is None
    assert anonymous_id["receipt"]["units"] == 0
    assert again["accepted"] is False
    assert again["error"]["code"] == "no_pledge"
    assert (await campaign_state(engine_campaigns, campaign_id))[2] == {}
    await connection.close()


async def test_bad_campaign_id_acked_not_found(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                               clients) -> None:
    """A campaign_id outside 1..2^63-1, or of no campaign, is acked campaign_not_found and the socket keeps serving."""
    campaign_id = await make_campaign()
    connection = await open_pledge_socket(await clients(live_server, world.members[0]))

    for bad_id in (2**63, 0, -1, True, "1", None, 1.0, 999_999_999):
        ack = await pledge(connection, bad_id, 1, "bad-id-1")
        assert ack["accepted"] is False, bad_id
        assert ack["error"]["code"] == "campaign_not_found", bad_id
    ack = await send_json(connection, {"type": "cancel", "campaign_id": "x", "client_id": "bad-id-2"})
    assert ack["error"]["code"] == "campaign_not_found"

    assert (await pledge(connection, campaign_id, 1, "bad-id-3"))["accepted"] is True
    await connection.close()


@pytest.mark.parametrize("units", ["1,000", "-1", 1.5, True, None, [3], "+3", "9999999"], ids=repr)
async def test_bad_units_acked_invalid_units(live_server: LiveServer, world: World, make_campaign: CampaignFactory,
                                             engine_campaigns: CampaignLive, clients, units) -> None:
    """Units that are not plain ASCII digits within bounds are acked invalid_units, as over HTTP."""
    campaign_id = await make_campaign()
    connection = await open_pledge_socket(await clients(live_server, world.members[1]))
    before = await campaign_state(engine_campaigns, campaign_id)

    ack = await pledge(connection, campaign_id, units, "units-1")

    assert ack["accepted"] is False
    assert ack["error"]["code"] == "invalid_units"
    assert await campaign_state(engine_campaigns, campaign_id) == before
    await connection.close()


async def test_up_front_pledge_acked_with_payment(live_server: LiveServer, world: World,
                                                  make_campaign: CampaignFactory, pg_pool: asyncpg.Pool,
                                                  clients) -> None:
    """An up-front pledge over the socket records the bank transfer and acks its id."""
    campaign_id = await make_campaign(payment_timing="up_front", hold_s=3_600)
    connection = await open_pledge_socket(await clients(live_server, world.members[2]))

    ack = await pledge(connection, campaign_id, 3, "upfront-ws-1")

    assert ack["accepted"] is True
    assert ack["payment_id"] is not None
    row = await pg_pool.fetchrow("SELECT units, amount_won FROM pledge_payments WHERE id = $1", ack["payment_id"])
    assert row is not None
    assert (row["units"], row["amount_won"]) == (3, 27_000)
    await connection.close()


@pytest.mark.parametrize("hello", [
    {"type": "hello", "csrf_token": "wrong"},
    {"type": "hello"},
    {"type": "hello", "csrf_token": None},
    {"type": "pledge", "campaign_id": 1, "units": 1, "client_id": "early"},
], ids=["wrong", "missing", "null", "not-hello"])
async def test_bad_hello_closes(live_server: LiveServer, world: World, clients, hello: dict[str, Any]) -> None:
    """A first message without the session's CSRF token gets csrf_failed and a 1008 close."""
    member = await clients(live_server, world.members[0])
    connection = await member.connect("/ws/pledges")
    await connection.send(json.dumps(hello))

    reply = json.loads(await connection.recv())

    assert reply["type"] == "error"
    assert reply["error"]["code"] == "csrf_failed"
    await expect_close(connection, 1008)


async def test_foreign_origin_rejected(live_server: LiveServer, world: World, clients) -> None:
    """A handshake from an origin that is not allowed is rejected with 403."""
    member = await clients(live_server, world.members[0])
    with pytest.raises(InvalidStatus) as rejected:
        await member.connect("/ws/pledges", origin="http://evil.example")
    assert rejected.value.response.status_code == 403


async def test_anonymous_handshake_rejected(live_server: LiveServer, clients) -> None:
    """Without a signed-in session the handshake is rejected with 403."""
    anonymous = await clients(live_server, None)
    with pytest.raises(InvalidStatus) as rejected:
        await anonymous.connect("/ws/pledges")
    assert rejected.value.response.status_code == 403


async def test_malformed_frames_answered_with_error(live_server: LiveServer, world: World,
                                                    make_campaign: CampaignFactory, clients) -> None:
    """Non-JSON text, other JSON and binary frames get invalid_json errors and the socket keeps serving."""
    campaign_id = await make_campaign()
    connection = await open_pledge_socket(await clients(live_server, world.members[3]))

    for text in ("not json", "[1]", "3", '{"type": ["pledge"]}', '{"type": "bid", "lot_id": 1}', "{}"):
        await connection.send(text)
        reply = json.loads(await connection.recv())
        assert reply["type"] == "error", text
        assert reply["error"]["code"] == "invalid_json", text
        assert reply["error"]["detail"] == {"expected": "pledge or cancel message"}, text
    await connection.send(b'{"type": "pledge"}')
    binary = json.loads(await connection.recv())
    assert binary["type"] == "error"
    assert binary["error"]["code"] == "invalid_json"
    assert binary["error"]["detail"] == {"expected": "a text frame"}

    assert (await pledge(connection, campaign_id, 1, "after-junk"))["accepted"] is True
    await connection.close()


async def test_oversized_frame_closes(live_server: LiveServer, world: World, clients) -> None:
    """A frame over max_ws_frame_bytes closes the socket with 1009."""
    connection = await open_pledge_socket(await clients(live_server, world.members[0]))
    await connection.send("x" * (live_server.app.state.settings.max_ws_frame_bytes + 1))  # type: ignore[attr-defined]
    await expect_close(connection, 1009)


async def test_revoked_session_closes(live_server: LiveServer, make_campaign: CampaignFactory,
                                      engine_campaigns: CampaignLive, pg_pool: asyncpg.Pool, clients) -> None:
    """After the member's sessions are revoked, the next pledge gets not_authenticated and a 1008 close."""
    campaign_id = await make_campaign()
    account = await insert_user(pg_pool, "폐기될 세션")
    connection = await open_pledge_socket(await clients(live_server, account))
    assert (await pledge(connection, campaign_id, 1, "revoke-1"))["accepted"] is True
    app_state = live_server.app.state  # type: ignore[attr-defined]
    assert await revoke_user_sessions(app_state.redis, app_state.keys, account.user_id) == 1
    before = await campaign_state(engine_campaigns, campaign_id)

    reply = await pledge(connection, campaign_id, 2, "revoke-2")

    assert reply["type"] == "error"
    assert reply["error"]["code"] == "not_authenticated"
    await expect_close(connection, 1008)
    assert await campaign_state(engine_campaigns, campaign_id) == before


async def test_pledge_rate_limited(settings, make_campaign: CampaignFactory, engine_campaigns: CampaignLive,
                                   pg_pool: asyncpg.Pool, clients) -> None:
    """Pledges past the per-user rate are acked rate_limited with the seconds to wait, and are not applied."""
    server = await start_server(settings, bid_rate="3/minute")
    try:
        campaign_id = await make_campaign()
        account = await insert_user(pg_pool, "빠른 회원")
        connection = await open_pledge_socket(await clients(server, account))

        acks = [await pledge(connection, campaign_id, units, f"rate-{units}") for units in (1, 2, 3, 4)]

        assert [ack["accepted"] for ack in acks] == [True, True, True, False]
        assert acks[3]["client_id"] == "rate-4"
        assert acks[3]["error"]["code"] == "rate_limited"
        assert acks[3]["error"]["detail"]["retry_after_s"] > 0
        assert await campaign_state(engine_campaigns, campaign_id) == (3, 3, {account.user_id: 3})
        await connection.close()
    finally:
        await server.stop()

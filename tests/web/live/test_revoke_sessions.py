"""Suspension and demotion take effect on the user's next request, not after the session's re-read."""

from __future__ import annotations

import json

import asyncpg
import pytest
from websockets.exceptions import ConnectionClosed

from tests.web.live.conftest import LiveServer, LotFactory, World, insert_user
from web.sessions import revoke_user_sessions

pytestmark = pytest.mark.slow


async def test_suspended_member_next_bid_rejected(
    live_server: LiveServer, world: World, make_lot: LotFactory, clients, pg_pool: asyncpg.Pool
) -> None:
    """After staff suspend a member, the member's next bid over HTTP is rejected and the open bid socket is closed."""
    lot_id = await make_lot(start_price_won=10_000)
    account = await insert_user(pg_pool, "정지될 회원")
    member = await clients(live_server, account)
    staff = await clients(live_server, world.staff)
    assert (await member.bid(lot_id, 11_000)).status_code == 201
    socket = await member.connect("/ws/bids")
    await socket.send(json.dumps({"type": "hello", "csrf_token": member.csrf_token}))
    assert json.loads(await socket.recv()) == {"type": "ready"}

    response = await staff.http.post(
        f"/api/v1/users/{account.user_id}/suspend", json={"reason": "test"}, headers={"X-CSRF-Token": staff.csrf_token}
    )

    assert response.status_code == 200, response.text
    assert response.json()["changed"] is True
    assert response.json()["sessions_revoked"] == 1
    bid = await member.bid(lot_id, 12_000)
    # The revoked session's CSRF token matches nothing any more, so the CSRF check answers first.
    assert bid.status_code == 403
    assert bid.json()["error"]["code"] == "csrf_failed"
    assert (await member.http.get("/api/v1/session")).json()["user"] is None
    await socket.send(json.dumps({"type": "bid", "lot_id": lot_id, "amount_won": 13_000, "client_id": "after"}))
    reply = json.loads(await socket.recv())
    assert reply["error"]["code"] == "not_authenticated"
    with pytest.raises(ConnectionClosed) as closed:
        await socket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008
    assert await pg_pool.fetchval("SELECT status FROM users WHERE id = $1", account.user_id) == "suspended"
    assert await pg_pool.fetchval(
        "SELECT count(*) FROM audit_log WHERE action = 'user.suspend' AND target_id = $1", account.user_id
    ) == 1


async def test_demoted_staff_next_action_rejected(
    live_server: LiveServer, make_lot: LotFactory, clients, pg_pool: asyncpg.Pool
) -> None:
    """A staff account demoted in PostgreSQL is refused (403) on its next staff action, with its session still cached."""
    first_lot, second_lot = await make_lot(), await make_lot()
    account = await insert_user(pg_pool, "임시 운영자", "staff")
    staff = await clients(live_server, account)
    cancelled = await staff.http.post(f"/api/v1/lots/{first_lot}/cancel", headers={"X-CSRF-Token": staff.csrf_token})
    assert cancelled.status_code == 200, cancelled.text

    await pg_pool.execute("UPDATE users SET role = 'member' WHERE id = $1", account.user_id)
    refused = await staff.http.post(f"/api/v1/lots/{second_lot}/cancel", headers={"X-CSRF-Token": staff.csrf_token})

    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    session = (await staff.http.get("/api/v1/session")).json()
    assert session["user"]["role"] == "member"


async def test_suspend_rules(live_server: LiveServer, world: World, clients, pg_pool: asyncpg.Pool) -> None:
    """Only staff may suspend; staff cannot suspend themselves; an unknown user is 404; a repeat changes nothing."""
    account = await insert_user(pg_pool, "두 번 정지")
    staff = await clients(live_server, world.staff)
    member = await clients(live_server, world.members[3])
    headers = {"X-CSRF-Token": staff.csrf_token}

    by_member = await member.http.post(
        f"/api/v1/users/{account.user_id}/suspend", headers={"X-CSRF-Token": member.csrf_token}
    )
    own = await staff.http.post(f"/api/v1/users/{world.staff.user_id}/suspend", headers=headers)
    unknown = await staff.http.post("/api/v1/users/999999999/suspend", headers=headers)
    first = await staff.http.post(f"/api/v1/users/{account.user_id}/suspend", headers=headers)
    again = await staff.http.post(f"/api/v1/users/{account.user_id}/suspend", headers=headers)

    assert by_member.status_code == 403
    assert own.status_code == 409
    assert own.json()["error"]["code"] == "cannot_suspend_self"
    assert unknown.status_code == 404
    assert first.json()["changed"] is True
    assert again.status_code == 200
    assert again.json()["changed"] is False


async def test_revoke_ends_every_session(live_server: LiveServer, clients, pg_pool: asyncpg.Pool) -> None:
    """`revoke_user_sessions` ends all of a user's sessions (two browsers) and leaves other users signed in."""
    account = await insert_user(pg_pool, "두 브라우저")
    other_account = await insert_user(pg_pool, "다른 회원")
    first, second = await clients(live_server, account), await clients(live_server, account)
    other = await clients(live_server, other_account)
    app_state = live_server.app.state  # type: ignore[attr-defined]

    assert await revoke_user_sessions(app_state.redis, app_state.keys, account.user_id) == 2

    assert (await first.http.get("/api/v1/session")).json()["user"] is None
    assert (await second.http.get("/api/v1/session")).json()["user"] is None
    assert (await other.http.get("/api/v1/session")).json()["user"]["id"] == other_account.user_id
    assert await app_state.redis.exists(app_state.keys.user_sessions(account.user_id)) == 0

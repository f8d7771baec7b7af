"""Server-side sessions: the cookie, the Redis record and the cached user row."""

from __future__ import annotations

import httpx
import orjson
from starlette.applications import Starlette

from engine.config import Settings
from tests.web.conftest import api_csrf, register_via_api, unique_email
from web.sessions import SESSION_COOKIE


async def test_session_cookie_attributes(settings: Settings, client: httpx.AsyncClient) -> None:
    """The session cookie is HttpOnly, SameSite=Lax, scoped to / and lives session_ttl_s."""
    response = await client.get("/login")
    cookie = next(value for value in response.headers.get_list("set-cookie") if value.startswith(SESSION_COOKIE + "="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/" in cookie
    assert f"Max-Age={settings.session_ttl_s}" in cookie
    assert "Secure" not in cookie


async def test_session_data_in_redis_with_ttl(app: Starlette, settings: Settings, client: httpx.AsyncClient) -> None:
    """The session is one JSON value under Keys.session(id) with the configured TTL."""
    token = await api_csrf(client)
    key = app.state.keys.session(client.cookies[SESSION_COOKIE])
    data = orjson.loads(await app.state.redis.get(key))
    assert data["csrf"] == token
    ttl_s = await app.state.redis.ttl(key)
    assert 0 < ttl_s <= settings.session_ttl_s


async def test_unknown_session_cookie_replaced(client: httpx.AsyncClient) -> None:
    """A cookie naming no stored session is treated as anonymous and replaced by a new id."""
    response = await client.get("/api/v1/session", headers={"Cookie": f"{SESSION_COOKIE}={'B' * 43}"})
    assert response.json()["user"] is None
    new_cookie = response.headers["set-cookie"]
    assert new_cookie.startswith(SESSION_COOKIE + "=")
    assert not new_cookie.startswith(f"{SESSION_COOKIE}={'B' * 43}")


async def test_static_files_create_no_session(client: httpx.AsyncClient) -> None:
    """Static files are served without creating a session."""
    response = await client.get("/static/css/app.css")
    assert response.status_code == 200
    assert SESSION_COOKIE not in client.cookies


async def _expire_user_cache(app: Starlette, client: httpx.AsyncClient) -> None:
    key = app.state.keys.session(client.cookies[SESSION_COOKIE])
    data = orjson.loads(await app.state.redis.get(key))
    data["user_loaded_at"] = 0
    await app.state.redis.set(key, orjson.dumps(data), keepttl=True)


async def test_cached_user_refreshed_after_role_change(app: Starlette, client: httpx.AsyncClient) -> None:
    """Once the cached row is stale, a role change in PostgreSQL reaches the session."""
    email = unique_email("promote")
    await register_via_api(client, email)
    await app.state.db.execute("UPDATE users SET role = 'staff' WHERE email = $1", email)
    assert (await client.get("/staff")).status_code == 403  # still the cached member row

    await _expire_user_cache(app, client)
    assert (await client.get("/staff")).status_code == 200
    assert (await client.get("/api/v1/session")).json()["user"]["role"] == "staff"


async def test_suspended_user_rejected_by_guards(app: Starlette, client: httpx.AsyncClient) -> None:
    """A suspended account stays signed in but guarded pages return 403 `account_suspended`."""
    email = unique_email("suspend")
    await register_via_api(client, email)
    await app.state.db.execute("UPDATE users SET role = 'staff', status = 'suspended' WHERE email = $1", email)
    await _expire_user_cache(app, client)

    response = await client.get("/staff", headers={"Accept": "application/json"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "account_suspended"


async def test_deleted_user_signed_out(app: Starlette, client: httpx.AsyncClient) -> None:
    """When the user row is gone, the next request after the cache expires is anonymous."""
    email = unique_email("gone")
    await register_via_api(client, email)
    await app.state.db.execute("DELETE FROM users WHERE email = $1", email)
    await _expire_user_cache(app, client)
    assert (await client.get("/api/v1/session")).json()["user"] is None

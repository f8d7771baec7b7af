"""`GET /api/v1/me` and `PATCH /api/v1/me`: the signed-in user and the change of their stored locale."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from tests.web.conftest import api_csrf, register_via_api, unique_email
from web.i18n import LOCALE_COOKIE

LOCALE_MESSAGE = {
    "ko": '언어는 "ko"(한국어)나 "en"(영어) 중에서 골라 주세요.',
    "en": 'Choose "ko" (Korean) or "en" (English) as the language.',
}


async def _stored(app: Starlette, email: str) -> dict:
    row = await app.state.db.fetchrow("SELECT locale, role, display_name FROM users WHERE email = $1", email)
    assert row is not None, email
    return dict(row)


async def _patch(client: httpx.AsyncClient, body: object, token: str | None = "fetch") -> httpx.Response:
    headers = {}
    if token == "fetch":
        token = await api_csrf(client)
    if token is not None:
        headers["X-CSRF-Token"] = token
    return await client.patch("/api/v1/me", json=body, headers=headers)


async def test_get_me_returns_user(client: httpx.AsyncClient) -> None:
    """A signed-in member reads their own row, locale included."""
    email = unique_email("me-get")
    registered = await register_via_api(client, email)
    response = await client.get("/api/v1/me")
    assert response.status_code == 200, response.text
    assert response.json() == registered["user"]
    assert response.json()["locale"] == "ko"


async def test_me_anonymous_rejected(client: httpx.AsyncClient) -> None:
    """Without a signed-in user both methods return 401 `not_authenticated`, even with a valid CSRF token."""
    response = await client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"

    response = await _patch(client, {"locale": "en"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert LOCALE_COOKIE not in client.cookies


async def test_patch_me_changes_locale(app: Starlette, client: httpx.AsyncClient) -> None:
    """English is stored, returned, reflected in the session's copy of the user, and switches the pages."""
    email = unique_email("me-patch")
    await register_via_api(client, email)
    assert '<html lang="ko">' in (await client.get("/")).text

    response = await _patch(client, {"locale": "en"})
    assert response.status_code == 200, response.text
    assert response.json()["locale"] == "en"
    assert response.json()["email"] == email
    assert (await _stored(app, email))["locale"] == "en"
    assert client.cookies[LOCALE_COOKIE] == "en"

    session = (await client.get("/api/v1/session")).json()
    assert session["user"]["locale"] == "en"
    assert (await client.get("/api/v1/me")).json()["locale"] == "en"
    assert '<html lang="en">' in (await client.get("/")).text
    account = await client.get("/account")
    assert '<input type="radio" name="locale" value="en" checked>' in account.text

    response = await _patch(client, {"locale": "ko"})
    assert response.status_code == 200, response.text
    assert (await _stored(app, email))["locale"] == "ko"
    assert (await client.get("/api/v1/session")).json()["user"]["locale"] == "ko"
    assert '<html lang="ko">' in (await client.get("/")).text


@pytest.mark.parametrize("locale", ["fr", "EN", "ko-KR", " en", "", 5, ["en"], None, True])
async def test_patch_me_rejects_invalid_locale(app: Starlette, client: httpx.AsyncClient, locale: object) -> None:
    """A locale other than exactly "ko" or "en" gets 422 with the sign-up message, and nothing changes."""
    email = unique_email("me-bad")
    await register_via_api(client, email)
    response = await _patch(client, {"locale": locale})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert set(error["detail"]["fields"]) == {"locale"}
    assert error["detail"]["fields"]["locale"]["message"] == LOCALE_MESSAGE
    assert (await _stored(app, email))["locale"] == "ko"
    assert (await client.get("/api/v1/session")).json()["user"]["locale"] == "ko"
    assert client.cookies[LOCALE_COOKIE] == "ko"  # as registration set it


async def test_patch_me_requires_locale(app: Starlette, client: httpx.AsyncClient) -> None:
    """An empty object is rejected like an invalid locale."""
    email = unique_email("me-empty")
    await register_via_api(client, email)
    response = await _patch(client, {})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["detail"]["fields"]["locale"]["message"] == LOCALE_MESSAGE
    assert (await _stored(app, email))["locale"] == "ko"


async def test_patch_me_rejects_other_fields(app: Starlette, client: httpx.AsyncClient) -> None:
    """Fields other than `locale` are rejected by name, and neither they nor the locale are stored."""
    email = unique_email("me-extra")
    await register_via_api(client, email)
    response = await _patch(client, {"locale": "en", "role": "staff", "display_name": "Mallory"})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["detail"]["unknown_fields"] == ["display_name", "role"]
    assert await _stored(app, email) == {"locale": "ko", "role": "member", "display_name": "김민수"}


async def test_patch_me_rejects_non_object(app: Starlette, client: httpx.AsyncClient) -> None:
    """A JSON body that is not an object is rejected with 400 `invalid_json`."""
    email = unique_email("me-list")
    await register_via_api(client, email)
    response = await _patch(client, ["en"])
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_json"
    assert (await _stored(app, email))["locale"] == "ko"


@pytest.mark.parametrize("token", [None, "not-the-session-token"])
async def test_patch_me_requires_csrf(app: Starlette, client: httpx.AsyncClient, token: str | None) -> None:
    """A missing or wrong CSRF token gets 403 `csrf_failed` and leaves the locale unchanged."""
    email = unique_email("me-csrf")
    await register_via_api(client, email)
    response = await _patch(client, {"locale": "en"}, token=token)
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "csrf_failed"
    assert (await _stored(app, email))["locale"] == "ko"
    assert (await client.get("/api/v1/session")).json()["user"]["locale"] == "ko"
    assert client.cookies[LOCALE_COOKIE] == "ko"  # as registration set it


async def test_me_suspended_account(app: Starlette, client: httpx.AsyncClient) -> None:
    """A suspended account can read itself but not change its locale (403 `account_suspended`)."""
    email = unique_email("me-suspended")
    registered = await register_via_api(client, email, password="sesame-street")
    await client.delete("/api/v1/session", headers={"X-CSRF-Token": registered["csrf_token"]})
    await app.state.db.execute("UPDATE users SET status = 'suspended' WHERE email = $1", email)
    token = await api_csrf(client)
    response = await client.post("/api/v1/session", json={"email": email, "password": "sesame-street"},
                                 headers={"X-CSRF-Token": token})
    assert response.status_code == 200, response.text

    me = await client.get("/api/v1/me")
    assert me.status_code == 200
    assert me.json()["status"] == "suspended"
    response = await _patch(client, {"locale": "en"})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "account_suspended"
    assert (await _stored(app, email))["locale"] == "ko"


async def test_patch_me_deleted_user_signed_out(app: Starlette, client: httpx.AsyncClient) -> None:
    """When the user's row is gone, PATCH returns 401 and the session is signed out."""
    email = unique_email("me-deleted")
    await register_via_api(client, email)
    await app.state.db.execute("DELETE FROM users WHERE email = $1", email)

    response = await _patch(client, {"locale": "en"})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "not_authenticated"
    assert (await client.get("/api/v1/session")).json()["user"] is None


async def test_openapi_lists_me(client: httpx.AsyncClient) -> None:
    """Both methods are documented. PATCH takes only `locale` and needs the CSRF header."""
    document = (await client.get("/api/v1/openapi.json")).json()
    operations = document["paths"]["/api/v1/me"]
    assert operations["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/User"
    }
    patch = operations["patch"]
    schema = patch["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["locale"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["locale"]["enum"] == ["ko", "en"]
    assert patch["parameters"] == [{"$ref": "#/components/parameters/CsrfToken"}]
    assert patch["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/User"}

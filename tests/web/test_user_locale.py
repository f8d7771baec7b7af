"""The stored locale of a member: set at registration (page and API) and changed on the account page."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from tests.web.conftest import api_csrf, page_csrf, register_via_api, unique_email


async def _stored_locale(app: Starlette, email: str) -> str | None:
    return await app.state.db.fetchval("SELECT locale FROM users WHERE lower(email) = lower($1)", email)


async def _api_register(client: httpx.AsyncClient, email: str, **extra: object) -> httpx.Response:
    token = await api_csrf(client)
    body = {"email": email, "password": "correct horse", "display_name": "김민수", **extra}
    return await client.post("/api/v1/register", json=body, headers={"X-CSRF-Token": token})


async def test_api_register_stores_english(app: Starlette, client: httpx.AsyncClient) -> None:
    """`locale: "en"` is stored and returned with the signed-in user, on a Korean page."""
    email = unique_email("api-en")
    response = await _api_register(client, email, locale="en")
    assert response.status_code == 201, response.text
    assert response.json()["user"]["locale"] == "en"
    assert await _stored_locale(app, email) == "en"


async def test_api_register_defaults_to_page_locale(app: Starlette, client: httpx.AsyncClient) -> None:
    """Without `locale`, the request's page language is stored: Korean by default, English after `?lang=en`."""
    korean = unique_email("api-default")
    response = await _api_register(client, korean)
    assert response.status_code == 201, response.text
    assert await _stored_locale(app, korean) == "ko"

    english_client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    async with english_client:
        await english_client.get("/?lang=en")
        english = unique_email("api-cookie")
        response = await _api_register(english_client, english)
        assert response.status_code == 201, response.text
    assert await _stored_locale(app, english) == "en"


@pytest.mark.parametrize("locale", ["fr", "EN", "ko-KR", " en", "", 5, ["en"]])
async def test_api_register_rejects_invalid_locale(app: Starlette, client: httpx.AsyncClient, locale: object) -> None:
    """Any `locale` other than exactly "ko" or "en" is rejected with 422 and a message, and creates no user."""
    email = unique_email("api-bad-locale")
    response = await _api_register(client, email, locale=locale)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert set(error["detail"]["fields"]) == {"locale"}
    message = error["detail"]["fields"]["locale"]["message"]
    assert message["en"] == 'Choose "ko" (Korean) or "en" (English) as the language.'
    assert message["ko"] == '언어는 "ko"(한국어)나 "en"(영어) 중에서 골라 주세요.'
    assert await _stored_locale(app, email) is None


async def test_api_register_null_locale_is_missing(app: Starlette, client: httpx.AsyncClient) -> None:
    """`locale: null` counts as a missing field, so the page language (Korean here) is stored."""
    email = unique_email("api-null-locale")
    response = await _api_register(client, email, locale=None)
    assert response.status_code == 201, response.text
    assert await _stored_locale(app, email) == "ko"


async def test_page_register_offers_page_locale(app: Starlette, client: httpx.AsyncClient) -> None:
    """The sign-up form preselects the page's language, and the chosen one is stored."""
    page = await client.get("/register?lang=en")
    assert '<input type="radio" name="locale" value="en" checked>' in page.text
    assert '<input type="radio" name="locale" value="ko">' in page.text

    email = unique_email("page-ko")
    token = await page_csrf(client, "/register")
    response = await client.post(
        "/register",
        data={"csrf_token": token, "email": email, "password": "sesame-street", "display_name": "김민수", "locale": "ko"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/?lang=ko"  # the page was English, so the pages switch too
    assert await _stored_locale(app, email) == "ko"


async def test_page_register_rejects_invalid_locale(app: Starlette, client: httpx.AsyncClient) -> None:
    """A tampered language value re-renders the form with 422 and its message, and stores no user."""
    email = unique_email("page-bad")
    token = await page_csrf(client, "/register")
    response = await client.post(
        "/register",
        data={"csrf_token": token, "email": email, "password": "sesame-street", "display_name": "김민수", "locale": "de"},
    )
    assert response.status_code == 422
    assert '언어는 "ko"(한국어)나 "en"(영어) 중에서 골라 주세요.' in response.text.replace("&#34;", '"')
    assert await _stored_locale(app, email) is None


async def test_account_page_requires_login(client: httpx.AsyncClient) -> None:
    """An anonymous visitor is sent to the login form."""
    response = await client.get("/account")
    assert response.status_code in (302, 303)
    assert response.headers["location"].startswith("/login")


async def test_account_page_changes_locale(app: Starlette, client: httpx.AsyncClient) -> None:
    """Saving English stores it, switches the pages to English and confirms, and the session returns the new locale."""
    email = unique_email("account")
    await register_via_api(client, email)
    page = await client.get("/account")
    assert page.status_code == 200
    assert '<input type="radio" name="locale" value="ko" checked>' in page.text
    assert 'href="/account"' in page.text

    token = await page_csrf(client, "/account")
    response = await client.post("/account/language", data={"csrf_token": token, "locale": "en"})
    assert response.status_code == 303
    assert response.headers["location"] == "/account?saved=1&lang=en"
    assert await _stored_locale(app, email) == "en"

    confirmed = await client.get(response.headers["location"])
    assert '<html lang="en">' in confirmed.text
    assert "Your language was saved." in confirmed.text
    assert '<input type="radio" name="locale" value="en" checked>' in confirmed.text
    session = (await client.get("/api/v1/session")).json()
    assert session["user"]["locale"] == "en"


async def test_account_page_rejects_invalid_locale(app: Starlette, client: httpx.AsyncClient) -> None:
    """An unknown language is rejected with 422 and leaves the stored one unchanged."""
    email = unique_email("account-bad")
    await register_via_api(client, email)
    token = await page_csrf(client, "/account")
    response = await client.post("/account/language", data={"csrf_token": token, "locale": "ja"})
    assert response.status_code == 422
    assert 'role="alert"' in response.text
    assert await _stored_locale(app, email) == "ko"


async def test_locale_column_rejects_unknown(app: Starlette) -> None:
    """The database rejects a locale outside ko and en, whatever writes it."""
    import asyncpg

    email = unique_email("db-check")
    with pytest.raises(asyncpg.CheckViolationError):
        await app.state.db.execute(
            "INSERT INTO users (email, password_hash, display_name, locale) VALUES ($1, 'x', '김민수', 'fr')", email
        )

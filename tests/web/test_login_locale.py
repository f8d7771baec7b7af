"""Signing in switches the pages to the member's stored locale. Afterwards `?lang=` switches as usual."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from starlette.applications import Starlette

from tests.web.conftest import api_csrf, page_csrf, unique_email
from web.i18n import LOCALE_COOKIE

PASSWORD = "sesame-street"


@pytest_asyncio.fixture
async def device(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser with its own cookie jar, without the cookies of the member's sign-up."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http_client:
        yield http_client


async def _register(client: httpx.AsyncClient, locale: str) -> str:
    """Register a member with `locale` through the API, sign out again, and return the email."""
    email = unique_email(f"login-{locale}")
    token = await api_csrf(client)
    response = await client.post(
        "/api/v1/register",
        json={"email": email, "password": PASSWORD, "display_name": "Alice Kim", "locale": locale},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 201, response.text
    response = await client.delete("/api/v1/session", headers={"X-CSRF-Token": response.json()["csrf_token"]})
    assert response.status_code == 200, response.text
    return email


def _locale_cookies(response: httpx.Response) -> list[str]:
    return [value for value in response.headers.get_list("set-cookie") if value.startswith(f"{LOCALE_COOKIE}=")]


async def _page_login(client: httpx.AsyncClient, email: str, password: str = PASSWORD, path: str = "/login") -> httpx.Response:
    token = await page_csrf(client, "/login")
    return await client.post(path, data={"csrf_token": token, "email": email, "password": password, "next": "/"})


async def test_page_login_switches_to_english(client: httpx.AsyncClient, device: httpx.AsyncClient) -> None:
    """An English member who logs in on a new device gets English pages at once."""
    email = await _register(client, "en")
    before = await device.get("/")
    assert '<html lang="ko">' in before.text

    response = await _page_login(device, email)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert _locale_cookies(response) == ["lang=en; Path=/; Max-Age=31536000; SameSite=Lax"]

    home = await device.get("/")
    assert '<html lang="en">' in home.text
    assert "Auctions" in home.text


async def test_api_login_switches_to_english(client: httpx.AsyncClient, device: httpx.AsyncClient) -> None:
    """`POST /api/v1/session` sets the same cookie as the login page."""
    email = await _register(client, "en")
    token = await api_csrf(device)
    response = await device.post("/api/v1/session", json={"email": email, "password": PASSWORD},
                                 headers={"X-CSRF-Token": token})
    assert response.status_code == 200, response.text
    assert response.json()["user"]["locale"] == "en"
    assert _locale_cookies(response) == ["lang=en; Path=/; Max-Age=31536000; SameSite=Lax"]
    assert '<html lang="en">' in (await device.get("/")).text


async def test_login_replaces_visitor_choice(client: httpx.AsyncClient, device: httpx.AsyncClient) -> None:
    """A Korean member who logs in on a browser left in English gets Korean pages."""
    email = await _register(client, "ko")
    await device.get("/?lang=en")
    assert device.cookies[LOCALE_COOKIE] == "en"

    response = await _page_login(device, email)
    assert response.status_code == 303
    assert device.cookies[LOCALE_COOKIE] == "ko"
    assert '<html lang="ko">' in (await device.get("/")).text


async def test_login_locale_wins_over_lang_query(client: httpx.AsyncClient, device: httpx.AsyncClient) -> None:
    """A `?lang=ko` on the login request itself yields one cookie, with the stored locale."""
    email = await _register(client, "en")
    response = await _page_login(device, email, path="/login?lang=ko")
    assert response.status_code == 303
    assert _locale_cookies(response) == ["lang=en; Path=/; Max-Age=31536000; SameSite=Lax"]


async def test_switcher_after_login_sticks(client: httpx.AsyncClient, device: httpx.AsyncClient) -> None:
    """After login, `?lang=ko` switches an English member's pages to Korean, and later pages stay Korean."""
    email = await _register(client, "en")
    await _page_login(device, email)
    switched = await device.get("/?lang=ko")
    assert '<html lang="ko">' in switched.text

    for path in ("/", "/account", "/api/v1/session"):
        response = await device.get(path)
        assert response.status_code == 200, path
        assert _locale_cookies(response) == [], path
    assert '<html lang="ko">' in (await device.get("/account")).text
    assert device.cookies[LOCALE_COOKIE] == "ko"


async def test_failed_login_keeps_page_locale(client: httpx.AsyncClient, device: httpx.AsyncClient) -> None:
    """A wrong password sets no language cookie, on the page and through the API."""
    email = await _register(client, "en")
    response = await _page_login(device, email, password="not-the-one")
    assert response.status_code == 401
    assert _locale_cookies(response) == []

    token = await api_csrf(device)
    response = await device.post("/api/v1/session", json={"email": email, "password": "not-the-one"},
                                 headers={"X-CSRF-Token": token})
    assert response.status_code == 401
    assert _locale_cookies(response) == []
    assert LOCALE_COOKIE not in device.cookies


async def test_api_register_switches_pages(device: httpx.AsyncClient) -> None:
    """Registering through the API as English signs in and switches this browser's pages to English."""
    token = await api_csrf(device)
    response = await device.post(
        "/api/v1/register",
        json={"email": unique_email("register-en"), "password": PASSWORD, "display_name": "Alice Kim", "locale": "en"},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 201, response.text
    assert _locale_cookies(response) == ["lang=en; Path=/; Max-Age=31536000; SameSite=Lax"]
    assert '<html lang="en">' in (await device.get("/")).text

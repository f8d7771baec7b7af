"""Logging in on a new browser shows the member's stored language, and the language links still switch it."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from playwright.async_api import async_playwright

from engine.accounts import hash_password
from tests.browser.conftest import CHROMIUM_ARGS
from tests.web.live.conftest import start_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "sesame-street"


async def test_login_shows_stored_language(settings, pg_pool, chromium_path: Path) -> None:
    """An English member logs in from a Korean browser, gets English pages, and the link switches them back to Korean."""
    email = f"browser-login-{secrets.token_hex(5)}@example.com"
    await pg_pool.execute(
        "INSERT INTO users (email, password_hash, display_name, role, locale) VALUES ($1, $2, 'Alice Kim', 'member', 'en')",
        email, hash_password(PASSWORD),
    )
    server = await start_server(settings)
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
            try:
                page = await (await browser.new_context(locale="ko-KR")).new_page()
                await page.goto(f"{server.base_url}/login")
                assert await page.get_attribute("html", "lang") == "ko"

                await page.fill("#field-email", email)
                await page.fill("#field-password", PASSWORD)
                await page.click('main button[type="submit"]')
                await page.wait_for_url(f"{server.base_url}/")
                assert await page.get_attribute("html", "lang") == "en"
                assert "Auctions" in await page.inner_text("body")

                await page.click('a[hreflang="ko"]')
                await page.wait_for_url(f"{server.base_url}/?lang=ko")
                assert await page.get_attribute("html", "lang") == "ko"
                await page.goto(f"{server.base_url}/account")
                assert await page.get_attribute("html", "lang") == "ko"
                stored = await pg_pool.fetchval("SELECT locale FROM users WHERE email = $1", email)
                assert stored == "en"  # the language links change this browser only
            finally:
                await browser.close()
    finally:
        await server.stop()

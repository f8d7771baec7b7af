"""Staff find a pledge awaiting its bank transfer and confirm it in headless Chromium, with the keyboard and axe checks."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest
from playwright.async_api import async_playwright

from engine.groupbuy.live import CampaignLive
from tests.browser.conftest import CHROMIUM_ARGS
from tests.browser.test_account_browser import tab_to
from tests.browser.test_campaign_browser import serious_violations, signed_in_context
from tests.web.live.campaign_fixtures import CampaignFactory, engine_campaigns, make_campaign  # noqa: F401
from tests.web.live.conftest import World, start_server
from tests.web.live.test_pledge_deposit import DEPOSIT_WON, awaiting_payment, payment_ledger

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_pledge_deposit_confirmed_with_keyboard(
    settings, world: World, make_campaign: CampaignFactory, engine_campaigns: CampaignLive,  # noqa: F811
    pg_pool: asyncpg.Pool, clients, chromium_path: Path,
) -> None:
    """Staff search by the member's email, open the confirmation step and confirm, from the keyboard on a phone."""
    server = await start_server(settings)
    try:
        member, _, payment_id = await awaiting_payment(pg_pool, engine_campaigns, make_campaign, "한지민")
        staff = await clients(server, world.staff)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
            try:
                context = await signed_in_context(browser, staff)
                page = await context.new_page()
                await page.goto(f"{server.base_url}/staff/pledge-payments")
                violations = await serious_violations(page)
                assert not violations, "axe violations on the list:\n" + "\n".join(violations)

                await tab_to(page, "#field-q")
                await page.keyboard.type(member.email)
                await page.keyboard.press("Enter")
                await page.wait_for_url(f"{server.base_url}/staff/pledge-payments?q={quote(member.email, safe='')}")
                row = page.locator(f"#pledge-payment-{payment_id}")
                assert await row.locator('[data-field="amount"]').inner_text() == "36,000원"
                assert await row.locator('[data-field="member"]').inner_text() == f"한*민 ({member.email})"
                violations = await serious_violations(page)
                assert not violations, "axe violations on the search result:\n" + "\n".join(violations)

                await tab_to(page, f"#pledge-payment-{payment_id} button[type=submit]")
                await page.keyboard.press("Enter")
                await page.wait_for_url(f"{server.base_url}/staff/pledge-payments/{payment_id}/confirm")
                assert "36,000원이 계좌에 들어왔나요?" in await page.inner_text("#confirm-heading")
                violations = await serious_violations(page)
                assert not violations, "axe violations on the confirmation step:\n" + "\n".join(violations)
                assert await payment_ledger(pg_pool, payment_id) == []

                await tab_to(page, 'main button[type="submit"]')
                await page.keyboard.press("Enter")
                await page.wait_for_url(f"{server.base_url}/staff/pledge-payments?confirmed={payment_id}&q=*")
                result = page.locator('[role="status"][data-result="held"]')
                assert "입금을 확인했습니다." in await result.inner_text()
                assert await page.locator(f"#pledge-payment-{payment_id}").count() == 0
                violations = await serious_violations(page)
                assert not violations, "axe violations after the confirmation:\n" + "\n".join(violations)
            finally:
                await browser.close()
        assert await pg_pool.fetchval("SELECT status FROM pledge_payments WHERE id = $1", payment_id) == "paid"
        assert await payment_ledger(pg_pool, payment_id) == [("payment", DEPOSIT_WON)]
    finally:
        await server.stop()

"""Staff find an order and confirm its bank transfer in headless Chromium, with the keyboard and axe checks."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from playwright.async_api import async_playwright

from engine.groupbuy.live import CampaignLive
from tests.browser.conftest import CHROMIUM_ARGS
from tests.browser.test_account_browser import tab_to
from tests.browser.test_campaign_browser import serious_violations, signed_in_context
from tests.web.live.campaign_fixtures import CampaignFactory, engine_campaigns, make_campaign  # noqa: F401
from tests.web.live.conftest import World, start_server
from tests.web.live.test_order_deposit import ledger_consumer, partly_prepaid_order  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.slow]


async def test_deposit_confirmed_with_keyboard(
    settings, world: World, make_campaign: CampaignFactory, engine_campaigns: CampaignLive,  # noqa: F811
    pg_pool: asyncpg.Pool, ledger_consumer, clients, chromium_path: Path,  # noqa: F811
) -> None:
    """Staff look the order up by number, see 44,000원 due, and confirm it from the keyboard on a phone."""
    server = await start_server(settings)
    try:
        order = await partly_prepaid_order(pg_pool, engine_campaigns, settings, make_campaign, world,
                                           world.members[3])
        staff = await clients(server, world.staff)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
            try:
                context = await signed_in_context(browser, staff)
                page = await context.new_page()
                await page.goto(f"{server.base_url}/staff/orders")
                violations = await serious_violations(page)
                assert not violations, "axe violations on /staff/orders:\n" + "\n".join(violations)

                await tab_to(page, "#field-order_no")
                await page.keyboard.type(order["order_no"])
                await page.keyboard.press("Enter")
                await page.wait_for_url(f"{server.base_url}/staff/orders/{order['id']}/deposit")
                assert (await page.inner_text('[data-amount="due"]')).startswith("44,000원")
                assert await page.input_value("#field-deposit_won") == "44000"
                violations = await serious_violations(page)
                assert not violations, "axe violations on the deposit page:\n" + "\n".join(violations)

                await tab_to(page, 'main button[type="submit"]')
                await page.keyboard.press("Enter")
                await page.wait_for_url(f"{server.base_url}/staff/orders/{order['id']}/deposit?confirmed=1")
                assert "입금을 확인했고" in await page.inner_text('[data-result="confirmed"]')
                assert await page.inner_text('[data-amount="deposit"]') == "44,000원"
                violations = await serious_violations(page)
                assert not violations, "axe violations after the confirmation:\n" + "\n".join(violations)
            finally:
                await browser.close()
        paid = await pg_pool.fetchrow("SELECT status, deposit_won FROM orders WHERE id = $1", order["id"])
        assert tuple(paid.values()) == ("paid", 44_000)
    finally:
        await server.stop()

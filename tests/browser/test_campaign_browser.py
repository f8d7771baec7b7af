"""Two members on one campaign page in two browser contexts: a keyboard pledge updates the other page live."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright

from engine.config import PROJECT_ROOT
from tests.browser.conftest import CHROMIUM_ARGS
from tests.web.live.campaign_fixtures import CampaignFactory, engine_campaigns, make_campaign  # noqa: F401
from tests.web.live.conftest import LiveServer, SignedIn, World, start_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AXE_SCRIPT = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOT_DIR = Path(os.environ.get("JANGTEO_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="jangteo-shots-"))
PHONE = {"width": 390, "height": 844}


async def signed_in_context(browser, signed: SignedIn) -> BrowserContext:
    """A phone-sized browser context carrying the session cookie of a signed-in HTTP client."""
    context = await browser.new_context(locale="ko-KR", viewport=PHONE)
    await context.add_cookies(
        [{"name": name, "value": value, "url": signed.server.base_url} for name, value in signed.http.cookies.items()]
    )
    return context


async def open_campaign(context: BrowserContext, server: LiveServer, campaign_id: int) -> Page:
    page = await context.new_page()
    await page.goto(f"{server.base_url}/campaigns/{campaign_id}")
    # The pledge form is enabled once the websocket is open.
    await page.wait_for_selector(f"#campaign-{campaign_id}-pledge-fieldset:not([disabled])")
    return page


async def pledge_with_keyboard(page: Page, campaign_id: int, units: str) -> None:
    """Tab from the top of the page to the units field, type, and press Enter."""
    await page.locator("body").focus()
    for _ in range(80):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement && document.activeElement.id") == f"campaign-{campaign_id}-units-input":
            break
    else:
        raise AssertionError("Tab never reached the units field")
    await page.keyboard.type(units)
    await page.keyboard.press("Enter")


async def serious_violations(page: Page) -> list[str]:
    await page.add_script_tag(path=str(AXE_SCRIPT))
    results = await page.evaluate("async () => await axe.run(document)")
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(node["target"][0] for node in violation["nodes"][:3])
        for violation in results["violations"]
        if violation["impact"] in ("serious", "critical")
    ]


async def test_two_members_pledge_live(
    settings, world: World, make_campaign: CampaignFactory, clients, chromium_path: Path
) -> None:
    """A's keyboard pledge changes B's counter, tier and price without a reload, and both pages pass axe."""
    server = await start_server(settings)
    try:
        campaign_id = await make_campaign(title="광산 햇김 공동구매 (10봉)", fulfilment_terms="광산구청 1층에서 수령")
        member_a = await clients(server, world.members[0])
        member_b = await clients(server, world.members[1])

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
            try:
                page_a = await open_campaign(await signed_in_context(browser, member_a), server, campaign_id)
                page_b = await open_campaign(await signed_in_context(browser, member_b), server, campaign_id)
                assert await page_b.get_attribute(f"#campaign-{campaign_id}-price", "data-price-won") == "10000"

                await pledge_with_keyboard(page_a, campaign_id, "5")
                await page_a.wait_for_selector(f"#campaign-{campaign_id}-result .bid-result--accepted")
                # A's result names the most A will pay: 5 units at the minimum's price.
                assert "최대 45,000원을 결제하게 됩니다" in await page_a.inner_text(f"#campaign-{campaign_id}-result")
                assert "내 약속: 5개" in await page_a.inner_text(f"#campaign-{campaign_id}-mine")

                await page_b.wait_for_selector(f'#campaign-{campaign_id}-units[data-units="5"]')
                await page_b.wait_for_selector(f'#campaign-{campaign_id}-price[data-price-won="9000"]')
                await page_b.wait_for_selector(f'#campaign-{campaign_id}-tiers[data-reached-tier="0"]')
                assert "9,000원" in await page_b.inner_text(f"#campaign-{campaign_id}-price")
                assert "5개 더 모이면 8,000원" in await page_b.inner_text(f"#campaign-{campaign_id}-next-tier")
                assert "현재 개당 가격 9,000원" in await page_b.inner_text(f"#campaign-{campaign_id}-announce")
                assert "아직 약속하지 않았습니다" in await page_b.inner_text(f"#campaign-{campaign_id}-mine")
                assert await page_b.evaluate("performance.getEntriesByType('navigation').length") == 1

                # The at-most line follows what B types.
                await page_b.fill(f"#campaign-{campaign_id}-units-input", "3")
                assert "3개면 최대 27,000원을 결제하게 됩니다" in await page_b.inner_text(
                    f"#campaign-{campaign_id}-pay-at-most"
                )

                for page in (page_a, page_b):
                    violations = await serious_violations(page)
                    assert not violations, "axe violations:\n" + "\n".join(violations)

                SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
                await page_a.screenshot(path=str(SCREENSHOT_DIR / "campaign-member-a.png"), full_page=True)
                await page_b.screenshot(path=str(SCREENSHOT_DIR / "campaign-member-b.png"), full_page=True)
                listing = await page_b.context.new_page()
                await listing.goto(f"{server.base_url}/campaigns")
                violations = await serious_violations(listing)
                assert not violations, "axe violations on /campaigns:\n" + "\n".join(violations)
                await listing.screenshot(path=str(SCREENSHOT_DIR / "campaign-list.png"), full_page=True)
                print(f"screenshots in {SCREENSHOT_DIR}")
            finally:
                await browser.close()
    finally:
        await server.stop()

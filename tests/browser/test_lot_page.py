"""Two members bid on one lot in two browser contexts; the page updates live and passes axe."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, Page, async_playwright

from engine.config import PROJECT_ROOT
from tests.browser.conftest import CHROMIUM_ARGS
from tests.web.live.conftest import LiveServer, LotFactory, SignedIn, World, start_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AXE_SCRIPT = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOT_DIR = Path(os.environ.get("JANGTEO_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="jangteo-shots-"))


async def signed_in_context(browser, signed: SignedIn) -> BrowserContext:
    """A browser context carrying the session cookie of an already signed-in HTTP client."""
    context = await browser.new_context(locale="ko-KR", viewport={"width": 414, "height": 1100})
    await context.add_cookies(
        [{"name": name, "value": value, "url": signed.server.base_url} for name, value in signed.http.cookies.items()]
    )
    return context


async def open_lot(context: BrowserContext, server: LiveServer, lot_id: int) -> Page:
    page = await context.new_page()
    await page.goto(f"{server.base_url}/lots/{lot_id}")
    # The form is enabled once the websocket is open.
    await page.wait_for_selector(f"#lot-{lot_id}-bid-fieldset:not([disabled])")
    return page


async def bid_with_keyboard(page: Page, lot_id: int, amount: str) -> None:
    """Tab from the top of the page to the amount field, type, and press Enter."""
    await page.locator("body").focus()
    for _ in range(80):
        await page.keyboard.press("Tab")
        if await page.evaluate("document.activeElement && document.activeElement.id") == f"lot-{lot_id}-amount":
            break
    else:
        raise AssertionError("Tab never reached the amount field")
    await page.keyboard.type(amount)
    await page.keyboard.press("Enter")


async def test_two_members_bid_live(
    settings, world: World, make_lot: LotFactory, clients, chromium_path: Path
) -> None:
    """A's keyboard bid reaches B's page live; after B outbids A only A sees the outbid notice."""
    server = await start_server(settings)
    try:
        lot_id = await make_lot(start_price_won=10_000)
        opener = await clients(server, world.members[2])
        assert (await opener.bid(lot_id, 10_000)).status_code == 201
        member_a = await clients(server, world.members[0])
        member_b = await clients(server, world.members[1])

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
            try:
                page_a = await open_lot(await signed_in_context(browser, member_a), server, lot_id)
                page_b = await open_lot(await signed_in_context(browser, member_b), server, lot_id)

                await bid_with_keyboard(page_a, lot_id, "15000")
                await page_a.wait_for_selector(f"#lot-{lot_id}-result .bid-result--accepted")
                await page_b.wait_for_selector(f'#lot-{lot_id}-price[data-price-won="10500"]')
                assert "10,500원" in await page_b.inner_text(f"#lot-{lot_id}-price")
                assert await page_b.inner_text(f"#lot-{lot_id}-history li:first-child .history__bidder") == "김*수"

                await bid_with_keyboard(page_b, lot_id, "20000")
                await page_b.wait_for_selector(f'#lot-{lot_id}-notice [data-notice="winning"]')
                await page_a.wait_for_selector(f'#lot-{lot_id}-notice [data-notice="outbid"]')
                await page_a.wait_for_selector(f'#lot-{lot_id}-price[data-price-won="15500"]')
                assert "상위 입찰이 들어왔습니다" in await page_a.inner_text(f"#lot-{lot_id}-notice")
                assert "최고 입찰자입니다" in await page_b.inner_text(f"#lot-{lot_id}-notice")
                assert await page_b.locator('[data-notice="outbid"]').count() == 0

                # Pretendard is loaded and used for Korean text (headless Chromium here has no Korean font).
                fonts = await page_a.evaluate(
                    """async () => {
                        await document.fonts.ready;
                        const loaded = [...document.fonts].filter(
                            (face) => face.family.includes("Pretendard") && face.status === "loaded");
                        return {loaded: loaded.length,
                                check: document.fonts.check('16px "Pretendard Variable"', "최고가"),
                                family: getComputedStyle(document.body).fontFamily};
                    }"""
                )
                assert fonts["loaded"] > 0, fonts
                assert fonts["check"], fonts
                assert fonts["family"].startswith('"Pretendard Variable"'), fonts

                await page_a.add_script_tag(path=str(AXE_SCRIPT))
                results = await page_a.evaluate("async () => await axe.run(document)")
                serious = [
                    f"{violation['id']} ({violation['impact']}): {violation['help']} at "
                    + ", ".join(node["target"][0] for node in violation["nodes"][:3])
                    for violation in results["violations"]
                    if violation["impact"] in ("serious", "critical")
                ]
                assert not serious, "axe violations:\n" + "\n".join(serious)

                SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
                await page_a.screenshot(path=str(SCREENSHOT_DIR / "lot-member-a.png"), full_page=True)
                await page_b.screenshot(path=str(SCREENSHOT_DIR / "lot-member-b.png"), full_page=True)
                print(f"screenshots in {SCREENSHOT_DIR}")
            finally:
                await browser.close()
    finally:
        await server.stop()

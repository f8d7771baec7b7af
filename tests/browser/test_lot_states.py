"""Lot pages in headless Chromium: the bid field, outbid and close pushes, the outbox on a phone.

Each test saves screenshots (390 x 844 and 1280 x 900) to JANGTEO_SCREENSHOT_DIR or a
temporary folder, for a person to look at.
"""

from __future__ import annotations

import mailbox
import os
import tempfile
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from tests.browser.conftest import CHROMIUM_ARGS
from tests.browser.test_lot_page import bid_with_keyboard, open_lot
from tests.web.live.conftest import LiveServer, LotFactory, SignedIn, World, start_server
from tests.web.live.test_lot_states import close_now

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCREENSHOT_DIR = Path(os.environ.get("JANGTEO_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="jangteo-shots-"))
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}

# Records the errors htmx reports as events (they reach the console only as log lines).
RECORD_HTMX_ERRORS = """
window.__htmxErrors = [];
for (const name of ["htmx:oobErrorNoTarget", "htmx:targetError", "htmx:swapError", "htmx:responseError"]) {
  document.addEventListener(name, (event) => {
    window.__htmxErrors.push(name + " " + ((event.detail && event.detail.target) || ""));
  });
}
"""


class PageProblems:
    """Console errors, failed responses and htmx error events seen by one page."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.console: list[str] = []
        self.failed: list[str] = []
        page.on("console", lambda message: self.console.append(message.text) if message.type == "error" else None)
        page.on("response", lambda response: self.failed.append(f"{response.status} {response.url}")
                if response.status >= 400 else None)

    async def htmx_errors(self) -> list[str]:
        return await self.page.evaluate("window.__htmxErrors || []")


async def member_context(browser: Browser, signed: SignedIn | None, server: LiveServer, viewport: dict) -> BrowserContext:
    context = await browser.new_context(locale="ko-KR", viewport=viewport)
    await context.add_init_script(RECORD_HTMX_ERRORS)
    if signed is not None:
        await context.add_cookies(
            [{"name": name, "value": value, "url": server.base_url} for name, value in signed.http.cookies.items()]
        )
    return context


async def screenshot(page: Page, name: str) -> None:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOT_DIR / name), full_page=True)
    print(f"screenshot {SCREENSHOT_DIR / name}")


async def test_outbid_clears_bid_result(
    settings, world: World, make_lot: LotFactory, clients, chromium_path: Path
) -> None:
    """A bid typed with commas is accepted; once outbid, the page drops the old result and logs no errors."""
    server = await start_server(settings)
    try:
        lot_id = await make_lot(start_price_won=10_000)
        member_a = await clients(server, world.members[0])
        member_b = await clients(server, world.members[1])
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
            try:
                page = await open_lot(await member_context(browser, member_a, server, PHONE), server, lot_id)
                problems = PageProblems(page)

                await bid_with_keyboard(page, lot_id, "15,000")
                await page.wait_for_selector(f"#lot-{lot_id}-result .bid-result--accepted")
                assert "최고 입찰자입니다" in await page.inner_text(f"#lot-{lot_id}-result")
                await page.wait_for_selector(f'#lot-{lot_id}-notice [data-notice="winning"]')
                await screenshot(page, "lot-running-phone.png")

                assert (await member_b.bid(lot_id, 20_000)).status_code == 201
                await page.wait_for_selector(f'#lot-{lot_id}-notice [data-notice="outbid"]')
                await page.wait_for_selector(f'#lot-{lot_id}-price[data-price-won="15500"]')
                await page.wait_for_function(
                    f"!document.querySelector('#lot-{lot_id}-result .bid-result--accepted')"
                )
                assert "최고 입찰자" not in await page.inner_text(f"#lot-{lot_id}-result")

                assert await problems.htmx_errors() == []
                assert problems.console == []
                assert problems.failed == []
            finally:
                await browser.close()
    finally:
        await server.stop()


async def test_close_replaces_form_live(
    settings, world: World, make_lot: LotFactory, clients, chromium_path: Path, pg_pool, engine_live
) -> None:
    """When the lot closes, the open page swaps its bid form for the result without a reload."""
    server = await start_server(settings)
    try:
        lot_id = await make_lot(
            end_at=datetime.now(timezone.utc) + timedelta(seconds=4), soft_close_window_s=0, extension_s=0
        )
        assert (await (await clients(server, world.members[0])).bid(lot_id, 12_000)).status_code == 201
        watcher = await clients(server, world.members[1])
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
            try:
                page = await (await member_context(browser, watcher, server, PHONE)).new_page()
                desktop = await (await member_context(browser, None, server, DESKTOP)).new_page()
                problems = PageProblems(page)
                for lot_page in (page, desktop):
                    await lot_page.goto(f"{server.base_url}/lots/{lot_id}")
                    await lot_page.wait_for_selector(f'#lot-{lot_id}-connection[data-state="open"]', state="attached")

                assert await close_now(pg_pool, engine_live, settings, lot_id) == "sold"

                for lot_page in (page, desktop):
                    await lot_page.wait_for_selector(f'#lot-{lot_id}-bidding[data-status="sold"]')
                    assert await lot_page.locator(f"#lot-{lot_id}-bid-form").count() == 0
                    assert "10,000원에 낙찰되었습니다. 낙찰자: 김*수" in await lot_page.inner_text(f"#lot-{lot_id}-bidding")
                    assert (await lot_page.inner_text(f"#lot-{lot_id}-price .lot-price__label")).strip() == "낙찰가"
                    end = (await lot_page.inner_text(f"#lot-{lot_id}-end")).strip()
                    assert end.startswith("마감: ")
                    assert end.count("마감") == 1

                await screenshot(page, "lot-ended-phone.png")
                await screenshot(desktop, "lot-ended-desktop.png")
                assert await problems.htmx_errors() == []
                assert problems.console == []
            finally:
                await browser.close()
    finally:
        await server.stop()


async def test_outbox_readable_on_phone(
    settings, world: World, clients, chromium_path: Path, pg_pool, tmp_path: Path
) -> None:
    """Mail bodies use the site font with wrapping, and the outbox table becomes cards on a 390 px screen."""
    server = await start_server(settings, data_dir=tmp_path)
    try:
        mail = EmailMessage()
        mail["Subject"] = "[광산구 장터] 경매가 종료되었습니다: 햇김"
        mail["Delivered-To"] = "member@example.com"
        mail.set_content("경매가 종료되었습니다: #3 「[경매] 햇김 선물세트」\n" + "아쉽게도 이번 경매에는 낙찰되지 않았습니다. " * 4)
        mailbox.Maildir(tmp_path / "mail", create=True).add(mail)
        await pg_pool.execute(
            "INSERT INTO outbox (event_key, recipient, subject, body_text, status, sent_at)"
            " VALUES ('lot:browser:lost', 'a-rather-long-address@example.com', '[광산구 장터] 경매가 종료되었습니다', '본문',"
            " 'sent', now()) ON CONFLICT DO NOTHING"
        )
        staff = await clients(server, world.staff)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
            try:
                for viewport, name in ((PHONE, "outbox-phone.png"), (DESKTOP, "outbox-desktop.png")):
                    page = await (await member_context(browser, staff, server, viewport)).new_page()
                    await page.goto(f"{server.base_url}/staff/outbox")
                    style = await page.evaluate(
                        """async () => {
                            await document.fonts.ready;
                            const body = getComputedStyle(document.querySelector(".mail-body"));
                            const row = document.querySelector(".outbox-table tbody tr");
                            return {family: body.fontFamily, whiteSpace: body.whiteSpace,
                                    korean: document.fonts.check('16px "Pretendard Variable"', "경매가 종료"),
                                    rowDisplay: getComputedStyle(row).display,
                                    scrollWidth: document.documentElement.scrollWidth};
                        }"""
                    )
                    assert style["family"].startswith('"Pretendard Variable"'), style
                    assert style["whiteSpace"] == "pre-wrap", style
                    assert style["korean"], style
                    if viewport is PHONE:
                        assert style["rowDisplay"] == "block", style
                        assert style["scrollWidth"] <= PHONE["width"], style
                    else:
                        assert style["rowDisplay"] == "table-row", style
                    await screenshot(page, name)
            finally:
                await browser.close()
    finally:
        await server.stop()

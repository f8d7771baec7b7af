"""The staff list of group buys in headless Chromium: the htmx cancel updates its row in place."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Dialog, Page, async_playwright

from engine.auction.ledger import LedgerConsumer
from engine.groupbuy.ledger import CAMPAIGN_LEDGER
from engine.groupbuy.live import CampaignLive
from tests.browser.conftest import CHROMIUM_ARGS
from tests.web.live.campaign_fixtures import CampaignFactory, engine_campaigns, make_campaign  # noqa: F401
from tests.web.live.conftest import LiveServer, SignedIn, World, start_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REASON = "산지 태풍 피해로 출하가 어렵습니다"
DESKTOP = {"width": 1280, "height": 900}
NARROW_PHONE = {"width": 420, "height": 900}
SCREENSHOT_DIR = Path(os.environ.get("JANGTEO_SCREENSHOT_DIR") or tempfile.mkdtemp(prefix="jangteo-shots-"))


@pytest_asyncio.fixture
async def server(settings) -> AsyncIterator[LiveServer]:  # type: ignore[no-untyped-def]
    live = await start_server(settings)
    yield live
    await live.stop()


@pytest_asyncio.fixture
async def browser(chromium_path: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def staff_page(browser: Browser, staff: SignedIn, viewport: dict[str, int], script_errors: list[str]) -> Page:
    """Open /staff/campaigns in a new context that carries the staff session cookie.

    Uncaught script errors of the page are appended to `script_errors`.
    """
    context = await browser.new_context(locale="ko-KR", viewport=viewport)  # type: ignore[arg-type]
    await context.add_cookies(
        [{"name": name, "value": value, "url": staff.server.base_url} for name, value in staff.http.cookies.items()]
    )
    page = await context.new_page()
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    await page.goto(f"{staff.server.base_url}/staff/campaigns")
    return page


async def run_ledger_consumer(live: CampaignLive, pg_pool: asyncpg.Pool, stop: asyncio.Event) -> None:
    """Store the campaign streams in `pledge_events` until `stop` is set, as the worker's consumer does."""
    consumer = LedgerConsumer(pg_pool, live.redis, live.keys, block_ms=50, claim_idle_s=0.2, ledger=CAMPAIGN_LEDGER)
    while not stop.is_set():
        await consumer.drain()
        await asyncio.sleep(0.02)


async def cancel_in_row(page: Page, campaign_id: int, dialogs: list[str], reason: str = REASON) -> None:
    """Type `reason` into the campaign's row, press its cancel button and accept the confirm dialog."""

    async def accept(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.accept()

    page.once("dialog", accept)
    row = page.locator(f"#staff-campaign-{campaign_id}")
    await row.locator("input[name=reason]").fill(reason)
    await row.locator("button[type=submit]").click()


async def test_htmx_cancel_updates_row(
    server: LiveServer, browser: Browser, world: World, make_campaign: CampaignFactory,
    engine_campaigns: CampaignLive, pg_pool: asyncpg.Pool, clients,
) -> None:
    """After a cancel, the row shows 취소됨 without its form, and the other rows keep theirs, with no reload."""
    cancelled = await make_campaign(title="취소할 공동구매")
    waiting = await make_campaign(title="정산을 기다릴 공동구매")
    untouched = await make_campaign(title="그대로 둘 공동구매")
    staff = await clients(server, world.staff)
    script_errors: list[str] = []
    page = await staff_page(browser, staff, DESKTOP, script_errors)
    dialogs: list[str] = []
    for campaign_id in (cancelled, waiting, untouched):
        assert await page.locator(f"#staff-campaign-{campaign_id} form").count() == 1

    stop = asyncio.Event()
    consumer = asyncio.create_task(run_ledger_consumer(engine_campaigns, pg_pool, stop))
    try:
        await cancel_in_row(page, cancelled, dialogs)
        await page.wait_for_selector(f'#staff-campaign-{cancelled} [data-status="cancelled"]')
    finally:
        stop.set()
        await consumer

    row = page.locator(f"#staff-campaign-{cancelled}")
    assert await row.locator("form").count() == 0
    assert (await row.locator(f"#campaign-{cancelled}-status").inner_text()).strip() == "취소됨"
    assert f"#{cancelled} 공동구매를 취소했습니다" in await page.inner_text("#staff-campaign-result")
    assert dialogs == [
        f"#{cancelled} 공동구매를 취소할까요? 약속 받기가 바로 중지되고, 모든 약속이 풀리며 미리 결제한 금액은 전액 환불됩니다."
    ]
    assert await pg_pool.fetchval("SELECT status FROM campaigns WHERE id = $1", cancelled) == "cancelled"

    # With no ledger consumer running, the settlement is left to the worker's closer and the
    # stored status stays open. Redis has stopped the pledges, so the row shows it as cancelled.
    await cancel_in_row(page, waiting, dialogs)
    await page.wait_for_selector(f'#staff-campaign-{waiting} [data-status="cancelled"]')
    assert await page.locator(f"#staff-campaign-{waiting} form").count() == 0
    assert await pg_pool.fetchval("SELECT status FROM campaigns WHERE id = $1", waiting) == "open"
    assert (await engine_campaigns.snapshot(waiting)).status == "cancelled"  # type: ignore[union-attr]

    assert await page.locator(f"#staff-campaign-{untouched} form").count() == 1
    assert await page.locator(f'#staff-campaign-{untouched} [data-status="open"]').count() == 1
    assert await page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert script_errors == []



async def test_rejected_cancel_shows_error(
    server: LiveServer, browser: Browser, world: World, make_campaign: CampaignFactory,
    pg_pool: asyncpg.Pool, clients,
) -> None:
    """A blank reason passes the browser's `required` check, and the 422 reply is shown while the row keeps its form."""
    campaign_id = await make_campaign(title="사유 없이 취소할 공동구매")
    staff = await clients(server, world.staff)
    script_errors: list[str] = []
    page = await staff_page(browser, staff, DESKTOP, script_errors)
    dialogs: list[str] = []

    await cancel_in_row(page, campaign_id, dialogs, reason="   ")
    await page.wait_for_selector('#staff-campaign-result [data-error-code="invalid_cancel_reason"]')

    assert "취소 사유를 1자에서 500자 사이로 입력해 주세요" in await page.inner_text("#staff-campaign-result")
    assert await page.locator(f"#staff-campaign-{campaign_id} form").count() == 1
    assert await page.locator(f'#staff-campaign-{campaign_id} [data-status="open"]').count() == 1
    assert await pg_pool.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id) == "open"
    assert script_errors == []


async def test_product_select_fits_phone(server: LiveServer, browser: Browser, world: World, clients) -> None:
    """On a 420 px wide screen, the creation form's product select, whose options are long, stays on screen."""
    staff = await clients(server, world.staff)
    script_errors: list[str] = []
    page = await staff_page(browser, staff, NARROW_PHONE, script_errors)
    select = page.locator("#field-product_id")
    longest_option = await select.evaluate("s => Math.max(...Array.from(s.options, o => o.text.length))")
    assert longest_option > 40

    box = await select.bounding_box()
    page_width = await page.evaluate("document.documentElement.scrollWidth")

    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    await select.scroll_into_view_if_needed()
    await page.screenshot(path=str(SCREENSHOT_DIR / "staff-campaign-form-420.png"))
    print(f"screenshot in {SCREENSHOT_DIR}")
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= NARROW_PHONE["width"]
    assert page_width <= NARROW_PHONE["width"]
    assert script_errors == []

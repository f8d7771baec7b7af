"""The coordinator's roster page in Chromium: a neighbour's join appears live; roster and join pages pass axe."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

from engine.config import PROJECT_ROOT
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.complexorders.conftest import ComplexFactory, ComplexWorld
from tests.complexorders.test_complex_web import lines, post
from tests.web.live.conftest import start_server

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AXE_SCRIPT = PROJECT_ROOT / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture
def chromium() -> Path:
    """The Chromium binary, or a skip (a failure with REQUIRE_BROWSER=1) when it is missing."""
    if not CHROMIUM.exists():
        reason = f"headless Chromium not found at {CHROMIUM}"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " and REQUIRE_BROWSER=1")
        pytest.skip(reason)
    return CHROMIUM


async def serious_violations(page: Page) -> list[str]:
    await page.add_script_tag(path=str(AXE_SCRIPT))
    results = await page.evaluate("async () => await axe.run(document)")
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} at "
        + ", ".join(node["target"][0] for node in violation["nodes"][:3])
        for violation in results["violations"]
        if violation["impact"] in ("serious", "critical")
    ]


async def test_roster_gains_row_without_reload(
    settings, complex_world: ComplexWorld, make_complex: ComplexFactory, clients, chromium: Path
) -> None:
    """A neighbour's join adds a row to the open roster page; roster and join pages have no serious axe findings."""
    server = await start_server(settings)
    try:
        complex_order = await make_complex()
        coordinator = await clients(server, complex_world.coordinator)
        neighbour = await clients(server, complex_world.members[6])
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(locale="ko-KR", viewport={"width": 414, "height": 1100})
                await context.add_cookies([{"name": name, "value": value, "url": server.base_url}
                                           for name, value in coordinator.http.cookies.items()])
                page = await context.new_page()
                await page.goto(f"{server.base_url}/complex/{complex_order.id}")
                roster = f"#complex-{complex_order.id}-roster"
                # The websocket's first message replaces the roster list; wait until it is connected.
                await page.wait_for_function(
                    "() => window.htmx && document.querySelector('[ws-connect]')"
                    " && document.querySelector('[ws-connect]')['htmx-internal-data']"
                    " && document.querySelector('[ws-connect]')['htmx-internal-data'].webSocket"
                    " && document.querySelector('[ws-connect]')['htmx-internal-data'].webSocket.socket.readyState === 1"
                )
                assert await page.locator(f"{roster} > li").count() == 0

                order = {"items": [{"id": item.id} for item in complex_order.items]}
                joined = await post(neighbour, f"/api/v1/complex-orders/{complex_order.id}/participants",
                                    {"building": "104", "unit": "803", "phone": "01077778888",
                                     "lines": lines(order, 1, 2, 0)})
                assert joined.status_code == 201, joined.text
                row = page.locator(f"#complex-{complex_order.id}-row-{joined.json()['id']}")
                await row.wait_for()
                assert "104동 803호" in await row.inner_text()
                assert await page.locator(f"{roster} > li").count() == 1
                assert "104동 803호" in await page.inner_text(f"#complex-{complex_order.id}-announce")
                assert not await serious_violations(page), "roster page"

                join_context = await browser.new_context(locale="ko-KR", viewport={"width": 414, "height": 1100})
                await join_context.add_cookies([{"name": name, "value": value, "url": server.base_url}
                                                for name, value in neighbour.http.cookies.items()])
                join_page = await join_context.new_page()
                await join_page.goto(f"{server.base_url}/c/{complex_order.code}")
                assert "104동 8**호" in await join_page.inner_text("main")
                violations = await serious_violations(join_page)
                assert not violations, "join page:\n" + "\n".join(violations)
            finally:
                await browser.close()
    finally:
        await server.stop()

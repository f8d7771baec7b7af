"""Browser tests: a real server (uvicorn in-process) and headless Chromium via Playwright.

The tests skip, with the reason shown, when /usr/bin/chromium is missing, unless
REQUIRE_BROWSER=1, which turns the missing browser into a failure.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The live tests' fixtures (accounts, lots, servers, signed-in clients).
from tests.web.live.conftest import clients, engine_live, make_lot, world  # noqa: F401

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


@pytest.fixture
def chromium_path() -> Path:
    """The Chromium binary, or a skip (a failure with REQUIRE_BROWSER=1) when it is missing."""
    if not CHROMIUM.exists():
        reason = f"headless Chromium not found at {CHROMIUM}"
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " and REQUIRE_BROWSER=1")
        pytest.skip(reason)
    return CHROMIUM

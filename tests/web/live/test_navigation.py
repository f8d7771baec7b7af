"""The supplier's navigation link and the site icon."""

from __future__ import annotations

import pytest

from tests.web.live.conftest import LiveServer, World

pytestmark = pytest.mark.slow


async def test_supplier_nav_leads_to_lots(live_server: LiveServer, world: World, clients) -> None:
    """The supplier's nav link points at /supplier/lots, and /supplier redirects there."""
    supplier = await clients(live_server, world.supplier)

    page = (await supplier.http.get("/lots")).text
    assert '<a href="/supplier/lots">판매자</a>' in page
    response = await supplier.http.get("/supplier")
    assert response.status_code == 303
    assert response.headers["location"] == "/supplier/lots"
    assert (await supplier.http.get("/supplier", follow_redirects=True)).status_code == 200


async def test_favicon_served(live_server: LiveServer, clients) -> None:
    """Pages link an SVG icon, and /favicon.ico serves it instead of a 404."""
    viewer = await clients(live_server, None)
    page = (await viewer.http.get("/lots")).text
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    for path in ("/favicon.ico", "/static/favicon.svg"):
        response = await viewer.http.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("image/svg+xml")
        assert b"<svg" in response.content

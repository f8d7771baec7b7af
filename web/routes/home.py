"""The home page (a plain list of running lots), the role areas' entry points and the favicon.

NOTE: the list shows the start price from PostgreSQL; the live price is in Redis
and belongs to the lot pages, which replace this list.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Route

from web.security import role_required

LOT_LIST_LIMIT = 50
FAVICON_PATH = Path(__file__).resolve().parent.parent / "static" / "favicon.svg"
FAVICON_MAX_AGE_S = 86_400


async def home(request: Request) -> Response:
    lots = await request.app.state.db.fetch(
        "SELECT id, title, start_price_won, status, start_at, end_at FROM lots"
        " WHERE status IN ('scheduled', 'open') ORDER BY end_at, id LIMIT $1",
        LOT_LIST_LIMIT,
    )
    return request.app.state.templates.TemplateResponse(request, "home.html", {"lots": lots})


@role_required("staff")
async def staff_console(request: Request) -> Response:
    return request.app.state.templates.TemplateResponse(request, "placeholder.html", {"area": "staff"})


@role_required("supplier")
async def supplier_portal(request: Request) -> Response:
    """Send suppliers to their lots page, the working part of the supplier area so far."""
    return RedirectResponse("/supplier/lots", status_code=303)


async def favicon(request: Request) -> Response:
    """Serve the SVG icon at /favicon.ico, where browsers look when a page names no icon."""
    return FileResponse(
        FAVICON_PATH, media_type="image/svg+xml", headers={"Cache-Control": f"public, max-age={FAVICON_MAX_AGE_S}"}
    )


routes = [
    Route("/", home, methods=["GET"], name="home"),
    Route("/staff", staff_console, methods=["GET"], name="staff_console"),
    Route("/supplier", supplier_portal, methods=["GET"], name="supplier_portal"),
    Route("/favicon.ico", favicon, methods=["GET"], name="favicon"),
]

"""The home page (a plain list of running lots) and placeholders of the role areas.

NOTE: the list shows the start price from PostgreSQL; the live price is in Redis
and belongs to the lot pages, which replace this list.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from web.security import role_required

LOT_LIST_LIMIT = 50


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
    return request.app.state.templates.TemplateResponse(request, "placeholder.html", {"area": "supplier"})


routes = [
    Route("/", home, methods=["GET"], name="home"),
    Route("/staff", staff_console, methods=["GET"], name="staff_console"),
    Route("/supplier", supplier_portal, methods=["GET"], name="supplier_portal"),
]

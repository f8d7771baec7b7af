"""Page routes (HTML), one module per area; `page_routes()` lists them for the app."""

from __future__ import annotations

from starlette.routing import BaseRoute


def page_routes() -> list[BaseRoute]:
    from web.routes import auth, health, home

    return [*health.routes, *auth.routes, *home.routes]

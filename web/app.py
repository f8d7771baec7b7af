"""The Starlette application factory and its lifespan (PostgreSQL, Redis, templates)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from redis.asyncio import BlockingConnectionPool, Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from engine.auction import pipelined
from engine.auction.batching import ScriptBatcher
from engine.auction.pipelined import PipelinedConnection
from engine.config import PROJECT_ROOT, Settings, get_settings
from engine.db.migrate import apply_migrations
from engine.db.pool import create_pool
from engine.keys import Keys
from web.api import api_routes, ws_bids, ws_pledges
from web.csrf import CSRFMiddleware
from web.errors import EXCEPTION_HANDLERS
from web.i18n import LocaleMiddleware, ensure_compiled
from web.live import start_live, stop_live
from web.metrics import RequestLogMiddleware
from web.ratelimit import create_limiter
from web.routes import page_routes
from web.security import BodySizeLimitMiddleware
from web.sessions import SessionMiddleware
from web.templating import LocalizedTemplates

log = logging.getLogger("jangteo.web")
# Redis connections per web process, and how long a request waits for a free one (s).
REDIS_POOL_SIZE = 200
REDIS_POOL_TIMEOUT_S = 5.0

STATIC_DIR = Path(__file__).parent / "static"
NODE_MODULES = PROJECT_ROOT / "node_modules"
# URL name under /static/vendor/ -> folder inside node_modules (only what pages load).
VENDOR_DIRS = {
    "htmx": "htmx.org/dist",
    "htmx-ext-ws": "htmx-ext-ws/dist",
    "pretendard": "pretendard/dist/web/variable",
    "axe-core": "axe-core",
}
# Path prefixes whose unsafe requests skip the CSRF check (server-to-server callers).
CSRF_EXEMPT_PREFIXES: tuple[str, ...] = ()


def static_routes() -> list[BaseRoute]:
    routes: list[BaseRoute] = []
    for name, relative in VENDOR_DIRS.items():
        directory = NODE_MODULES / relative
        if not directory.is_dir():
            log.warning("vendor files missing name=%s path=%s (run npm ci)", name, directory)
        routes.append(Mount(f"/static/vendor/{name}", app=StaticFiles(directory=directory, check_dir=False), name=f"vendor-{name}"))
    routes.append(Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"))
    return routes


def create_app(settings: Settings | None = None) -> Starlette:
    """Build the web app; the lifespan connects to PostgreSQL and Redis.

    Starting fails if either service is unreachable or a migration fails, so a
    process that runs is one that can serve.
    """
    settings = settings or get_settings()
    database_url, redis_url = settings.database_url, settings.redis_url
    if not database_url or not redis_url:
        raise RuntimeError(
            "create_app needs settings.database_url and settings.redis_url;"
            " start the services with `python -m embedded` or set DATABASE_URL and REDIS_URL"
        )
    ensure_compiled()
    templates = LocalizedTemplates()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = await create_pool(database_url)
        # redis-py's default asyncio pool raises MaxConnectionsError once 100 connections
        # are in use (100 concurrent bidders do that); a blocking pool makes a burst wait.
        redis: Redis = Redis.from_pool(
            BlockingConnectionPool.from_url(redis_url, max_connections=REDIS_POOL_SIZE, timeout=REDIS_POOL_TIMEOUT_S)
        )
        # Batched calls (bids, pledges, session checks, rate limits) share one connection
        # that keeps several pipelines in flight (engine/auction/pipelined.py).
        batch_connection = PipelinedConnection(redis) if pipelined.available() else None
        try:
            applied = await apply_migrations(db)
            await redis.ping()
            keys = Keys(settings.redis_prefix, settings.redis_shards)
            app.state.settings = settings
            app.state.db = db
            app.state.redis = redis
            app.state.keys = keys
            app.state.limiter = create_limiter(redis, keys.rate_limit_prefix)
            # One pipeline per event-loop pass for session reads, rate limits and scripts.
            app.state.batcher = ScriptBatcher(redis, connection=batch_connection)
            app.state.templates = templates
            await start_live(app)
            log.info("web started migrations_applied=%d", len(applied))
            yield
        finally:
            await stop_live(app)
            if batch_connection is not None:
                await batch_connection.close()
            await redis.aclose()
            await db.close()
            log.info("web stopped")

    # Outermost first. Locale comes before the body limit so a 413 page is localized;
    # sessions come before CSRF, which compares against the session's token.
    middleware = [
        Middleware(RequestLogMiddleware),
        Middleware(LocaleMiddleware, cookie_secure=settings.cookie_secure),
        Middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes),
        Middleware(SessionMiddleware),
        Middleware(CSRFMiddleware, exempt_prefixes=CSRF_EXEMPT_PREFIXES),
    ]
    app = Starlette(
        routes=[*page_routes(), *ws_bids.routes, *ws_pledges.routes, Mount("/api/v1", routes=api_routes()), *static_routes()],
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    # Set before the lifespan too, so error pages can render if start-up fails half-way.
    app.state.settings = settings
    app.state.templates = templates
    return app

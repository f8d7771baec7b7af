"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

READY_CHECK_TIMEOUT_S = 2.0

log = logging.getLogger("jangteo.web.health")


async def healthz(request: Request) -> JSONResponse:
    """Return 200 while the process runs and its event loop responds."""
    return JSONResponse({"status": "ok"})


async def _check_db(request: Request) -> bool:
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            return await request.app.state.db.fetchval("SELECT 1") == 1
    except (asyncpg.PostgresError, OSError, TimeoutError) as exc:
        log.warning("readiness check failed service=postgresql error=%s", type(exc).__name__)
        return False


async def _check_redis(request: Request) -> bool:
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            return bool(await request.app.state.redis.ping())
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("readiness check failed service=redis error=%s", type(exc).__name__)
        return False


async def readyz(request: Request) -> JSONResponse:
    """Return 200 when PostgreSQL runs `SELECT 1` and Redis replies to PING, else 503."""
    checks = {"postgresql": await _check_db(request), "redis": await _check_redis(request)}
    ready = all(checks.values())
    body = {"status": "ok" if ready else "unavailable", "checks": {name: "ok" if ok else "failed" for name, ok in checks.items()}}
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]

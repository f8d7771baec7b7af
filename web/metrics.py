"""Prometheus metrics of the web process, and the middleware that logs each request.

Metrics live in the default `prometheus_client` registry of this process and are
served by `/metrics`. NOTE: with several web processes each one serves its own
numbers; scrape every process (multiprocess mode is not set up).
"""

from __future__ import annotations

import logging
import secrets
import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BIDS = Counter(
    "jangteo_bids",
    "Bids handled by this process, by result (accepted or rejected) and error code.",
    ["result", "code"],
)
WS_CONNECTIONS = Gauge("jangteo_ws_connections", "Open websocket connections of this process.")
FANOUT_SECONDS = Histogram(
    "jangteo_fanout_seconds",
    "Time from receiving a live event to having sent it to every local websocket.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
HTTP_REQUESTS = Counter(
    "jangteo_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "jangteo_http_request_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
)

log = logging.getLogger("jangteo.web.access")


def _route_template(scope: Scope) -> str:
    # The matched route's path template (for example /lots/{lot_id}) keeps label
    # cardinality bounded; unmatched paths share one label.
    route = scope.get("route")
    path_format = getattr(route, "path_format", None)
    if not path_format:
        return "unmatched"
    # Inside a Mount the route's template is relative; root_path contains the mount path.
    return f"{scope.get('root_path', '')}{path_format}"


class RequestLogMiddleware:
    """Log one line per HTTP request and record the request metrics.

    Each request gets an id (returned as `X-Request-Id` and stored in
    `request.state.request_id`). The line carries no personal data: no address, no
    query string, no user name.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed_s = time.perf_counter() - started
            route = _route_template(scope)
            method = scope["method"]
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_REQUEST_SECONDS.labels(method, route).observe(elapsed_s)
            user = scope.get("state", {}).get("user")
            log.info(
                "request id=%s method=%s route=%s status=%s duration_ms=%.1f user_id=%s",
                request_id,
                method,
                route,
                status,
                elapsed_s * 1000,
                user.id if user else "-",
            )

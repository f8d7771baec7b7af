"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

import httpx


async def test_healthz_ok(client: httpx.AsyncClient) -> None:
    """/healthz returns 200 while the process runs."""
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_ok(client: httpx.AsyncClient) -> None:
    """/readyz returns 200 when PostgreSQL and Redis both respond."""
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"postgresql": "ok", "redis": "ok"}}


async def test_metrics_exposes_shared_metrics(client: httpx.AsyncClient) -> None:
    """/metrics serves the Prometheus text format with the bid, websocket and fan-out metrics."""
    from web.metrics import BIDS

    BIDS.labels(result="rejected", code="test_only").inc()
    await client.get("/healthz")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'jangteo_bids_total{code="test_only",result="rejected"}' in text
    assert "jangteo_ws_connections" in text
    assert "jangteo_fanout_seconds_bucket" in text
    assert 'jangteo_http_requests_total{method="GET",route="/healthz",status="200"}' in text


async def test_request_id_header(client: httpx.AsyncClient) -> None:
    """Every response carries an X-Request-Id."""
    response = await client.get("/healthz")
    assert len(response.headers["x-request-id"]) == 16


async def test_vendor_files_served_locally(client: httpx.AsyncClient) -> None:
    """htmx, its websocket extension and the Pretendard stylesheet come from /static/vendor."""
    for path in (
        "/static/vendor/htmx/htmx.min.js",
        "/static/vendor/htmx-ext-ws/ws.min.js",
        "/static/vendor/pretendard/pretendardvariable-dynamic-subset.css",
        "/static/vendor/axe-core/axe.min.js",
        "/static/css/app.css",
        "/static/js/app.js",
    ):
        response = await client.get(path)
        assert response.status_code == 200, path

"""`Idempotency-Key` on the JSON API, against a real server and PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timedelta, timezone

import asyncpg
import pytest

from tests.web.live.conftest import LiveServer, World

pytestmark = pytest.mark.slow


def lot_body(world: World, title: str) -> dict[str, object]:
    start = datetime.now(timezone.utc) + timedelta(hours=1)
    return {
        "product_id": world.product_id, "title": title, "start_price_won": 20_000,
        "start_at": start.isoformat(), "end_at": (start + timedelta(hours=2)).isoformat(),
    }


async def lots_titled(db: asyncpg.Pool, title: str) -> int:
    return await db.fetchval("SELECT count(*) FROM lots WHERE title = $1", title)


def headers(client, key: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"X-CSRF-Token": client.csrf_token, "Idempotency-Key": key}


async def test_retried_lot_creation_makes_one_lot(
    live_server: LiveServer, world: World, clients, pg_pool: asyncpg.Pool
) -> None:
    """A retry with the same key and body returns the first response and creates no second lot."""
    staff = await clients(live_server, world.staff)
    title = f"멱등 경매 {secrets.token_hex(3)}"
    key = f"create-{secrets.token_hex(8)}"

    body = lot_body(world, title)

    first = await staff.http.post("/api/v1/lots", json=body, headers=headers(staff, key))
    retry = await staff.http.post("/api/v1/lots", json=body, headers=headers(staff, key))

    assert first.status_code == 201, first.text
    assert retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await lots_titled(pg_pool, title) == 1


async def test_same_key_other_body_rejected(
    live_server: LiveServer, world: World, clients, pg_pool: asyncpg.Pool
) -> None:
    """The same key with a different body is rejected with 422 idempotency_key_reused and creates nothing."""
    staff = await clients(live_server, world.staff)
    title = f"멱등 경매 {secrets.token_hex(3)}"
    key = f"create-{secrets.token_hex(8)}"
    body = lot_body(world, title)
    first = await staff.http.post("/api/v1/lots", json=body, headers=headers(staff, key))
    assert first.status_code == 201, first.text

    other = await staff.http.post("/api/v1/lots", json={**body, "title": title + " 2"}, headers=headers(staff, key))

    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert await lots_titled(pg_pool, title + " 2") == 0


async def test_concurrent_duplicates_make_one_lot(
    live_server: LiveServer, world: World, clients, pg_pool: asyncpg.Pool
) -> None:
    """Requests sent at once with one key create one lot; the others replay it or get 409 in progress."""
    staff = await clients(live_server, world.staff)
    title = f"동시 경매 {secrets.token_hex(3)}"
    key = f"create-{secrets.token_hex(8)}"
    body = lot_body(world, title)

    responses = await asyncio.gather(*(
        staff.http.post("/api/v1/lots", json=body, headers=headers(staff, key)) for _ in range(5)
    ))

    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(201) >= 1
    assert set(statuses) <= {201, 409}
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "idempotency_key_in_progress"
    assert await lots_titled(pg_pool, title) == 1


async def test_client_error_stored_and_replayed(live_server: LiveServer, world: World, clients) -> None:
    """A 4xx result is stored too: the retry returns the same error without running the handler."""
    staff = await clients(live_server, world.staff)
    key = f"cancel-{secrets.token_hex(8)}"
    path = "/api/v1/lots/999999999/cancel"

    first = await staff.http.post(path, headers=headers(staff, key))
    retry = await staff.http.post(path, headers=headers(staff, key))

    assert first.status_code == 404
    assert retry.status_code == 404
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"


async def test_invalid_key_rejected(live_server: LiveServer, world: World, clients) -> None:
    """A key with characters outside [A-Za-z0-9_-:.] or over 128 characters is rejected with 400."""
    staff = await clients(live_server, world.staff)
    for key in ("has space", "x" * 129, "a/b"):
        response = await staff.http.post(
            "/api/v1/lots/1/cancel", headers={"X-CSRF-Token": staff.csrf_token, "Idempotency-Key": key}
        )
        assert response.status_code == 400, key
        assert response.json()["error"]["code"] == "invalid_idempotency_key", key


async def test_openapi_documents_idempotency_key(live_server: LiveServer, clients) -> None:
    """Unsafe API operations reference the reusable IdempotencyKey header parameter, except bids and sessions."""
    anonymous = await clients(live_server, None)
    document = (await anonymous.http.get("/api/v1/openapi.json")).json()
    reference = {"$ref": "#/components/parameters/IdempotencyKey"}

    assert document["components"]["parameters"]["IdempotencyKey"]["name"] == "Idempotency-Key"
    assert reference in document["paths"]["/api/v1/lots"]["post"]["parameters"]
    assert reference not in document["paths"]["/api/v1/lots/{lot_id}/bids"]["post"]["parameters"]
    assert reference not in document["paths"]["/api/v1/session"]["post"]["parameters"]
    assert "parameters" not in document["paths"]["/api/v1/lots"]["get"]

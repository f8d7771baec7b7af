"""The web app under its lifespan, and HTTP clients driving it through ASGI."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from starlette.applications import Starlette

from engine.config import Settings
from web.app import create_app

_CSRF_FIELD_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


async def start_app(settings: Settings) -> AsyncIterator[Starlette]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest_asyncio.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    """One app for the run, started with its lifespan (pool, migrations, Redis)."""
    async for started in start_app(settings):
        yield started


@pytest_asyncio.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client with its own cookie jar (a fresh browser) on the shared app."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http_client:
        yield http_client


def csrf_from_page(html: str) -> str:
    match = _CSRF_FIELD_RE.search(html)
    if match is None:
        raise AssertionError("no csrf_token field in the page")
    return match.group(1)


async def page_csrf(client: httpx.AsyncClient, path: str = "/login") -> str:
    response = await client.get(path)
    response.raise_for_status()
    return csrf_from_page(response.text)


async def api_csrf(client: httpx.AsyncClient) -> str:
    response = await client.get("/api/v1/session")
    response.raise_for_status()
    return response.json()["csrf_token"]


def unique_email(label: str = "user") -> str:
    return f"{label}-{secrets.token_hex(5)}@example.com"


async def register_via_api(client: httpx.AsyncClient, email: str, password: str = "correct horse", name: str = "김민수") -> dict:
    token = await api_csrf(client)
    response = await client.post(
        "/api/v1/register",
        json={"email": email, "password": password, "display_name": name},
        headers={"X-CSRF-Token": token},
    )
    assert response.status_code == 201, response.text
    return response.json()

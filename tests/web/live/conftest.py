"""Real uvicorn servers (in-process, each with its own app and Redis connections),
seeded accounts and lots, and signed-in HTTP and websocket clients for the live tests."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import asyncpg
import httpx
import pytest_asyncio
import redis.asyncio
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from embedded.common import LOOPBACK
from engine.accounts import hash_password
from engine.actors import STAFF, Actor
from engine.auction.live import AuctionLive
from engine.auction.lots import LotDraft, create_lot
from engine.config import Settings
from engine.keys import Keys
from web.app import create_app
from web.live.ws_protocol import uvicorn_websocket_options

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Account:
    user_id: int
    email: str
    display_name: str
    role: str
    supplier_id: int | None = None


@dataclass
class World:
    """Accounts and a product shared by the live tests (lots are made per test)."""

    supplier_id: int
    product_id: int
    supplier: Account
    staff: Account
    members: list[Account] = field(default_factory=list)


async def insert_user(db: asyncpg.Pool, display_name: str, role: str = "member", supplier_id: int | None = None) -> Account:
    email = f"{role}-{secrets.token_hex(5)}@example.com"
    user_id = await db.fetchval(
        "INSERT INTO users (email, password_hash, display_name, role, supplier_id)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
        email, hash_password(PASSWORD), display_name, role, supplier_id,
    )
    return Account(user_id, email, display_name, role, supplier_id)


@pytest_asyncio.fixture(scope="session")
async def world(pg_pool: asyncpg.Pool) -> World:
    """One approved supplier with a product, its supplier account, staff and members."""
    category_id = await pg_pool.fetchval(
        "INSERT INTO categories (code, name_ko, name_en) VALUES ($1, '특산품', 'Specialties') RETURNING id",
        f"live-{secrets.token_hex(4)}",
    )
    supplier_id = await pg_pool.fetchval(
        "INSERT INTO suppliers (name, business_no, representative, phone, email, address, kind, is_local, status)"
        " VALUES ('광산 김 영어조합', $1, '정해숙', '0629601234', 'kim@example.com', '광주광역시 광산구', 'farm', true, 'approved')"
        " RETURNING id",
        f"{secrets.randbelow(10**10):010d}",
    )
    product_id = await pg_pool.fetchval(
        "INSERT INTO products (supplier_id, category_id, name, kind, is_local, origin_label, unit, price_won, status)"
        " VALUES ($1, $2, '광산 햇김 선물세트', 'farm', true, '국내산(광주광역시 광산구)', '1세트', 30000, 'approved')"
        " RETURNING id",
        supplier_id, category_id,
    )
    supplier = await insert_user(pg_pool, "정해숙", "supplier", supplier_id)
    staff = await insert_user(pg_pool, "장터 운영자", "staff")
    members = [await insert_user(pg_pool, name) for name in ("김민수", "이서연", "박정민", "최유진")]
    return World(supplier_id, product_id, supplier, staff, members)


@pytest_asyncio.fixture(scope="session")
async def engine_live(redis_url: str, settings: Settings) -> AsyncIterator[AuctionLive]:
    """An `AuctionLive` of the test itself (its own Redis client), for seeding lots."""
    client = redis.asyncio.Redis.from_url(redis_url)
    yield AuctionLive(client, Keys(settings.redis_prefix, settings.redis_shards))
    await client.aclose()


LotFactory = Callable[..., Awaitable[int]]


@pytest_asyncio.fixture
async def make_lot(pg_pool: asyncpg.Pool, engine_live: AuctionLive, world: World) -> LotFactory:
    """Create an open lot of the world's product (staff-created); keyword arguments override the draft."""

    async def create(**overrides: object) -> int:
        now = datetime.now(timezone.utc)
        values: dict[str, object] = {
            "product_id": world.product_id,
            "title": "햇김 선물세트 경매",
            "start_price_won": 10_000,
            "start_at": now - timedelta(minutes=1),
            "end_at": now + timedelta(hours=1),
        }
        values.update(overrides)
        actor = Actor(world.staff.user_id, STAFF, world.staff.display_name)
        return await create_lot(pg_pool, engine_live, actor, LotDraft(**values))  # type: ignore[arg-type]

    return create


# -- servers -------------------------------------------------------------------------


@dataclass
class LiveServer:
    """One uvicorn server with its own app instance, on a free loopback port."""

    server: uvicorn.Server
    task: asyncio.Task[None]
    port: int
    app: object

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://{LOOPBACK}:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.task


def listening_socket(send_buffer_bytes: int | None = None) -> socket.socket:
    """A bound, listening loopback socket; accepted connections inherit its send buffer size."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer_bytes is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
    sock.bind((LOOPBACK, 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def start_server(
    settings: Settings,
    *,
    send_buffer_bytes: int | None = None,
    uvicorn_options: dict[str, object] | None = None,
    **overrides: object,
) -> LiveServer:
    """Start a server on its own socket; `overrides` replace settings fields, `uvicorn_options` uvicorn's."""
    sock = listening_socket(send_buffer_bytes)
    port = sock.getsockname()[1]
    # The tests sign in many times from one address; login limits are tested elsewhere.
    server_settings = settings.model_copy(
        update={"port": port, "login_rate": "10000/minute", "login_ip_rate": "10000/minute", **overrides}
    )
    app = create_app(server_settings)
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_level="warning",
        **{
            **uvicorn_websocket_options(server_settings),
            "ws_ping_interval": None,
            "timeout_graceful_shutdown": 2,
            **(uvicorn_options or {}),
        },
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    return LiveServer(server, task, port, app)


@pytest_asyncio.fixture
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    server = await start_server(settings)
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def second_server(settings: Settings) -> AsyncIterator[LiveServer]:
    server = await start_server(settings)
    yield server
    await server.stop()


# -- clients -------------------------------------------------------------------------


@dataclass
class SignedIn:
    """A signed-in HTTP client on one server and what the websocket handshake needs."""

    http: httpx.AsyncClient
    csrf_token: str
    account: Account | None
    server: LiveServer

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.http.cookies.items())

    async def connect(self, path: str, *, origin: str | None = None, **options: object) -> ClientConnection:
        headers = {"Cookie": self.cookie_header()} if self.http.cookies else {}
        return await websockets.connect(
            self.server.ws_base + path,
            origin=origin or self.server.base_url,  # type: ignore[arg-type]
            additional_headers=headers,
            **options,  # type: ignore[arg-type]
        )

    async def bid(self, lot_id: int, amount: object, client_id: str | None = None) -> httpx.Response:
        return await self.http.post(
            f"/api/v1/lots/{lot_id}/bids",
            json={"amount_won": amount, "client_id": client_id or secrets.token_hex(8)},
            headers={"X-CSRF-Token": self.csrf_token},
        )


async def sign_in(server: LiveServer, account: Account | None) -> SignedIn:
    http = httpx.AsyncClient(base_url=server.base_url)
    response = await http.get("/api/v1/session")
    response.raise_for_status()
    token = response.json()["csrf_token"]
    if account is not None:
        response = await http.post(
            "/api/v1/session", json={"email": account.email, "password": PASSWORD}, headers={"X-CSRF-Token": token}
        )
        assert response.status_code == 200, response.text
        token = response.json()["csrf_token"]
    return SignedIn(http, token, account, server)


@pytest_asyncio.fixture
async def clients() -> AsyncIterator[Callable[[LiveServer, Account | None], Awaitable[SignedIn]]]:
    """A factory of signed-in clients, all closed after the test."""
    made: list[SignedIn] = []

    async def factory(server: LiveServer, account: Account | None) -> SignedIn:
        signed = await sign_in(server, account)
        made.append(signed)
        return signed

    yield factory
    for signed in made:
        await signed.http.aclose()


async def receive_until(connection: ClientConnection, predicate: Callable[[str], bool]) -> str:
    """Read messages until one satisfies `predicate` (the per-test timeout bounds the wait)."""
    while True:
        message = await connection.recv()
        text = message if isinstance(message, str) else message.decode()
        if predicate(text):
            return text

"""The shared protocol of `/ws/bids` and `/ws/pledges`: unexpected command errors and frame sizes.

Each test runs a real uvicorn server with real PostgreSQL and Redis.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection

from engine.config import Settings
from engine.groupbuy.live import CampaignLive
from tests.web.live.campaign_fixtures import CampaignFactory, engine_campaigns, make_campaign  # noqa: F401
from tests.web.live.conftest import LiveServer, World, start_server
from tests.web.live.test_ws_pledges import expect_close, open_pledge_socket, pledge

pytestmark = pytest.mark.slow

# uvicorn's own default for `ws_max_size` (16 MiB), far above the app's frame limit.
UVICORN_DEFAULT_WS_MAX_SIZE = 16 * 1024 * 1024
HANGUL_SYLLABLE = "가"  # 3 bytes in UTF-8


def with_lock_timeout(dsn: str, lock_timeout_ms: int) -> str:
    """Return `dsn` with a `lock_timeout` that asyncpg sends as a server setting of each connection."""
    parts = urlsplit(dsn)
    query = f"{parts.query}&" if parts.query else ""
    return urlunsplit(parts._replace(query=f"{query}lock_timeout={lock_timeout_ms}"))


def text_of_bytes(size_bytes: int) -> str:
    """Return a text of exactly `size_bytes` bytes in UTF-8, mostly 3-byte syllables."""
    syllables, rest = divmod(size_bytes, len(HANGUL_SYLLABLE.encode()))
    text = HANGUL_SYLLABLE * syllables + "x" * rest
    assert len(text.encode()) == size_bytes
    return text


@pytest_asyncio.fixture
async def lock_timeout_server(settings: Settings) -> AsyncIterator[LiveServer]:
    """A server whose PostgreSQL statements give up after waiting 200 ms for a lock."""
    server = await start_server(settings, database_url=with_lock_timeout(settings.database_url or "", 200))
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def wide_frame_server(settings: Settings) -> AsyncIterator[LiveServer]:
    """A server whose uvicorn accepts frames far above `max_ws_frame_bytes`, so only the app limits them."""
    server = await start_server(settings, uvicorn_options={"ws_max_size": UVICORN_DEFAULT_WS_MAX_SIZE})
    yield server
    await server.stop()


async def pledge_while_campaigns_locked(
    pg_pool: asyncpg.Pool, connection: ClientConnection, campaign_id: int, client_ids: list[str]
) -> list[dict[str, object]]:
    """Send one pledge per client id while a transaction holds an ACCESS EXCLUSIVE lock on `campaigns`.

    Redis applies each pledge. The server's next statement, which reads the
    campaign's payment timing, then fails with a lock timeout.
    """
    replies = []
    async with pg_pool.acquire() as holder, holder.transaction():
        await holder.execute("LOCK TABLE campaigns IN ACCESS EXCLUSIVE MODE")
        for units, client_id in enumerate(client_ids, start=1):
            replies.append(await pledge(connection, campaign_id, units, client_id))
    return replies


async def test_unexpected_error_acked_result_unknown(
    lock_timeout_server: LiveServer, world: World, make_campaign: CampaignFactory,
    engine_campaigns: CampaignLive, pg_pool: asyncpg.Pool, clients,
) -> None:
    """A PostgreSQL error after Redis applied a pledge is acked result_unknown, and the same client id then returns the receipt."""
    campaign_id = await make_campaign()
    member = world.members[0]
    connection = await open_pledge_socket(await clients(lock_timeout_server, member))

    [ack] = await pledge_while_campaigns_locked(pg_pool, connection, campaign_id, ["unknown-1"])

    assert ack["type"] == "ack"
    assert ack["client_id"] == "unknown-1"
    assert ack["accepted"] is False
    assert ack["error"]["code"] == "result_unknown"
    assert ack["error"]["detail"] == {}
    assert ack["error"]["message"]["en"] == (
        "The server failed while handling this request, so it may or may not have been applied."
        " Send it again with the same client_id."
    )
    assert ack["error"]["message"]["ko"] == (
        "서버에서 이 요청을 처리하다 오류가 나서 반영 여부를 확인하지 못했습니다. 같은 client_id로 다시 보내 주세요."
    )
    assert "LockNotAvailable" not in json.dumps(ack)
    assert (await engine_campaigns.pledges(campaign_id))[member.user_id] == 1

    retry = await pledge(connection, campaign_id, 1, "unknown-1")

    assert retry["accepted"] is True
    assert retry["receipt"]["retry"] is True
    assert retry["receipt"]["units"] == 1
    assert retry["live"]["committed_units"] == 1
    await connection.close()


async def test_unexpected_errors_logged_with_ids(
    lock_timeout_server: LiveServer, world: World, make_campaign: CampaignFactory,
    pg_pool: asyncpg.Pool, clients, caplog: pytest.LogCaptureFixture,
) -> None:
    """Each failure logs a line with the ids, and only the socket's first failure logs the traceback."""
    campaign_id = await make_campaign()
    member = world.members[1]
    connection = await open_pledge_socket(await clients(lock_timeout_server, member))
    caplog.set_level(logging.ERROR, logger="jangteo.web.ack_socket")

    acks = await pledge_while_campaigns_locked(pg_pool, connection, campaign_id, ["log-1", "log-2"])

    assert [ack["error"]["code"] for ack in acks] == ["result_unknown", "result_unknown"]  # type: ignore[index]
    records = [record for record in caplog.records if record.name == "jangteo.web.ack_socket"]
    assert len(records) == 2
    first, second = (record.getMessage() for record in records)
    for line, client_id, count in ((first, "log-1", 1), (second, "log-2", 2)):
        assert "path=/ws/pledges" in line
        assert f"user_id={member.user_id}" in line
        assert "type=pledge" in line
        assert f"client_id={client_id}" in line
        assert f"campaign_id={campaign_id}" in line
        assert "error=LockNotAvailableError" in line
        assert line.endswith(f"failures={count}")
    assert records[0].exc_info is not None
    assert records[1].exc_info is None
    await connection.close()


async def test_socket_open_after_unexpected_error(
    lock_timeout_server: LiveServer, world: World, make_campaign: CampaignFactory,
    pg_pool: asyncpg.Pool, clients,
) -> None:
    """After a result_unknown ack, the same socket accepts a pledge with a new client id."""
    campaign_id = await make_campaign()
    connection = await open_pledge_socket(await clients(lock_timeout_server, world.members[2]))
    await pledge_while_campaigns_locked(pg_pool, connection, campaign_id, ["open-1"])

    ack = await pledge(connection, campaign_id, 3, "open-2")

    assert ack["accepted"] is True
    assert ack["receipt"]["units"] == 3
    assert ack["receipt"]["retry"] is False
    await connection.close()


async def test_frame_size_counted_in_bytes(live_server: LiveServer, world: World, clients) -> None:
    """With uvicorn's limit equal to the app's, a frame of max bytes gets a reply and one byte more closes with 1009."""
    limit = live_server.app.state.settings.max_ws_frame_bytes  # type: ignore[attr-defined]
    connection = await open_pledge_socket(await clients(live_server, world.members[3]))

    await connection.send(text_of_bytes(limit))
    reply = json.loads(await connection.recv())
    assert reply["error"]["code"] == "invalid_json"

    oversized = text_of_bytes(limit + 1)
    assert len(oversized) < limit
    await connection.send(oversized)
    await expect_close(connection, 1009)


async def test_app_closes_oversized_frame(wide_frame_server: LiveServer, world: World, clients) -> None:
    """Under a server with a larger ws_max_size, the app itself closes a frame over max_ws_frame_bytes bytes."""
    limit = wide_frame_server.app.state.settings.max_ws_frame_bytes  # type: ignore[attr-defined]
    connection = await open_pledge_socket(await clients(wide_frame_server, world.members[3]))

    await connection.send(text_of_bytes(limit))
    reply = json.loads(await connection.recv())
    assert reply["error"]["code"] == "invalid_json"

    oversized = text_of_bytes(limit + 1)
    assert len(oversized) < limit
    await connection.send(oversized)
    await expect_close(connection, 1009)

"""PipelinedConnection against private Redis servers: replies, credentials, lost and stalled servers."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from embedded.redis import PrivateRedis
from engine.auction.batching import Script, ScriptBatcher
from engine.auction.pipelined import PipelinedConnection

pytestmark = pytest.mark.slow

PASSWORD = "pipelined-test-secret"


def _batcher(client: redis.asyncio.Redis, *, timeout_s: float = 5.0) -> tuple[ScriptBatcher, PipelinedConnection]:
    connection = PipelinedConnection(client, timeout_s=timeout_s)
    return ScriptBatcher(client, connection=connection), connection


async def _connected_clients(client: redis.asyncio.Redis) -> int:
    info = await client.info("clients")
    return int(info["connected_clients"])


async def test_replies_match_redis_py(private_client: redis.asyncio.Redis) -> None:
    """Replies go through redis-py's response callbacks, and error replies raise for their own call only."""
    batcher, connection = _batcher(private_client)
    try:
        failing = Script("return redis.error_reply('ERR broken on purpose')")
        results = await asyncio.gather(
            batcher.command("SET", "greeting", "hello"),
            batcher.command("GET", "greeting"),
            batcher.run(failing, ("greeting",), ()),
            batcher.command("INCRBY", "counter", 5),
            batcher.run(Script("return {KEYS[1], ARGV[1], 7}"), ("k",), ("v",)),
            return_exceptions=True,
        )
    finally:
        await connection.close()
    assert results[0] is True, "SET passes through redis-py's callback"
    assert results[1] == b"hello"
    assert isinstance(results[2], ResponseError)
    assert "broken on purpose" in str(results[2])
    assert results[3] == 5
    assert results[4] == [b"k", b"v", 7]


async def test_decoding_client_gets_text(private_redis: PrivateRedis) -> None:
    """A client made with decode_responses gets str replies, as from redis-py."""
    decoding = redis.asyncio.Redis.from_url(private_redis.url, decode_responses=True)
    batcher, connection = _batcher(decoding)
    try:
        await batcher.command("SET", "name", "장터")
        assert await batcher.command("GET", "name") == "장터"
    finally:
        await connection.close()
        await decoding.aclose()


async def test_concurrent_first_calls_share_one_connection(private_client: redis.asyncio.Redis) -> None:
    before = await _connected_clients(private_client)
    batcher, connection = _batcher(private_client)
    try:
        replies = await asyncio.gather(*(batcher.command("INCR", "counter") for _ in range(50)))
        assert sorted(replies) == list(range(1, 51))
        assert await _connected_clients(private_client) == before + 1
    finally:
        await connection.close()


async def test_password_and_database_from_url(private_redis: PrivateRedis, private_client: redis.asyncio.Redis) -> None:
    """The connection authenticates and selects the database of the client's URL."""
    await private_client.config_set("requirepass", PASSWORD)
    server = private_redis
    url = f"redis://:{PASSWORD}@127.0.0.1:{server.port}/3"
    authenticated = redis.asyncio.Redis.from_url(url)
    batcher, connection = _batcher(authenticated)
    wrong = redis.asyncio.Redis.from_url(f"redis://:not-{PASSWORD}@127.0.0.1:{server.port}/0")
    wrong_batcher, wrong_connection = _batcher(wrong)
    try:
        assert await batcher.command("SET", "in-three", "yes") is True
        assert await authenticated.get("in-three") == b"yes"
        database_zero = redis.asyncio.Redis.from_url(f"redis://:{PASSWORD}@127.0.0.1:{server.port}/0")
        assert await database_zero.get("in-three") is None
        await database_zero.aclose()

        with pytest.raises(ResponseError):
            await wrong_batcher.command("GET", "in-three")
        assert not wrong_connection.is_open
    finally:
        await connection.close()
        await wrong_connection.close()
        await authenticated.aclose()
        await wrong.aclose()


async def test_killed_server_fails_waiting_calls(private_redis: PrivateRedis, private_client: redis.asyncio.Redis) -> None:
    """Calls waiting when the server dies raise ConnectionError. After a restart the next call reconnects."""
    batcher, connection = _batcher(private_client)
    try:
        assert await batcher.command("INCR", "counter") == 1
        private_redis.pause()
        waiting = [asyncio.ensure_future(batcher.command("INCR", "counter")) for _ in range(10)]
        await asyncio.sleep(0.05)
        assert not any(call.done() for call in waiting), "a paused server answers nothing"
        private_redis.kill()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(result, RedisConnectionError) for result in results), results
        assert not connection.is_open

        with pytest.raises(RedisConnectionError):
            await batcher.command("INCR", "counter")  # the port is closed

        private_redis.restart()
        assert await batcher.command("INCR", "counter") == 1, "the restarted server started empty"
        assert connection.is_open
    finally:
        await connection.close()


async def test_stalled_server_times_out(private_redis: PrivateRedis, private_client: redis.asyncio.Redis) -> None:
    """A call without a reply for timeout_s raises TimeoutError, and the next call opens a new connection."""
    batcher, connection = _batcher(private_client, timeout_s=0.5)
    try:
        assert await batcher.command("INCR", "counter") == 1
        private_redis.pause()
        try:
            with pytest.raises(RedisTimeoutError):
                await batcher.command("INCR", "counter")
            assert not connection.is_open
        finally:
            private_redis.resume()
        # The stalled INCR was sent, so Redis applies it after the pause: 2 is taken.
        assert await batcher.command("INCR", "counter") == 3
    finally:
        await connection.close()

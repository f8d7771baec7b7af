from pathlib import Path

import pytest
import redis

from embedded.redis import ensure_redis, start_private_redis, stop_redis

pytestmark = pytest.mark.slow


def test_redis_keeps_data_across_restart(tmp_path: Path) -> None:
    """A key written before a stop is read back after the next start, on the same URL."""
    url = ensure_redis(tmp_path)
    try:
        with redis.Redis.from_url(url) as client:
            client.set("kept", "value")
        assert stop_redis(tmp_path) is True

        restarted_url = ensure_redis(tmp_path)

        assert restarted_url == url
        with redis.Redis.from_url(restarted_url) as client:
            assert client.get("kept") == b"value"
    finally:
        stop_redis(tmp_path)


def test_redis_reuses_running_server(tmp_path: Path) -> None:
    """A second start finds the running server instead of starting another one."""
    url = ensure_redis(tmp_path)
    try:
        with redis.Redis.from_url(url) as client:
            run_id = client.info("server")["run_id"]

        assert ensure_redis(tmp_path) == url
        with redis.Redis.from_url(url) as client:
            assert client.info("server")["run_id"] == run_id
            assert client.config_get("appendfsync") == {"appendfsync": "always"}
    finally:
        stop_redis(tmp_path)


def test_private_redis_survives_kill_with_appendonly(tmp_path: Path) -> None:
    """With appendonly, a key acknowledged before SIGKILL is still there after restart()."""
    server = start_private_redis(tmp_path, appendonly=True)
    try:
        with redis.Redis.from_url(server.url) as client:
            client.set("acknowledged", "1")
        server.kill()
        server.restart()
        with redis.Redis.from_url(server.url) as client:
            assert client.get("acknowledged") == b"1"
    finally:
        server.stop()


def test_private_redis_loses_data_without_appendonly(tmp_path: Path) -> None:
    """Without appendonly, a killed server comes back empty."""
    server = start_private_redis(tmp_path, appendonly=False)
    try:
        with redis.Redis.from_url(server.url) as client:
            client.set("volatile", "1")
        server.kill()
        server.restart()
        with redis.Redis.from_url(server.url) as client:
            assert client.get("volatile") is None
    finally:
        server.stop()


async def test_session_redis_fixtures(redis_client, redis_prefix: str) -> None:
    """The session's Redis client returns bytes and the prefix has the fixed test form."""
    key = f"{redis_prefix}:probe"
    await redis_client.set(key, "값")
    assert await redis_client.get(key) == "값".encode()
    assert redis_prefix.startswith("jtt")
    assert len(redis_prefix) == 11

"""Rate limits on Redis, moving window.

`check_rate(request, name, rate, identity)` counts one hit for `identity` under the
limit called `name` and raises 429 `rate_limited` with Retry-After when the limit is
used up. It runs on the `limits` library; logins use it per IP address and per
(IP address, email). The limiter shares the app's Redis connection pool.

`check_user_rate` does the same with a script of our own
(`lua/acquire_moving_window.lua`) sent through the app's `ScriptBatcher`. So on the
bid and pledge paths, the check shares one pipeline per event-loop pass with the
session read and the bid script. `limits` 5.8 cannot send its check in a pipeline
of the caller's: its storage runs each script on its own connection.

All keys of both start with `Keys.rate_limit_prefix`.
"""

from __future__ import annotations

import asyncio
import math
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis
from starlette.requests import Request

from engine.auction.batching import Script, ScriptBatcher
from web.errors import ApiError

MOVING_WINDOW_SCRIPT = Script((Path(__file__).parent / "lua" / "acquire_moving_window.lua").read_text(encoding="utf-8"))


@lru_cache(maxsize=64)
def parse_rate(rate: str) -> RateLimitItem:
    """Parse a rate such as "10/minute" or "30/10seconds"; raise ValueError if invalid."""
    return parse(rate)


def create_limiter(redis: Redis, key_prefix: str) -> MovingWindowRateLimiter:
    """Build the limiter on the connection pool of `redis` (no connections of its own)."""
    # `limits` reads the scheme from the URI but, given a pool, opens no connection
    # of its own, so the address part is only a placeholder.
    storage = RedisStorage(
        "async+redis://127.0.0.1:6379",
        implementation="redispy",
        key_prefix=key_prefix,
        connection_pool=redis.connection_pool,
    )
    return MovingWindowRateLimiter(storage)


async def check_rate(request: Request, name: str, rate: str, identity: str) -> None:
    """Count one hit of `identity` against limit `name`; raise ApiError 429 when over.

    Raises RedisError when Redis is unreachable: the caller fails closed.
    """
    limiter: MovingWindowRateLimiter = request.app.state.limiter
    item = parse_rate(rate)
    if await limiter.hit(item, name, identity):
        return
    reset_at_s, _remaining = await limiter.get_window_stats(item, name, identity)
    retry_after_s = max(1, math.ceil(reset_at_s - time.time()))
    raise _rate_limited(retry_after_s)


async def check_user_rate(request: Request, name: str, rate: str, identity: str) -> None:
    """Count one hit of `identity` against limit `name` in the next batched pipeline; raise 429 when over.

    Same limits, 429 errors and Retry-After values as `check_rate`, but the window lives in keys of its own,
    so switching a limit between the two functions starts its counts afresh.
    Raises RedisError when Redis is unreachable: the caller fails closed.
    """
    raise_if_limited(await submit_user_rate(request, name, rate, identity))


def submit_user_rate(request: Request, name: str, rate: str, identity: str) -> asyncio.Future[Any]:
    """Queue the hit of `check_user_rate` now and return the future of its reply, for `raise_if_limited`.

    Calls queued before the caller awaits go out in the same event-loop pass, so a
    rate limit and another check share the round trip.
    """
    state = request.app.state
    batcher: ScriptBatcher = state.batcher
    item = parse_rate(rate)
    window_s = item.get_expiry()
    # The limit and window are part of the key, as in `limits`, so a changed rate
    # never reads hit times counted under the old one.
    key = f"{state.keys.rate_limit_prefix}:window/{name}/{identity}/{item.amount}/{window_s}"
    return batcher.submit(MOVING_WINDOW_SCRIPT, (key,), (item.amount, window_s * 1000))


def raise_if_limited(reply: Any) -> None:
    """Raise 429 `rate_limited` when the moving-window script's reply rejected the hit."""
    allowed, retry_after_ms = reply
    if allowed:
        return
    raise _rate_limited(max(1, math.ceil(int(retry_after_ms) / 1000)))


def _rate_limited(retry_after_s: int) -> ApiError:
    return ApiError("rate_limited", headers={"Retry-After": str(retry_after_s)}, retry_after_s=retry_after_s)


def client_ip(request: Request) -> str:
    """Return the peer address; proxy headers are not trusted (see `web.__main__`)."""
    return request.client.host if request.client else "unknown"

"""Rate limits on Redis with the `limits` library (moving window).

`check_rate(request, name, rate, identity)` counts one hit for `identity` under the
limit called `name` and raises 429 `rate_limited` with Retry-After when the limit is
used up. Logins use it per IP address and per (IP address, email), bids per user.
The limiter shares the app's Redis connection pool; its keys start with
`Keys.rate_limit_prefix`.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import Redis
from starlette.requests import Request

from web.errors import ApiError


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
    raise ApiError("rate_limited", headers={"Retry-After": str(retry_after_s)}, retry_after_s=retry_after_s)


def client_ip(request: Request) -> str:
    """Return the peer address; proxy headers are not trusted (see `web.__main__`)."""
    return request.client.host if request.client else "unknown"

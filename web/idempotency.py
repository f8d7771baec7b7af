"""Idempotency keys for the state-changing JSON API (`Idempotency-Key` header).

A signed-in client may send `Idempotency-Key: K` (1 to 128 characters of
`A-Z a-z 0-9 _ - : .`) with a POST, PUT, PATCH or DELETE. The first request with K
claims the key by inserting a placeholder row into `idempotency_keys`, in its own
transaction, before the handler runs. When the handler returns a response below
500, or raises a 4xx `ApiError` other than 429, its status and JSON body are stored
with the SHA-256 of the request's method, path, query and body. Then:

- the same key and the same request returns the stored status and body, with
  `Idempotent-Replayed: true`, and does not run the handler again;
- the same key with another request is rejected with 422 `idempotency_key_reused`;
- the same key while the first request still runs is rejected with 409
  `idempotency_key_in_progress` (retry after it finished);
- a 5xx, a 429 or any other exception deletes the placeholder, so a retry runs the
  handler again. A placeholder left by a process that died mid-request is taken
  over after `IN_PROGRESS_TIMEOUT_S`.

Keys are per user. Requests without a key, or from anonymous visitors (registration,
login), run as before. `ApiRoutes.route` applies `idempotent` to every unsafe API
route except those that opt out (bids carry their own client id, and the session
routes set cookies that a stored response could not repeat).

Stored keys are kept for `Settings.idempotency_retention_s` (24 hours by default).
The worker deletes older ones every few minutes (`engine.housekeeping`), after which
the same key runs the request again.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from web.errors import ApiError, register_error
from web.i18n import N_

log = logging.getLogger("jangteo.web.idempotency")

Endpoint = Callable[[Request], Awaitable[Response]]

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_RE = re.compile(r"[A-Za-z0-9_\-:.]{1,128}")
# A claim older than this belongs to a request that died; a retry may take it over.
IN_PROGRESS_TIMEOUT_S = 300
# The status of a placeholder row while its request runs.
_IN_PROGRESS = 0

register_error("invalid_idempotency_key", 400, N_(
    "The Idempotency-Key header must be 1 to 128 characters of letters, digits, '_', '-', ':' or '.'."
))
register_error("idempotency_key_in_progress", 409, N_(
    "A request with this Idempotency-Key is still being processed. Try again in a moment."
))
register_error("idempotency_key_reused", 422, N_(
    "This Idempotency-Key was already used for a different request. Use a new key for a new request."
))


def request_hash(method: str, path: str, query: str, body: bytes) -> str:
    """Return the hex SHA-256 that identifies a request's content for its key."""
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), query.encode()):
        digest.update(part)
        digest.update(b"\n")
    digest.update(body)
    return digest.hexdigest()


def idempotent(endpoint: Endpoint) -> Endpoint:
    """Wrap an unsafe API endpoint so that a repeated `Idempotency-Key` replays its stored result."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return await endpoint(request)
        if not KEY_RE.fullmatch(key):
            raise ApiError("invalid_idempotency_key")
        user = getattr(request.state, "user", None)
        if user is None:
            return await endpoint(request)

        db = request.app.state.db
        # Starlette caches the body, so the handler can read it again.
        content_hash = request_hash(request.method, request.url.path, request.url.query, await request.body())
        stored = await _claim(db, user.id, key, content_hash)
        if stored is not None:
            return stored

        try:
            response = await endpoint(request)
        except ApiError as error:
            if 400 <= error.status < 500 and error.status != 429:
                await _store(db, user.id, key, error.status, error.to_json())
            else:
                await _release(db, user.id, key)
            raise
        except BaseException:
            await _release(db, user.id, key)
            raise

        if isinstance(response, JSONResponse) and response.status_code < 500:
            await _store(db, user.id, key, response.status_code, orjson.loads(response.body))
        else:
            # Only JSON results can be replayed; anything else may simply run again.
            await _release(db, user.id, key)
        return response

    return wrapper


async def _claim(db: asyncpg.Pool, user_id: int, key: str, content_hash: str) -> Response | None:
    """Claim the key for this request (None), or return the response for a key already used."""
    claimed = await db.fetchval(
        """INSERT INTO idempotency_keys (user_id, key, request_hash, status_code, response)
           VALUES ($1, $2, $3, $4, 'null'::jsonb)
           ON CONFLICT (user_id, key) DO NOTHING
           RETURNING true""",
        user_id, key, content_hash, _IN_PROGRESS,
    )
    if claimed:
        return None
    row = await db.fetchrow(
        """SELECT request_hash, status_code, response,
                  created_at < now() - make_interval(secs => $3) AS abandoned
           FROM idempotency_keys WHERE user_id = $1 AND key = $2""",
        user_id, key, IN_PROGRESS_TIMEOUT_S,
    )
    if row is None:
        # The first request failed and released the key between our two statements.
        return await _claim(db, user_id, key, content_hash)
    if row["request_hash"] != content_hash:
        raise ApiError("idempotency_key_reused")
    if row["status_code"] != _IN_PROGRESS:
        return JSONResponse(row["response"], status_code=row["status_code"], headers={REPLAYED_HEADER: "true"})
    if row["abandoned"] and await _take_over(db, user_id, key):
        log.warning("idempotency key taken over after timeout user_id=%s", user_id)
        return None
    raise ApiError("idempotency_key_in_progress", headers={"Retry-After": "1"})


async def _take_over(db: asyncpg.Pool, user_id: int, key: str) -> bool:
    """Restart the clock of an abandoned claim; False when another retry took it first."""
    return bool(await db.fetchval(
        """UPDATE idempotency_keys SET created_at = now()
           WHERE user_id = $1 AND key = $2 AND status_code = $3
             AND created_at < now() - make_interval(secs => $4)
           RETURNING true""",
        user_id, key, _IN_PROGRESS, IN_PROGRESS_TIMEOUT_S,
    ))


async def _store(db: asyncpg.Pool, user_id: int, key: str, status_code: int, body: object) -> None:
    await db.execute(
        "UPDATE idempotency_keys SET status_code = $3, response = $4 WHERE user_id = $1 AND key = $2",
        user_id, key, status_code, body,
    )


async def _release(db: asyncpg.Pool, user_id: int, key: str) -> None:
    await db.execute(
        "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND status_code = $3",
        user_id, key, _IN_PROGRESS,
    )

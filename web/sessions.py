"""Server-side sessions in Redis, and the signed-in user loaded for every request.

The browser holds only a random token (32 bytes, URL-safe base64) in an HttpOnly,
SameSite=Lax cookie; the session data is one JSON value in Redis under
`Keys.session(token)`, read with GETEX so every request also renews its TTL. The
GETEX goes through the app's `ScriptBatcher` (`app.state.batcher`), one pipeline
for all requests of an event-loop pass. The
signed-in user's row is cached in the session and re-read from PostgreSQL:

- at most every `USER_REFRESH_S` seconds on ordinary requests, so pages need no
  database query per request;
- on every state-changing request (POST, PUT, PATCH, DELETE) of a user cached as
  staff, so a demoted or suspended staff account can take no staff action with an
  old copy.

Each user's session ids are kept in a Redis set (`Keys.user_sessions`).
`revoke_user_sessions` deletes them all at once; call it after suspending a user or
changing a role, and their next request is anonymous (401).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg
import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.auction.batching import ScriptBatcher
from engine.keys import Keys

SESSION_COOKIE = "jt_session"
USER_REFRESH_S = 60
# A user's session set is checked for expired ids once it contains more ids than this.
SESSION_SET_PRUNE_SIZE = 32
_TOKEN_BYTES = 32
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")

log = logging.getLogger("jangteo.web.sessions")


def new_token() -> str:
    return secrets.token_urlsafe(_TOKEN_BYTES)


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in user as pages and guards see it (a copy of the `users` row)."""

    id: int
    email: str
    display_name: str
    role: str
    supplier_id: int | None
    status: str
    locale: str

    @classmethod
    def from_row(cls, row: asyncpg.Record | dict[str, Any]) -> CurrentUser:
        return cls(
            id=row["id"],
            email=row["email"],
            display_name=row["display_name"],
            role=row["role"],
            supplier_id=row["supplier_id"],
            status=row["status"],
            locale=row["locale"],
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def is_active(self) -> bool:
        return self.status == "active"

    @property
    def is_staff(self) -> bool:
        return self.role == "staff"

    @property
    def is_supplier(self) -> bool:
        return self.role == "supplier"


class Session:
    """One visitor's session; changes are written to Redis when the response starts."""

    def __init__(self, session_id: str | None, data: dict[str, Any] | None = None) -> None:
        self.id = session_id
        self.data: dict[str, Any] = data or {}
        self.modified = False
        # Ids to delete from Redis when the response starts (rotation and logout).
        self.stale_ids: list[str] = []
        # The user each stale id belonged to, to drop it from that user's session set.
        self.stale_owners: dict[str, int] = {}

    @property
    def is_new(self) -> bool:
        return self.id is None

    @property
    def csrf_token(self) -> str:
        """The session's CSRF token; reading it creates the token (and the session)."""
        token = self.data.get("csrf")
        if not token:
            token = new_token()
            self.data["csrf"] = token
            self.modified = True
        return token

    @property
    def user(self) -> CurrentUser | None:
        raw = self.data.get("user")
        return CurrentUser(**raw) if raw else None

    def set_user(self, user: CurrentUser) -> None:
        self.data["user"] = user.to_dict()
        self.data["user_loaded_at"] = time.time()
        self.modified = True

    def login(self, user: CurrentUser) -> None:
        """Store `user` under a new session id and a new CSRF token (no session fixation)."""
        self.rotate()
        self.data = {"csrf": new_token()}
        self.set_user(user)

    def logout(self) -> None:
        """Drop all session data and continue as a fresh anonymous session."""
        self.rotate()
        self.data = {"csrf": new_token()}
        self.modified = True

    def rotate(self) -> None:
        if self.id is not None:
            self.stale_ids.append(self.id)
            owner = self.data.get("user")
            if owner:
                self.stale_owners[self.id] = owner["id"]
        self.id = None
        self.modified = True


class SessionStore:
    def __init__(self, redis: Redis, keys: Keys, ttl_s: int, *, batcher: ScriptBatcher | None = None) -> None:
        self.redis = redis
        self.keys = keys
        self.ttl_s = ttl_s
        # With a batcher, `load` shares the event-loop pass's pipeline with the other requests.
        self.batcher = batcher

    async def load(self, session_id: str) -> dict[str, Any] | None:
        key = self.keys.session(session_id)
        if self.batcher is not None:
            raw = await self.batcher.command("GETEX", key, "EX", self.ttl_s)
        else:
            raw = await self.redis.getex(key, ex=self.ttl_s)
        if raw is None:
            return None
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            log.warning("session data unreadable, starting a new session")
            return None
        return data if isinstance(data, dict) else None

    async def save(self, session: Session) -> str:
        """Write the session, giving it an id first if it has none; return the id.

        An existing session is only overwritten while its key still exists (SET XX),
        so a request that was running while the session was revoked cannot bring it back.
        """
        new = session.id is None
        if new:
            session.id = new_token()
        stored = await self.redis.set(
            self.keys.session(session.id), orjson.dumps(session.data), ex=self.ttl_s, xx=not new
        )
        user = session.user
        if stored and user is not None:
            await self._remember(user.id, session.id)
        if session.stale_ids:
            await self.redis.delete(*(self.keys.session(stale) for stale in session.stale_ids))
            for stale, owner_id in session.stale_owners.items():
                await self.redis.srem(self.keys.user_sessions(owner_id), stale)
            session.stale_ids.clear()
            session.stale_owners.clear()
        session.modified = False
        return session.id

    async def _remember(self, user_id: int, session_id: str) -> None:
        """Add a session id to its user's set, dropping ids whose sessions expired once the set grows."""
        key = self.keys.user_sessions(user_id)
        pipe = self.redis.pipeline(transaction=False)
        pipe.sadd(key, session_id)
        pipe.expire(key, self.ttl_s)
        pipe.scard(key)
        _added, _expiry_set, size = await pipe.execute()
        if size <= SESSION_SET_PRUNE_SIZE:
            return
        members = [m.decode() if isinstance(m, bytes) else m for m in await self.redis.smembers(key)]
        pipe = self.redis.pipeline(transaction=False)
        for member in members:
            pipe.exists(self.keys.session(member))
        alive = await pipe.execute()
        expired = [member for member, exists in zip(members, alive) if not exists]
        if expired:
            await self.redis.srem(key, *expired)


class SessionEnded(Exception):
    """The session of a long-lived connection was revoked or ended; the connection must stop."""


class SessionCheck:
    """A batched EXISTS of a websocket's session, queued before the command's own Redis calls.

    A socket reads its session once at the handshake, so before each command it
    checks that the session still exists. Queued first, the check shares the
    round trip with the command's rate limit, and the command awaits `alive()` before
    it changes anything.
    """

    def __init__(self, reply: asyncio.Future[Any] | None) -> None:
        self._reply = reply  # None: the socket has no session

    @classmethod
    def submit(cls, batcher: ScriptBatcher, keys: Keys, session: Session | None) -> SessionCheck:
        if session is None or session.id is None:
            return cls(None)
        return cls(batcher.submit(None, (), ("EXISTS", keys.session(session.id))))

    async def alive(self) -> bool:
        """Return whether the session still exists; True when the EXISTS failed.

        A command needs Redis too and reports Redis being unreachable in its own reply.
        """
        if self._reply is None:
            return False
        try:
            return bool(await self._reply)
        except RedisError:
            return True


async def revoke_user_sessions(redis: Redis, keys: Keys, user_id: int) -> int:
    """Delete every session of a user (after a suspension or a role change); return how many existed.

    The user's next request is anonymous. A request of theirs already running keeps
    its copy of the user until it ends, but cannot save the session again (see
    `SessionStore.save`). Raises RedisError when Redis is unreachable.
    """
    key = keys.user_sessions(user_id)
    members = [m.decode() if isinstance(m, bytes) else m for m in await redis.smembers(key)]
    deleted = 0
    if members:
        deleted = await redis.delete(*(keys.session(member) for member in members))
    await redis.delete(key)
    log.info("sessions revoked user_id=%s sessions=%s", user_id, deleted)
    return deleted


def _cookie_value(scope: Scope) -> str | None:
    for raw_name, raw_value in scope.get("headers", []):
        if raw_name != b"cookie":
            continue
        for part in raw_value.decode("latin-1").split(";"):
            name, _, value = part.strip().partition("=")
            if name == SESSION_COOKIE and _TOKEN_RE.fullmatch(value):
                return value
    return None


async def _refresh_user(session: Session, db: asyncpg.Pool, *, force: bool = False) -> None:
    """Re-read the cached user row when it is older than USER_REFRESH_S, or always with `force`."""
    user = session.user
    loaded_at = session.data.get("user_loaded_at", 0)
    if user is None or (not force and time.time() - loaded_at < USER_REFRESH_S):
        return
    from web.users import fetch_user  # web.users imports this module

    try:
        fresh = await fetch_user(db, user.id)
    except (asyncpg.PostgresError, OSError) as exc:
        # Keep the cached row so pages stay usable while PostgreSQL is down; a staff
        # action needs PostgreSQL itself and fails there.
        log.warning("user refresh failed user_id=%s error=%s", user.id, type(exc).__name__)
        return
    if fresh is None:
        session.logout()
    else:
        session.set_user(fresh)


def _is_state_change(scope: Scope) -> bool:
    return scope["type"] == "http" and scope.get("method") in ("POST", "PUT", "PATCH", "DELETE")


class SessionMiddleware:
    """Load the session and user into `request.state` and save changes on the way out.

    Needs `app.state.redis`, `app.state.keys`, `app.state.db` and `app.state.settings`,
    which the lifespan sets. If Redis cannot be reached the request goes on with an
    empty session (anonymous), and a session change in it is not saved.
    """

    def __init__(self, app: ASGIApp, *, skip_prefixes: tuple[str, ...] = ("/static/",)) -> None:
        self.app = app
        # Paths served without a session (static files): no Redis round trip for them.
        self.skip_prefixes = skip_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith(self.skip_prefixes):
            state = scope.setdefault("state", {})
            state["session"] = Session(None)
            state["user"] = None
            await self.app(scope, receive, send)
            return

        app_state = scope["app"].state
        settings = app_state.settings
        store = SessionStore(
            app_state.redis, app_state.keys, settings.session_ttl_s, batcher=getattr(app_state, "batcher", None)
        )

        session = Session(None)
        cookie_id = _cookie_value(scope)
        if cookie_id is not None:
            try:
                data = await store.load(cookie_id)
            except RedisError as exc:
                log.warning("session load failed error=%s", type(exc).__name__)
                data = None
            if data is not None:
                session = Session(cookie_id, data)
                cached = session.user
                staff_action = cached is not None and cached.is_staff and _is_state_change(scope)
                await _refresh_user(session, app_state.db, force=staff_action)

        state = scope.setdefault("state", {})
        state["session"] = session
        state["user"] = session.user
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_session(message: Message) -> None:
            if message["type"] == "http.response.start" and session.modified:
                try:
                    session_id = await store.save(session)
                except RedisError as exc:
                    log.warning("session save failed error=%s", type(exc).__name__)
                else:
                    cookie = (
                        f"{SESSION_COOKIE}={session_id}; Path=/; Max-Age={settings.session_ttl_s};"
                        " HttpOnly; SameSite=Lax"
                    )
                    if settings.cookie_secure:
                        cookie += "; Secure"
                    MutableHeaders(scope=message).append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_session)

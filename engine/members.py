"""Staff actions on member accounts: suspension.

A suspended account keeps its row and history; the web layer ends its sessions
(`web.sessions.revoke_user_sessions`) right after the change commits.
"""

from __future__ import annotations

import logging

import asyncpg

from engine.actors import Actor
from engine.errors import DomainError
from engine.orders import audit, require_staff

log = logging.getLogger("jangteo.members")

MAX_REASON_CHARS = 500


async def suspend_user(db: asyncpg.Pool, actor: Actor, user_id: int, reason: str = "") -> bool:
    """Suspend an account (audited); return False when it was already suspended.

    Raises DomainError `forbidden` for non-staff, `user_not_found`, and
    `cannot_suspend_self` when staff target their own account.
    """
    require_staff(actor)
    if user_id == actor.user_id:
        raise DomainError("cannot_suspend_self", "staff cannot suspend their own account", user_id=user_id)
    async with db.acquire() as connection:
        async with connection.transaction():
            status = await connection.fetchval("SELECT status FROM users WHERE id = $1 FOR UPDATE", user_id)
            if status is None:
                raise DomainError("user_not_found", f"user {user_id} does not exist", user_id=user_id)
            if status == "suspended":
                return False
            await connection.execute("UPDATE users SET status = 'suspended' WHERE id = $1", user_id)
            await audit(connection, actor, "user.suspend", "user", user_id, {"reason": reason[:MAX_REASON_CHARS]})
    log.info("user suspended user_id=%s actor_id=%s", user_id, actor.user_id)
    return True

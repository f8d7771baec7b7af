"""Purging stored Idempotency-Key results after their retention."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from engine.config import Settings
from engine.housekeeping import purge_idempotency_keys
from web.idempotency import IN_PROGRESS_TIMEOUT_S


async def store_key(db, user_id: int, key: str, age_s: int) -> None:  # type: ignore[no-untyped-def]
    await db.execute(
        """INSERT INTO idempotency_keys (user_id, key, request_hash, status_code, response, created_at)
           VALUES ($1, $2, 'hash', 201, '{}'::jsonb, now() - make_interval(secs => $3))""",
        user_id, key, float(age_s),
    )


async def stored_keys(db) -> set[str]:  # type: ignore[no-untyped-def]
    return {row["key"] for row in await db.fetch("SELECT key FROM idempotency_keys")}


async def test_purge_deletes_only_expired_keys(db, market):
    member = await market.member()
    await store_key(db, member.user_id, "old-1", age_s=25 * 3600)
    await store_key(db, member.user_id, "old-2", age_s=24 * 3600 + 5)
    await store_key(db, member.user_id, "fresh", age_s=23 * 3600)

    deleted = await purge_idempotency_keys(db, retention_s=24 * 3600)

    assert deleted == 2
    assert await stored_keys(db) == {"fresh"}


async def test_purge_works_through_batches(db, market):
    member = await market.member()
    for n in range(7):
        await store_key(db, member.user_id, f"old-{n}", age_s=3600)
    await store_key(db, member.user_id, "fresh", age_s=10)

    deleted = await purge_idempotency_keys(db, retention_s=60, batch_size=3)

    assert deleted == 7
    assert await stored_keys(db) == {"fresh"}
    assert await purge_idempotency_keys(db, retention_s=60, batch_size=3) == 0


def test_retention_below_claim_timeout_rejected():
    """A retention shorter than a running request's claim would let the purge delete that claim."""
    with pytest.raises(ValidationError):
        Settings(idempotency_retention_s=299)
    assert Settings(idempotency_retention_s=IN_PROGRESS_TIMEOUT_S).idempotency_retention_s == IN_PROGRESS_TIMEOUT_S

"""Deleting stored rows that have outlived their purpose."""

from __future__ import annotations

import logging

import asyncpg

log = logging.getLogger("jangteo.housekeeping")


async def purge_idempotency_keys(db: asyncpg.Pool, *, retention_s: int, batch_size: int = 1000) -> int:
    """Delete stored `Idempotency-Key` results older than `retention_s`; return how many.

    Deletes in batches of `batch_size` rows, each its own short statement, so a large
    backlog never holds locks for long. A client that repeats a request with a key
    older than the retention runs the request again, so the retention must be longer
    than any client's retry window. The index on `created_at` lets a batch find its
    rows without scanning the table.
    """
    deleted = 0
    while True:
        status = await db.execute(
            """DELETE FROM idempotency_keys
               WHERE ctid = ANY (ARRAY(
                   SELECT ctid FROM idempotency_keys
                   WHERE created_at < now() - make_interval(secs => $1)
                   LIMIT $2))""",
            float(retention_s), batch_size,
        )
        count = int(status.rsplit(" ", 1)[-1])
        deleted += count
        if count < batch_size:
            break
    if deleted:
        log.info("idempotency keys purged count=%d retention_s=%d", deleted, retention_s)
    return deleted

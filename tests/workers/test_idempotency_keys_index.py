"""The index on `idempotency_keys.created_at` that the purge of expired keys uses."""

from __future__ import annotations

import asyncpg

INDEX_NAME = "idempotency_keys_created_at_idx"


async def test_created_at_index_exists(db: asyncpg.Pool) -> None:
    definition = await db.fetchval(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'idempotency_keys' AND indexname = $1", INDEX_NAME
    )

    assert definition is not None
    assert definition.endswith("(created_at)")


async def test_purge_batch_can_use_index(db: asyncpg.Pool) -> None:
    """With sequential scans disabled, the batch query of `purge_idempotency_keys` reads the index."""
    async with db.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL enable_seqscan = off")
        rows = await connection.fetch(
            """EXPLAIN SELECT ctid FROM idempotency_keys
               WHERE created_at < now() - make_interval(secs => 86400.0)
               LIMIT 1000"""
        )
    plan = "\n".join(row[0] for row in rows)

    assert INDEX_NAME in plan, plan

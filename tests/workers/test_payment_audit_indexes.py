"""The indexes of migration 0019: pledge payments awaiting a deposit, and audit rows by target."""

from __future__ import annotations

import asyncpg


async def _plan(db: asyncpg.Pool, query: str, *args: object) -> str:
    """Return the plan of `query` with sequential scans disabled, so a usable index shows."""
    async with db.acquire() as connection, connection.transaction():
        await connection.execute("SET LOCAL enable_seqscan = off")
        rows = await connection.fetch("EXPLAIN " + query, *args)
    return "\n".join(row[0] for row in rows)


async def test_due_holds_use_partial_index(db: asyncpg.Pool) -> None:
    """The hold expirer's query (`engine.groupbuy.payments.due_hold_ids`) can read the partial index."""
    plan = await _plan(
        db,
        """SELECT id FROM pledge_payments
           WHERE status = 'awaiting_deposit' AND hold_expires_at < now() AND id <> ALL($1::bigint[])
           ORDER BY hold_expires_at, id LIMIT 100""",
        [],
    )

    assert "pledge_payments_awaiting_hold_idx" in plan, plan


async def test_audit_rows_by_target_use_index(db: asyncpg.Pool) -> None:
    plan = await _plan(
        db,
        "SELECT detail FROM audit_log WHERE action = $1 AND target_type = 'pledge_payment' AND target_id = $2",
        "pledge.confirm_deposit", 1,
    )

    assert "audit_log_target_idx" in plan, plan

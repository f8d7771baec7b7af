"""Acknowledged sequence numbers, remembered per process and copied to PostgreSQL.

A receipt a client got must be in the ledger, or its lot held for review. If Redis
loses the tail of its data (killed before its append-only file reached the disk),
the ledger never sees those events, and a rebuilt lot would hand their sequence
numbers out again. Each web process therefore remembers the highest sequence number
it acknowledged per lot and writes these marks to `lot_ack_marks`: every couple of
seconds, and at once when Redis stops answering. A rebuild or a close that finds the
ledger below a mark holds the lot (`engine.auction.ledger.hold_if_acknowledged_missing`).
"""

from __future__ import annotations

import logging

import asyncpg
from redis.asyncio import Redis

log = logging.getLogger("jangteo.acks")


class AckMarks:
    """Highest acknowledged sequence number per lot (or campaign, with `table` and `id_column`)."""

    def __init__(self, *, table: str = "lot_ack_marks", id_column: str = "lot_id") -> None:
        self._table = table
        self._id_column = id_column
        self._highest: dict[int, int] = {}
        self._unsaved: dict[int, int] = {}

    def note(self, lot_id: int, seq: int) -> None:
        if seq > self._highest.get(lot_id, 0):
            self._highest[lot_id] = seq
            self._unsaved[lot_id] = seq

    def highest(self, lot_id: int) -> int:
        return self._highest.get(lot_id, 0)

    def forget(self, lot_id: int) -> None:
        """Drop a lot's mark once the lot is final (its close already checked the ledger)."""
        self._highest.pop(lot_id, None)
        self._unsaved.pop(lot_id, None)

    async def flush(self, db: asyncpg.Pool) -> int:
        """Write the marks noted since the last flush; return how many were written.

        On failure the marks stay unsaved and the next flush tries again.
        """
        if not self._unsaved:
            return 0
        batch, self._unsaved = self._unsaved, {}
        try:
            table, column = self._table, self._id_column
            await db.execute(
                f"""INSERT INTO {table} ({column}, seq)
                   SELECT * FROM unnest($1::bigint[], $2::bigint[])
                   ON CONFLICT ({column}) DO UPDATE
                   SET seq = GREATEST({table}.seq, EXCLUDED.seq), updated_at = now()""",
                list(batch), list(batch.values()),
            )
        except BaseException:
            for lot_id, seq in batch.items():
                if seq > self._unsaved.get(lot_id, 0):
                    self._unsaved[lot_id] = seq
            raise
        return len(batch)


async def rebuild_grace_left_ms(redis: Redis, gate_key: str, grace_ms: int) -> int:
    """Return how long a rebuild must still wait, in ms; 0 means rebuild now.

    The first call for a lost lot or campaign stores the Redis time in `gate_key`
    and returns the whole grace. Later calls count from that time. Web processes
    save their acknowledged sequence numbers every couple of seconds, so a grace
    longer than that lets the hold check see every mark a running process had.
    The caller deletes `gate_key` once the rebuild is done.
    """
    if grace_ms <= 0:
        return 0
    seconds, micros = await redis.time()
    now_ms = int(seconds) * 1000 + int(micros) // 1000
    # The gate outlives the grace by far, so a rebuild that keeps failing still
    # counts from the first miss. It expires, so a gate left behind goes away.
    if await redis.set(gate_key, now_ms, nx=True, px=grace_ms * 20):
        return grace_ms
    first_seen_ms = int(await redis.get(gate_key) or now_ms)
    return max(0, grace_ms - (now_ms - first_seen_ms))

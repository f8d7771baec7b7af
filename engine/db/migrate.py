"""Versioned SQL migrations, applied in file-name order at start.

Several processes may start at once; an advisory lock makes one of them apply the
migrations while the others wait and then find nothing left to do.
"""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_ID = 0x6A616E67  # "jang"

log = logging.getLogger("jangteo.migrate")


async def apply_migrations(pool: asyncpg.Pool) -> list[str]:
    """Apply every migration not yet recorded; return the versions applied now."""
    applied_now: list[str] = []
    async with pool.acquire() as connection:
        await connection.execute("SELECT pg_advisory_lock($1)", _LOCK_ID)
        try:
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {row["version"] for row in await connection.fetch("SELECT version FROM schema_migrations")}
            for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
                version = path.stem
                if version in done:
                    continue
                async with connection.transaction():
                    await connection.execute(path.read_text(encoding="utf-8"))
                    await connection.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                log.info("migration applied version=%s", version)
                applied_now.append(version)
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", _LOCK_ID)
    return applied_now

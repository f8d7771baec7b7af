"""Commission rates by origin x kind with effective dates, floored to the won."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timezone

import asyncpg
import pytest
import pytest_asyncio

from engine.commission import CommissionRule, commission_won, pick_rate_bp, rate_bp_at

NOW = datetime(2025, 9, 1, tzinfo=timezone.utc)


@pytest_asyncio.fixture
async def connection(pg_pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection inside a transaction that is rolled back, so added rules stay private."""
    async with pg_pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        try:
            yield conn
        finally:
            await transaction.rollback()


@pytest.mark.parametrize(
    ("amount_won", "rate_bp", "expected_won"),
    [
        (12_345, 400, 493),
        (12_345, 500, 617),
        (12_345, 1_000, 1_234),
        (99, 400, 3),
        (0, 1_000, 0),
        (10_000, 10_000, 10_000),
    ],
)
def test_commission_floors_to_won(amount_won: int, rate_bp: int, expected_won: int) -> None:
    """The commission is amount x rate / 10,000, rounded down to the won."""
    assert commission_won(amount_won, rate_bp) == expected_won


def test_commission_rejects_bad_rate() -> None:
    """A rate above 10,000 bp or a negative amount raises ValueError."""
    with pytest.raises(ValueError):
        commission_won(1_000, 10_001)
    with pytest.raises(ValueError):
        commission_won(-1, 400)


@pytest.mark.parametrize(
    ("is_local", "kind", "expected_bp"),
    [(True, "farm", 400), (True, "manufactured", 500), (False, "farm", 1_000), (False, "manufactured", 1_000)],
)
async def test_default_rules_by_origin_and_kind(connection, is_local: bool, kind: str, expected_bp: int) -> None:
    """The seeded rules charge local farm 400 bp, local manufactured 500 bp and outside goods 1,000 bp."""
    assert await rate_bp_at(connection, is_local=is_local, kind=kind, at=NOW) == expected_bp


async def test_rule_applies_from_effective_date(connection) -> None:
    """A new rule applies to sales at or after its effective date and not before."""
    changed_at = datetime(2025, 10, 1, tzinfo=timezone.utc)
    await connection.execute(
        "INSERT INTO commission_rules (is_local, kind, rate_bp, effective_from) VALUES (true, 'farm', 300, $1)",
        changed_at,
    )
    before = datetime(2025, 9, 30, 23, 59, 59, tzinfo=timezone.utc)
    assert await rate_bp_at(connection, is_local=True, kind="farm", at=before) == 400
    assert await rate_bp_at(connection, is_local=True, kind="farm", at=changed_at) == 300
    assert await rate_bp_at(connection, is_local=True, kind="manufactured", at=changed_at) == 500


async def test_later_any_kind_rule_overrides(connection) -> None:
    """A later rule for any kind replaces an earlier kind-specific rule."""
    changed_at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    await connection.execute(
        "INSERT INTO commission_rules (is_local, kind, rate_bp, effective_from) VALUES (true, NULL, 450, $1)",
        changed_at,
    )
    assert await rate_bp_at(connection, is_local=True, kind="farm", at=changed_at) == 450
    assert await rate_bp_at(connection, is_local=True, kind="farm", at=NOW) == 400


def test_pick_rate_matches_database_order() -> None:
    """The in-memory choice prefers the latest date, then the exact kind, then the defaults."""
    start = datetime(2000, 1, 1, tzinfo=timezone.utc)
    later = datetime(2025, 1, 1, tzinfo=timezone.utc)
    rules = [
        CommissionRule(False, None, 1_000, start),
        CommissionRule(False, "farm", 800, later),
        CommissionRule(False, None, 900, later),
    ]
    assert pick_rate_bp(rules, is_local=False, kind="farm", at=NOW) == 800
    assert pick_rate_bp(rules, is_local=False, kind="manufactured", at=NOW) == 900
    assert pick_rate_bp(rules, is_local=False, kind="farm", at=start) == 1_000
    assert pick_rate_bp([], is_local=True, kind="manufactured", at=NOW) == 500

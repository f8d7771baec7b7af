"""Commission rates and amounts: basis points by origin x kind, with effective dates.

A rule applies from its `effective_from`. For a sale at time t, the rule with the
latest `effective_from <= t` among those matching the product's origin and kind
wins. Of two rules with the same date, the one for the exact kind wins over the
any-kind rule.
Without any stored rule the defaults below apply. The commission is floored to
the won, so the supplier never receives less than amount minus commission.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

FARM = "farm"
MANUFACTURED = "manufactured"

# Defaults: local farm/specialty goods 4 %, other local goods 5 %, goods from
# outside the district 10 %, whatever their kind.
DEFAULT_RATES_BP: dict[tuple[bool, str | None], int] = {
    (True, FARM): 400,
    (True, MANUFACTURED): 500,
    (False, None): 1000,
}

BP_PER_UNIT = 10_000


@dataclass(frozen=True)
class CommissionRule:
    is_local: bool
    kind: str | None  # None: any kind
    rate_bp: int
    effective_from: datetime


def commission_won(amount_won: int, rate_bp: int) -> int:
    """Return the commission on `amount_won` at `rate_bp`, floored to the won."""
    if amount_won < 0 or not 0 <= rate_bp <= BP_PER_UNIT:
        raise ValueError(f"commission needs amount_won >= 0 and 0 <= rate_bp <= 10000, got {amount_won}, {rate_bp}")
    return amount_won * rate_bp // BP_PER_UNIT


def default_rate_bp(is_local: bool, kind: str) -> int:
    return DEFAULT_RATES_BP.get((is_local, kind), DEFAULT_RATES_BP.get((is_local, None), 1000))


def pick_rate_bp(rules: list[CommissionRule], *, is_local: bool, kind: str, at: datetime) -> int:
    """Return the rate of the rule in effect at `at` for this origin and kind."""
    candidates = [
        rule for rule in rules
        if rule.is_local == is_local and rule.kind in (kind, None) and rule.effective_from <= at
    ]
    if not candidates:
        return default_rate_bp(is_local, kind)
    best = max(candidates, key=lambda rule: (rule.effective_from, rule.kind is not None))
    return best.rate_bp


async def rate_bp_at(connection: asyncpg.Connection, *, is_local: bool, kind: str, at: datetime) -> int:
    """Read the rate in effect at `at` from `commission_rules` (defaults when none matches)."""
    row = await connection.fetchrow(
        """SELECT rate_bp FROM commission_rules
           WHERE is_local = $1 AND (kind = $2 OR kind IS NULL) AND effective_from <= $3
           ORDER BY effective_from DESC, (kind IS NOT NULL) DESC
           LIMIT 1""",
        is_local, kind, at,
    )
    return row["rate_bp"] if row else default_rate_bp(is_local, kind)


async def record_sale_entries(
    connection: asyncpg.Connection,
    *,
    order_id: int,
    supplier_id: int,
    amount_won: int,
    is_local: bool,
    kind: str,
    sold_at: datetime,
) -> int:
    """Write the order's `sale` and `commission` rows to `money_ledger`; return the commission.

    Both rows are unique per order (`money_ledger_once_key`), so a second call for the
    same order raises UniqueViolationError instead of charging twice. Call it inside
    the transaction that creates the order.
    """
    rate_bp = await rate_bp_at(connection, is_local=is_local, kind=kind, at=sold_at)
    commission = commission_won(amount_won, rate_bp)
    await connection.execute(
        """INSERT INTO money_ledger (order_id, supplier_id, entry, amount_won, rate_bp)
           VALUES ($1, $2, 'sale', $3, NULL), ($1, $2, 'commission', $4, $5)""",
        order_id, supplier_id, amount_won, commission, rate_bp,
    )
    return commission

"""The rules of a group buy (공동구매) with price tiers, as plain Python.

This module is the model: `lua/pledge.lua` applies the same rules atomically inside
Redis, and the property tests require both to agree on totals, participants, price
and rejections for random pledge sequences. Nothing here does I/O.

A pledge states the member's new total in units: a first pledge, a change (another
total) and a cancellation (0) are the same request. A pledge counts only when the
server receives it strictly before the deadline. It is checked against the
per-member limit and the stock cap and, when it does not fit, rejected whole. Every
participant pays one final unit price: the tier reached by the committed total at
the close. Tier thresholds are inclusive, and below the first threshold the list
price applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

MAX_UNITS = 100_000  # the largest pledge, stock cap or tier threshold in units
MAX_PRICE_WON = 100_000_000  # 1억원 per unit

# Campaign statuses shared by Redis and PostgreSQL. "scheduled" is derived from the
# start time while the campaign is live; Redis stores "open" for it.
SCHEDULED = "scheduled"
OPEN = "open"
CLOSING = "closing"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
HELD = "held"
FINAL_STATUSES = frozenset({SUCCEEDED, FAILED, CANCELLED, HELD})


class InvalidUnits(ValueError):
    """A unit count that is not plain ASCII digits within 0..MAX_UNITS."""


class InvalidTiers(ValueError):
    """A tier table that cannot be used; `code` is a stable error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_units(text: str | int) -> int:
    """Parse a pledge's unit count; only plain ASCII digits within 0..MAX_UNITS pass.

    0 cancels a pledge. Rejects signs, separators, decimals, exponents, full-width
    digits and booleans.
    """
    if isinstance(text, bool):
        raise InvalidUnits("units must be digits, got a boolean")
    if isinstance(text, int):
        value = text
    else:
        if not isinstance(text, str) or not text or len(text) > 6:
            raise InvalidUnits(f"units must be 1 to 6 ASCII digits, got {text!r:.40}")
        if not (text.isascii() and text.isdigit()):
            raise InvalidUnits(f"units must be ASCII digits only, got {text!r:.40}")
        value = int(text)
    if not 0 <= value <= MAX_UNITS:
        raise InvalidUnits(f"units must be between 0 and {MAX_UNITS}, got {value}")
    return value


def validate_tiers(
    tiers: Sequence[Sequence[int]], list_price_won: int, stock_cap_units: int | None = None
) -> tuple[tuple[int, int], ...]:
    """Return the tiers as `(min_units, unit_price_won)` tuples, or raise InvalidTiers.

    A usable table has at least one tier, thresholds of at least 1 unit that ascend
    strictly (and, given a cap, reach at most the cap), and prices of at least 1 won
    that descend strictly and never exceed the list price.
    """
    try:
        rows = tuple((_whole(threshold), _whole(price)) for threshold, price in tiers)
    except (TypeError, ValueError):
        raise InvalidTiers("invalid_tiers", "each tier must be a pair of whole numbers [min_units, unit_price_won]") from None
    if not rows:
        raise InvalidTiers("tiers_required", "a campaign needs at least one price tier")
    for threshold, price in rows:
        if not 1 <= threshold <= MAX_UNITS:
            raise InvalidTiers("invalid_tier_units", f"tier thresholds must be 1 to {MAX_UNITS} units, got {threshold}")
        if not 1 <= price <= MAX_PRICE_WON:
            raise InvalidTiers("invalid_tier_price", f"tier prices must be 1 to {MAX_PRICE_WON} won, got {price}")
        if price > list_price_won:
            raise InvalidTiers("tier_price_above_list", f"tier price {price} is above the list price {list_price_won}")
        if stock_cap_units is not None and threshold > stock_cap_units:
            raise InvalidTiers("tier_above_cap", f"tier threshold {threshold} is above the stock cap {stock_cap_units}")
    for (units_a, price_a), (units_b, price_b) in zip(rows, rows[1:]):
        if units_b <= units_a:
            raise InvalidTiers("tiers_not_ascending", "tier thresholds must ascend strictly")
        if price_b >= price_a:
            raise InvalidTiers("tier_prices_not_descending", "tier prices must descend strictly")
    return rows


def _whole(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected a whole number, got {value!r:.40}")
    return value


@dataclass(frozen=True)
class CampaignTerms:
    """What a campaign was created with; fixed while it runs. Times are epoch ms."""

    campaign_id: int
    supplier_id: int
    list_price_won: int
    tiers: tuple[tuple[int, int], ...]
    min_total_units: int
    min_buyers: int | None
    stock_cap_units: int
    per_member_limit: int
    start_ms: int
    deadline_ms: int
    close_when_sold_out: bool = False


@dataclass(frozen=True)
class CampaignState:
    """Live state of a campaign; `pledges` maps user id to units (only members with units > 0)."""

    status: str = OPEN
    seq: int = 0
    committed_units: int = 0
    participants: int = 0
    pledges: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PledgeDecision:
    """The result of one pledge.

    `units_left` is the stock left after an accepted pledge, or before a rejected
    one. `units_allowed` is the largest total the member may pledge now (limited by
    the per-member limit and the stock left).
    """

    accepted: bool
    code: str
    state: CampaignState
    units_left: int
    units_allowed: int
    previous_units: int = 0


def unit_price_for(terms: CampaignTerms, committed_units: int) -> int:
    """Return the unit price at `committed_units`: the highest tier reached, else the list price."""
    price = terms.list_price_won
    for threshold, tier_price in terms.tiers:
        if committed_units >= threshold:
            price = tier_price
        else:
            break
    return price


def at_most_price_won(terms: CampaignTerms) -> int:
    """Return the unit price at the minimum total: the most a pledger pays if the campaign succeeds."""
    return unit_price_for(terms, terms.min_total_units)


def next_tier(terms: CampaignTerms, committed_units: int) -> tuple[int, int] | None:
    """Return the first tier above `committed_units` as (min_units, unit_price_won), or None."""
    for threshold, tier_price in terms.tiers:
        if threshold > committed_units:
            return threshold, tier_price
    return None


def stock_left(terms: CampaignTerms, state: CampaignState) -> int:
    return max(0, terms.stock_cap_units - state.committed_units)


def sold_out(terms: CampaignTerms, state: CampaignState) -> bool:
    return state.committed_units >= terms.stock_cap_units


def minimum_met(terms: CampaignTerms, state: CampaignState) -> bool:
    """Whether the committed total (and the number of buyers, if set) reached the minimum."""
    if state.committed_units < terms.min_total_units:
        return False
    return terms.min_buyers is None or state.participants >= terms.min_buyers


def is_due(terms: CampaignTerms, state: CampaignState, now_ms: int) -> bool:
    """Whether an open campaign should close: its deadline passed, or it sold out with the switch on."""
    if now_ms >= terms.deadline_ms:
        return True
    return terms.close_when_sold_out and sold_out(terms, state)


def check_open(terms: CampaignTerms, state: CampaignState, now_ms: int) -> str | None:
    """Return a rejection code when the campaign takes no pledge at `now_ms`, else None."""
    if state.status == CANCELLED:
        return "campaign_cancelled"
    if state.status == HELD:
        return "campaign_held"
    if state.status != OPEN or now_ms >= terms.deadline_ms:
        return "campaign_closed"
    if now_ms < terms.start_ms:
        return "campaign_not_started"
    return None


def units_allowed(terms: CampaignTerms, state: CampaignState, user_id: int) -> int:
    """Return the largest total `user_id` may pledge now, by the limit and the stock left."""
    previous = state.pledges.get(user_id, 0)
    return min(terms.per_member_limit, previous + stock_left(terms, state))


def apply_pledge(
    terms: CampaignTerms,
    state: CampaignState,
    *,
    user_id: int,
    units: int,
    now_ms: int,
    pledger_supplier_id: int | None = None,
    expected_units: int | None = None,
) -> PledgeDecision:
    """Set a member's total to `units` (0 cancels) at server time `now_ms`; rejections change nothing.

    Checks in order: campaign status and time, own goods, the unit count, the
    expected total (when given), an unchanged total, the per-member limit, then the
    stock. `expected_units` makes the pledge a compare-and-set: it is rejected with
    `pledge_changed` unless the member's total is that number (an invalid one is
    `invalid_units`). A decrease is always accepted while the campaign is open,
    even when it is sold out.
    """
    previous = state.pledges.get(user_id, 0)

    def reject(code: str) -> PledgeDecision:
        return PledgeDecision(
            False, code, state, stock_left(terms, state), units_allowed(terms, state, user_id), previous
        )

    closed = check_open(terms, state, now_ms)
    if closed:
        return reject(closed)
    if pledger_supplier_id is not None and pledger_supplier_id == terms.supplier_id:
        return reject("own_goods")
    if not _valid_units(units):
        return reject("invalid_units")
    if expected_units is not None:
        if not _valid_units(expected_units):
            return reject("invalid_units")
        if expected_units != previous:
            return reject("pledge_changed")
    if units == previous:
        return reject("no_pledge" if units == 0 else "pledge_unchanged")
    if units > terms.per_member_limit:
        return reject("over_member_limit")
    delta = units - previous
    left = stock_left(terms, state)
    if delta > 0 and left == 0:
        return reject("sold_out")
    if delta > left:
        return reject("over_stock")

    pledges = dict(state.pledges)
    if units:
        pledges[user_id] = units
    else:
        pledges.pop(user_id, None)
    new_state = replace(
        state,
        seq=state.seq + 1,
        committed_units=state.committed_units + delta,
        participants=len(pledges),
        pledges=pledges,
    )
    return PledgeDecision(
        True, "accepted", new_state, stock_left(terms, new_state),
        units_allowed(terms, new_state, user_id), previous,
    )


def _valid_units(units: object) -> bool:
    return isinstance(units, int) and not isinstance(units, bool) and 0 <= units <= MAX_UNITS


def apply_release(
    terms: CampaignTerms, state: CampaignState, *, user_id: int, units: int, now_ms: int
) -> PledgeDecision:
    """Release up to `units` of a member's pledge whose up-front payment hold expired.

    Accepted only while the campaign is open and before its deadline, so the total
    at the deadline is final. Releases what the member still has when that is less.
    """
    previous = state.pledges.get(user_id, 0)

    def reject(code: str) -> PledgeDecision:
        return PledgeDecision(
            False, code, state, stock_left(terms, state), units_allowed(terms, state, user_id), previous
        )

    closed = check_open(terms, state, now_ms)
    if closed:
        return reject(closed)
    if isinstance(units, bool) or not isinstance(units, int) or not 1 <= units <= MAX_UNITS:
        return reject("invalid_units")
    if previous == 0:
        return reject("no_pledge")
    released = min(units, previous)
    pledges = dict(state.pledges)
    if previous - released:
        pledges[user_id] = previous - released
    else:
        pledges.pop(user_id)
    new_state = replace(
        state,
        seq=state.seq + 1,
        committed_units=state.committed_units - released,
        participants=len(pledges),
        pledges=pledges,
    )
    return PledgeDecision(
        True, "accepted", new_state, stock_left(terms, new_state),
        units_allowed(terms, new_state, user_id), previous,
    )


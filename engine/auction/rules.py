"""The rules of an English auction with proxy bidding, as plain Python.

This module is the model: `lua/bid.lua` applies the same rules atomically inside
Redis, and the property tests require both to agree on price, leader and end time
for random bid sequences. Nothing here does I/O.

Proxy bidding: a bidder states a maximum. A challenger whose maximum beats the
leader's takes the lead at the leader's maximum plus one increment (capped at the
challenger's maximum); otherwise the leader stays in front at the challenger's
maximum plus one increment (capped at the leader's maximum). Equal maximums: the
earlier one leads. While a hidden reserve is unmet, the price is pushed as far
toward the reserve as the leader's maximum allows.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Sequence

# (from_won, step_won): the step applies when the amount being exceeded is >= from_won.
DEFAULT_INCREMENTS: tuple[tuple[int, int], ...] = (
    (0, 100),
    (10_000, 500),
    (50_000, 1_000),
    (100_000, 5_000),
    (500_000, 10_000),
    (1_000_000, 20_000),
)

MAX_AMOUNT_WON = 10_000_000_000  # 100억원: larger maximums are rejected as input errors
MAX_INCREMENT_BANDS = 20

# Lot statuses shared by Redis and PostgreSQL. "scheduled" is derived from the start
# time while the lot is live; Redis stores "open" for it.
OPEN = "open"
CLOSING = "closing"
SOLD = "sold"
UNSOLD = "unsold"
CANCELLED = "cancelled"
HELD = "held"


class InvalidAmount(ValueError):
    """An amount that is not plain ASCII digits within 1..MAX_AMOUNT_WON."""


def parse_amount_won(text: str | int) -> int:
    """Parse a bid amount in whole won; only plain ASCII digits are accepted.

    Rejects signs, separators, decimals, exponents, full-width digits, NaN and
    values outside 1..MAX_AMOUNT_WON.
    """
    if isinstance(text, bool):
        raise InvalidAmount("amount must be digits, got a boolean")
    if isinstance(text, int):
        value = text
    else:
        if not isinstance(text, str) or not text or len(text) > 11:
            raise InvalidAmount(f"amount must be 1 to 11 ASCII digits, got {text!r:.40}")
        if not (text.isascii() and text.isdigit()):
            raise InvalidAmount(f"amount must be ASCII digits only, got {text!r:.40}")
        value = int(text)
    if not 1 <= value <= MAX_AMOUNT_WON:
        raise InvalidAmount(f"amount must be between 1 and {MAX_AMOUNT_WON}, got {value}")
    return value


def validate_increments(table: Sequence[Sequence[int]]) -> tuple[tuple[int, int], ...]:
    """Return the table as tuples, or raise ValueError when it is not a usable table."""
    rows = tuple((int(start), int(step)) for start, step in table)
    if len(rows) > MAX_INCREMENT_BANDS:
        # The bid script walks the bands on every bid.
        raise ValueError(f"increment table has {len(rows)} bands, at most {MAX_INCREMENT_BANDS} allowed")
    if any(not 0 <= value <= MAX_AMOUNT_WON for row in rows for value in row):
        raise ValueError(f"increment table values must be 0 to {MAX_AMOUNT_WON} won")
    if not rows or rows[0][0] != 0:
        raise ValueError("increment table must start at 0 won")
    for (start_a, _), (start_b, _) in zip(rows, rows[1:]):
        if start_b <= start_a:
            raise ValueError("increment table bands must ascend")
    if any(step <= 0 for _, step in rows):
        raise ValueError("increment steps must be positive")
    return rows


def increment_for(amount_won: int, table: Sequence[tuple[int, int]] = DEFAULT_INCREMENTS) -> int:
    """Return the step for exceeding `amount_won` (the band containing it)."""
    step = table[0][1]
    for start, band_step in table:
        if amount_won >= start:
            step = band_step
        else:
            break
    return step


@dataclass(frozen=True)
class LotTerms:
    """Terms a lot was created with; fixed while it runs."""

    lot_id: int
    supplier_id: int
    start_price_won: int
    start_ms: int
    end_ms: int
    reserve_won: int | None = None
    buy_now_won: int | None = None
    hard_cap_ms: int | None = None
    window_ms: int = 120_000
    extension_ms: int = 120_000
    increments: tuple[tuple[int, int], ...] = DEFAULT_INCREMENTS


@dataclass(frozen=True)
class LotState:
    """Live state of a lot; `end_ms` is the current (possibly extended) end."""

    end_ms: int
    status: str = OPEN
    seq: int = 0
    price_won: int = 0
    leader_id: int | None = None
    leader_max_won: int = 0
    bid_count: int = 0
    maxima: dict[int, int] = field(default_factory=dict)

    @classmethod
    def initial(cls, terms: LotTerms) -> "LotState":
        return cls(end_ms=terms.end_ms)


@dataclass(frozen=True)
class BidDecision:
    accepted: bool
    code: str
    state: LotState
    min_next_won: int
    previous_leader_id: int | None = None


def reserve_met(terms: LotTerms, state: LotState) -> bool | None:
    """Return None when the lot has no reserve, else whether the price has reached it."""
    if terms.reserve_won is None:
        return None
    return state.bid_count > 0 and state.price_won >= terms.reserve_won


def min_next_bid(terms: LotTerms, state: LotState) -> int:
    """Smallest maximum the next bid may state."""
    if state.bid_count == 0:
        return terms.start_price_won
    return state.price_won + increment_for(state.price_won, terms.increments)


def buy_now_available(terms: LotTerms, state: LotState) -> bool:
    return terms.buy_now_won is not None and state.bid_count == 0 and state.status == OPEN


def _push_toward_reserve(terms: LotTerms, price: int, leader_max: int) -> int:
    if terms.reserve_won is not None and price < terms.reserve_won:
        return max(price, min(leader_max, terms.reserve_won))
    return price


def _extended_end(terms: LotTerms, end_ms: int, now_ms: int) -> int:
    if now_ms < end_ms - terms.window_ms:
        return end_ms
    target = now_ms + terms.extension_ms
    if terms.hard_cap_ms is not None:
        target = min(target, terms.hard_cap_ms)
    # A hard cap earlier than the current end stops extensions but never shortens the lot.
    return max(end_ms, target)


def _rejection(terms: LotTerms, state: LotState, code: str) -> BidDecision:
    return BidDecision(False, code, state, min_next_bid(terms, state))


def check_open(terms: LotTerms, state: LotState, now_ms: int) -> str | None:
    """Return a rejection code when the lot takes no action at `now_ms`, else None."""
    if state.status == CANCELLED:
        return "lot_cancelled"
    if state.status == HELD:
        return "lot_held"
    if state.status != OPEN or now_ms >= state.end_ms:
        return "lot_ended"
    if now_ms < terms.start_ms:
        return "lot_not_started"
    return None


def apply_bid(
    terms: LotTerms,
    state: LotState,
    *,
    user_id: int,
    amount_won: int,
    now_ms: int,
    bidder_supplier_id: int | None = None,
) -> BidDecision:
    """Apply one bid (a maximum) at server time `now_ms`; rejections change nothing."""
    closed = check_open(terms, state, now_ms)
    if closed:
        return _rejection(terms, state, closed)
    if bidder_supplier_id is not None and bidder_supplier_id == terms.supplier_id:
        return _rejection(terms, state, "own_lot")

    if isinstance(amount_won, bool) or not isinstance(amount_won, int) or not 1 <= amount_won <= MAX_AMOUNT_WON:
        return _rejection(terms, state, "invalid_amount")
    minimum = min_next_bid(terms, state)
    if amount_won < minimum:
        return _rejection(terms, state, "bid_too_low")

    leader, leader_max, price = state.leader_id, state.leader_max_won, state.price_won
    if state.bid_count == 0:
        leader, leader_max, price = user_id, amount_won, terms.start_price_won
    elif user_id == leader:
        if amount_won <= leader_max:
            return _rejection(terms, state, "max_not_raised")
        leader_max = amount_won
    elif amount_won > leader_max:
        price = min(amount_won, leader_max + increment_for(leader_max, terms.increments))
        leader, leader_max = user_id, amount_won
    else:
        price = min(leader_max, amount_won + increment_for(amount_won, terms.increments))
    price = _push_toward_reserve(terms, price, leader_max)

    maxima = dict(state.maxima)
    maxima[user_id] = max(maxima.get(user_id, 0), amount_won)
    new_state = replace(
        state,
        seq=state.seq + 1,
        price_won=price,
        leader_id=leader,
        leader_max_won=leader_max,
        bid_count=state.bid_count + 1,
        end_ms=_extended_end(terms, state.end_ms, now_ms),
        maxima=maxima,
    )
    return BidDecision(True, "accepted", new_state, min_next_bid(terms, new_state), state.leader_id)


def apply_buy_now(
    terms: LotTerms,
    state: LotState,
    *,
    user_id: int,
    now_ms: int,
    bidder_supplier_id: int | None = None,
) -> BidDecision:
    """Buy the lot at its buy-now price, which ends it at once."""
    closed = check_open(terms, state, now_ms)
    if closed:
        return _rejection(terms, state, closed)
    if bidder_supplier_id is not None and bidder_supplier_id == terms.supplier_id:
        return _rejection(terms, state, "own_lot")
    if not buy_now_available(terms, state):
        return _rejection(terms, state, "buy_now_unavailable")
    assert terms.buy_now_won is not None
    new_state = replace(
        state,
        status=CLOSING,
        seq=state.seq + 1,
        price_won=terms.buy_now_won,
        leader_id=user_id,
        leader_max_won=terms.buy_now_won,
        bid_count=1,
        end_ms=now_ms,
        maxima={user_id: terms.buy_now_won},
    )
    return BidDecision(True, "accepted", new_state, terms.buy_now_won, None)


def replay_bids(
    terms: LotTerms, bids: Sequence[tuple[int, int, int]], *, end_ms: int | None = None
) -> LotState:
    """Recompute the price and leader from (user_id, amount_won, server_ms) bids in order.

    Used after a staff void: bids that the rules now reject are skipped, and the end
    time is kept as it was (a void never shortens a lot).
    """
    state = LotState.initial(terms)
    for user_id, amount_won, at_ms in bids:
        decision = apply_bid(
            terms, replace(state, end_ms=max(state.end_ms, at_ms + 1)),
            user_id=user_id, amount_won=amount_won, now_ms=at_ms,
        )
        if decision.accepted:
            state = decision.state
    if end_ms is not None:
        state = replace(state, end_ms=end_ms)
    return state

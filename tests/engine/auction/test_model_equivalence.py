"""bid.lua and rules.py agree on every bid of random lots and random bid sequences."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auction_cases import SUPPLIER_ID, lot_load
from engine.auction.live import AuctionLive
from engine.auction.rules import (
    MAX_AMOUNT_WON,
    LotState,
    LotTerms,
    apply_bid,
    apply_buy_now,
    min_next_bid,
)

# Lot ids unique across examples, so every example starts from an empty lot.
_lot_ids = itertools.count(1_000)

END_AHEAD_MS = 600_000
# A window longer than the time left, so every accepted bid is in the soft-close window.
WINDOW_S = 3_600


@dataclass(frozen=True)
class LotPlan:
    start_price: int
    reserve_extra: int | None
    buy_now_extra: int | None
    hard_cap_offset_ms: int | None
    extension_s: int


@dataclass(frozen=True)
class BidPlan:
    """One request, whose amount `target` derives from the lot's state at that moment."""

    user: int
    target: str
    offset: int
    as_supplier: bool = False


lots = st.builds(
    LotPlan,
    start_price=st.one_of(
        st.sampled_from([1, 100, 9_900, 9_999, 10_000, 49_500, 99_000, 100_000, 495_000, 990_000, 1_000_000]),
        st.integers(1, 3_000_000),
    ),
    reserve_extra=st.none() | st.integers(0, 2_000_000),
    buy_now_extra=st.none() | st.integers(0, 2_000_000),
    # Some caps fall before the end, which must stop extensions without shortening the lot.
    hard_cap_offset_ms=st.none() | st.integers(-100_000, 1_500_000),
    extension_s=st.sampled_from([60, 900, 1_800]),
)

bids = st.lists(
    st.builds(
        BidPlan,
        user=st.integers(1, 5),
        target=st.sampled_from(
            ["below_min", "min", "leader_max", "above_leader_max", "above_min", "reserve", "huge", "any", "buy_now"]
        ),
        offset=st.integers(0, 60_000),
        as_supplier=st.booleans(),
    ),
    min_size=1,
    max_size=25,
)


def _amount(plan: BidPlan, terms: LotTerms, state: LotState) -> int:
    minimum = min_next_bid(terms, state)
    match plan.target:
        case "below_min":
            return max(0, minimum - 1 - plan.offset)
        case "min":
            return minimum
        case "leader_max":
            return max(state.leader_max_won, 1)
        case "above_leader_max":
            return state.leader_max_won + 1 + plan.offset
        case "above_min":
            return minimum + plan.offset
        case "reserve":
            return terms.reserve_won or minimum
        case "huge":
            return MAX_AMOUNT_WON - plan.offset
        case _:
            return 1 + plan.offset * 50


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lot=lots, plans=bids)
async def test_lua_matches_rules(live: AuctionLive, lot: LotPlan, plans: list[BidPlan]) -> None:
    """After every bid both implementations report the same code, price, leader, maximum, count, end and status."""
    now = await live.server_time_ms()
    end_ms = now + END_AHEAD_MS
    reserve = None if lot.reserve_extra is None else lot.start_price + lot.reserve_extra
    buy_now = None if lot.buy_now_extra is None else (reserve or lot.start_price) + lot.buy_now_extra
    terms = LotTerms(
        lot_id=next(_lot_ids),
        supplier_id=SUPPLIER_ID,
        start_price_won=lot.start_price,
        start_ms=now - 1_000,
        end_ms=end_ms,
        reserve_won=reserve,
        buy_now_won=buy_now,
        hard_cap_ms=None if lot.hard_cap_offset_ms is None else end_ms + lot.hard_cap_offset_ms,
        window_ms=WINDOW_S * 1_000,
        extension_ms=lot.extension_s * 1_000,
    )
    assert await live.load(lot_load(terms))
    lot_key = live.keys.lot_state(terms.lot_id)

    state = LotState.initial(terms)
    for number, plan in enumerate(plans, start=1):
        # User 5 sometimes bids from the lot's supplier account.
        supplier = SUPPLIER_ID if plan.as_supplier and plan.user == 5 else None
        client_id = f"c{number}"
        if plan.target == "buy_now":
            outcome = await live.buy_now(
                terms.lot_id, user_id=plan.user, client_id=client_id, bidder_masked="김*수",
                bidder_supplier_id=supplier,
            )
        else:
            amount = _amount(plan, terms, state)
            outcome = await live.place_bid(
                terms.lot_id, user_id=plan.user, client_id=client_id, amount_won=amount,
                bidder_masked="김*수", bidder_supplier_id=supplier,
            )
        snapshot = outcome.snapshot
        assert snapshot is not None

        # Judge the bid at the moment the script judged it.
        now_ms = outcome.receipt.server_ms if outcome.receipt else snapshot.server_ms
        if plan.target == "buy_now":
            decision = apply_buy_now(terms, state, user_id=plan.user, now_ms=now_ms, bidder_supplier_id=supplier)
        else:
            decision = apply_bid(
                terms, state, user_id=plan.user, amount_won=amount, now_ms=now_ms, bidder_supplier_id=supplier
            )
        state = decision.state

        where = f"bid {number} {plan} on {terms}"
        assert outcome.code == decision.code, where
        assert snapshot.price_won == state.price_won, where
        assert snapshot.leader_id == state.leader_id, where
        assert snapshot.bid_count == state.bid_count, where
        assert snapshot.end_ms == state.end_ms, where
        assert snapshot.status == state.status, where
        assert snapshot.seq == state.seq, where
        assert snapshot.min_next_won == min_next_bid(terms, state), where
        assert int(await live.redis.hget(lot_key, "leader_max")) == state.leader_max_won, where
        if outcome.receipt is not None:
            assert outcome.receipt.seq == state.seq, where
            assert outcome.receipt.end_ms == state.end_ms, where
            assert outcome.receipt.price_won == state.price_won, where
    assert await live.bidders(terms.lot_id) == state.maxima

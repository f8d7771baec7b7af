"""pledge.lua and rules.py agree on every pledge of random campaigns and random pledge sequences,
with and without an expected current total (compare-and-set)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from groupbuy_cases import SUPPLIER_ID, campaign_load
from engine.groupbuy.live import CampaignLive, CampaignSnapshot
from engine.groupbuy.rules import (
    MAX_UNITS,
    CampaignState,
    CampaignTerms,
    apply_pledge,
    minimum_met,
    next_tier,
    stock_left,
    unit_price_for,
)

# Campaign ids unique across examples, so every example starts from an empty campaign.
_campaign_ids = itertools.count(5_000)


@dataclass(frozen=True)
class CampaignPlan:
    list_price: int
    thresholds: tuple[int, ...]
    discounts: tuple[int, ...]
    min_total: int
    min_buyers: int | None
    cap_extra: int
    limit: int
    close_when_sold_out: bool


@dataclass(frozen=True)
class PledgePlan:
    """One request, whose new total `target` derives from the campaign's state at that moment."""

    user: int
    target: str
    amount: int
    as_supplier: bool = False
    expect: str = "none"  # the expected current total: none, current, stale or invalid


campaigns = st.builds(
    CampaignPlan,
    list_price=st.integers(1_000, 50_000),
    thresholds=st.lists(st.integers(1, 40), min_size=1, max_size=4, unique=True).map(lambda xs: tuple(sorted(xs))),
    discounts=st.lists(st.integers(1, 500), min_size=4, max_size=4).map(tuple),
    min_total=st.integers(1, 40),
    min_buyers=st.none() | st.integers(1, 5),
    cap_extra=st.integers(0, 30),
    limit=st.integers(1, 30),
    close_when_sold_out=st.booleans(),
)

pledges = st.lists(
    st.builds(
        PledgePlan,
        user=st.integers(1, 6),
        target=st.sampled_from(["any", "cancel", "limit", "over_limit", "fill", "over_stock", "same", "add_one"]),
        amount=st.integers(0, 45),
        as_supplier=st.booleans(),
        expect=st.sampled_from(["none", "current", "stale", "invalid"]),
    ),
    min_size=1,
    max_size=30,
)


def _terms(plan: CampaignPlan, campaign_id: int, now_ms: int) -> CampaignTerms:
    tiers: list[tuple[int, int]] = []
    price = plan.list_price
    for threshold, discount in zip(plan.thresholds, plan.discounts):
        price = max(1, price - discount)
        if tiers and price >= tiers[-1][1]:
            break
        tiers.append((threshold, price))
    cap = max(plan.min_total, plan.thresholds[-1]) + plan.cap_extra
    return CampaignTerms(
        campaign_id=campaign_id, supplier_id=SUPPLIER_ID, list_price_won=plan.list_price, tiers=tuple(tiers),
        min_total_units=plan.min_total, min_buyers=plan.min_buyers, stock_cap_units=cap,
        per_member_limit=plan.limit, start_ms=now_ms - 1_000, deadline_ms=now_ms + 600_000,
        close_when_sold_out=plan.close_when_sold_out,
    )


def _units(plan: PledgePlan, terms: CampaignTerms, state: CampaignState) -> int:
    current = state.pledges.get(plan.user, 0)
    left = stock_left(terms, state)
    match plan.target:
        case "cancel":
            return 0
        case "limit":
            return terms.per_member_limit
        case "over_limit":
            return terms.per_member_limit + 1 + plan.amount
        case "fill":
            return current + left
        case "over_stock":
            return current + left + 1
        case "same":
            return current
        case "add_one":
            return current + 1
        case _:
            return plan.amount


def _expected(plan: PledgePlan, state: CampaignState) -> int | None:
    current = state.pledges.get(plan.user, 0)
    match plan.expect:
        case "current":
            return current
        case "stale":
            # Another total: one below the current one when there is one, else one above.
            return current - 1 if plan.amount % 2 and current > 0 else current + 1
        case "invalid":
            return MAX_UNITS + 1
        case _:
            return None


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(campaign=campaigns, plans=pledges)
async def test_lua_matches_rules(live: CampaignLive, campaign: CampaignPlan, plans: list[PledgePlan]) -> None:
    """After every pledge both implementations report the same code, totals, participants, price and stock."""
    now = await live.server_time_ms()
    terms = _terms(campaign, next(_campaign_ids), now)
    assert await live.load(campaign_load(terms))

    state = CampaignState()
    for number, plan in enumerate(plans, start=1):
        # User 6 sometimes pledges from the campaign's supplier account.
        supplier = SUPPLIER_ID if plan.as_supplier and plan.user == 6 else None
        units = _units(plan, terms, state)
        expected = _expected(plan, state)
        outcome = await live.pledge(
            terms.campaign_id, user_id=plan.user, client_id=f"c{number}", units=units, pledger_supplier_id=supplier,
            expected_units=expected,
        )
        snapshot = outcome.snapshot
        assert snapshot is not None
        now_ms = outcome.receipt.server_ms if outcome.receipt else snapshot.server_ms
        decision = apply_pledge(
            terms, state, user_id=plan.user, units=units, now_ms=now_ms, pledger_supplier_id=supplier,
            expected_units=expected,
        )
        state = decision.state

        where = f"pledge {number} {plan} units={units} expected={expected} on {terms}"
        assert outcome.code == decision.code, where
        assert snapshot.seq == state.seq, where
        assert snapshot.committed_units == state.committed_units, where
        assert snapshot.participants == state.participants, where
        assert snapshot.unit_price_won == unit_price_for(terms, state.committed_units), where
        assert snapshot.minimum_met == minimum_met(terms, state), where
        assert outcome.units_left == decision.units_left, where
        assert snapshot == CampaignSnapshot.compute(terms, state, snapshot.server_ms), where
        upcoming = next_tier(terms, state.committed_units)
        assert snapshot.next_tier_units == (upcoming[0] if upcoming else None), where
        if not outcome.accepted:
            assert outcome.units_allowed == decision.units_allowed, where
            assert outcome.member_units == decision.previous_units, where
        assert 0 <= state.committed_units <= terms.stock_cap_units, where
        assert all(0 < units <= terms.per_member_limit for units in state.pledges.values()), where
    assert await live.pledges(terms.campaign_id) == state.pledges

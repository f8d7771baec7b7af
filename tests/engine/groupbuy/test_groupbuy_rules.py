"""The plain-Python group-buy rules: the case table, deadlines, tiers and input parsing."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from groupbuy_cases import CASES, Case, terms_for
from engine.groupbuy.rules import (
    CANCELLED,
    CLOSING,
    HELD,
    MAX_UNITS,
    CampaignState,
    CampaignTerms,
    InvalidTiers,
    InvalidUnits,
    apply_pledge,
    apply_release,
    at_most_price_won,
    is_due,
    minimum_met,
    next_tier,
    parse_units,
    stock_left,
    unit_price_for,
    validate_tiers,
)

KST = ZoneInfo("Asia/Seoul")
START_MS = 1_000_000
DEADLINE_MS = 10_000_000
NOW_MS = 5_000_000


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_rules_case_table(case: Case) -> None:
    """Every step of the case gives the stated code, committed units, participants, price, stock and minimum."""
    terms = terms_for(case, campaign_id=1, start_ms=START_MS, deadline_ms=DEADLINE_MS)
    state = CampaignState()
    for number, step in enumerate(case.steps, start=1):
        decision = apply_pledge(
            terms, state, user_id=step.user, units=step.units, now_ms=NOW_MS, pledger_supplier_id=step.supplier
        )
        state = decision.state
        where = f"step {number} of {case.id!r}"
        assert decision.code == step.code, where
        assert decision.accepted == (step.code == "accepted"), where
        assert state.committed_units == step.committed, where
        assert state.participants == step.participants, where
        assert unit_price_for(terms, state.committed_units) == step.price, where
        assert state.committed_units == sum(state.pledges.values()), where
        if step.units_left is not None:
            assert decision.units_left == step.units_left, where
        if step.minimum_met is not None:
            assert minimum_met(terms, state) == step.minimum_met, where


def test_rejection_changes_nothing() -> None:
    """A rejected pledge returns the same state object and no new sequence number."""
    terms = terms_for(CASES[0], campaign_id=1, start_ms=START_MS, deadline_ms=DEADLINE_MS)
    state = apply_pledge(terms, CampaignState(), user_id=1, units=10, now_ms=NOW_MS).state
    decision = apply_pledge(terms, state, user_id=2, units=500, now_ms=NOW_MS)
    assert not decision.accepted
    assert decision.state is state
    assert state.seq == 1


def test_over_member_limit_reports_units_allowed() -> None:
    """A pledge over the member limit returns the largest total the member may pledge."""
    terms = terms_for(CASES[0], campaign_id=1, start_ms=START_MS, deadline_ms=DEADLINE_MS)
    decision = apply_pledge(terms, CampaignState(), user_id=1, units=41, now_ms=NOW_MS)
    assert decision.code == "over_member_limit"
    assert decision.units_allowed == 40


def test_over_stock_reports_units_left_and_allowed() -> None:
    """A pledge of 3 when 2 remain is rejected whole; the member learns that 2 are left."""
    terms = replace(terms_for(CASES[0], campaign_id=1, start_ms=START_MS, deadline_ms=DEADLINE_MS), stock_cap_units=5)
    state = apply_pledge(terms, CampaignState(), user_id=1, units=3, now_ms=NOW_MS).state
    decision = apply_pledge(terms, state, user_id=2, units=3, now_ms=NOW_MS)
    assert decision.code == "over_stock"
    assert decision.units_left == 2
    assert decision.units_allowed == 2
    assert decision.state.committed_units == 3


# -- deadline and start -------------------------------------------------------------

def _terms(**changes: Any) -> CampaignTerms:
    return replace(terms_for(CASES[0], campaign_id=1, start_ms=START_MS, deadline_ms=DEADLINE_MS), **changes)


@pytest.mark.parametrize(
    ("now_ms", "code"),
    [
        (START_MS - 1, "campaign_not_started"),
        (START_MS, "accepted"),
        (DEADLINE_MS - 1, "accepted"),
        (DEADLINE_MS, "campaign_closed"),
        (DEADLINE_MS + 1, "campaign_closed"),
    ],
)
def test_deadline_and_start_boundaries(now_ms: int, code: str) -> None:
    """A pledge counts from the start up to 1 ms before the deadline; at the deadline it is closed."""
    decision = apply_pledge(_terms(), CampaignState(), user_id=1, units=1, now_ms=now_ms)
    assert decision.code == code


def test_cancel_at_deadline_is_rejected() -> None:
    """A cancellation is a pledge too: at the deadline it is rejected and the units stay committed."""
    terms = _terms()
    state = apply_pledge(terms, CampaignState(), user_id=1, units=5, now_ms=NOW_MS).state
    assert apply_pledge(terms, state, user_id=1, units=0, now_ms=DEADLINE_MS - 1).accepted
    decision = apply_pledge(terms, state, user_id=1, units=0, now_ms=DEADLINE_MS)
    assert decision.code == "campaign_closed"
    assert decision.state.committed_units == 5


def test_kst_midnight_deadline_on_utc_clock() -> None:
    """A deadline at midnight Korea time is 15:00 UTC the day before; 14:59:59.999 UTC counts, 15:00 does not."""
    deadline = datetime(2026, 12, 25, 0, 0, tzinfo=KST)
    deadline_ms = int(deadline.timestamp() * 1000)
    assert deadline.astimezone(timezone.utc) == datetime(2026, 12, 24, 15, 0, tzinfo=timezone.utc)
    terms = _terms(start_ms=deadline_ms - 86_400_000, deadline_ms=deadline_ms)
    before = datetime(2026, 12, 24, 14, 59, 59, 999_000, tzinfo=timezone.utc)
    at = datetime(2026, 12, 24, 15, 0, tzinfo=timezone.utc)
    assert apply_pledge(terms, CampaignState(), user_id=1, units=1, now_ms=int(before.timestamp() * 1000)).accepted
    late = apply_pledge(terms, CampaignState(), user_id=1, units=1, now_ms=int(at.timestamp() * 1000))
    assert late.code == "campaign_closed"


@pytest.mark.parametrize(
    ("status", "code"),
    [(CANCELLED, "campaign_cancelled"), (HELD, "campaign_held"), (CLOSING, "campaign_closed"), ("succeeded", "campaign_closed")],
)
def test_status_rejections(status: str, code: str) -> None:
    """A campaign that is not open rejects every pledge with a code naming why."""
    decision = apply_pledge(_terms(), CampaignState(status=status), user_id=1, units=1, now_ms=NOW_MS)
    assert decision.code == code


def test_invalid_units_rejected() -> None:
    """Negative, oversized, boolean and non-integer unit counts are rejected as invalid."""
    for units in (-1, MAX_UNITS + 1, True, 1.5):
        decision = apply_pledge(_terms(), CampaignState(), user_id=1, units=units, now_ms=NOW_MS)  # type: ignore[arg-type]
        assert decision.code == "invalid_units", units


def test_expected_units_compare_and_set() -> None:
    """With `expected_units`, a pledge applies only while the member's total is that number."""
    state = apply_pledge(_terms(), CampaignState(), user_id=1, units=3, now_ms=NOW_MS).state

    stale = apply_pledge(_terms(), state, user_id=1, units=5, now_ms=NOW_MS, expected_units=2)
    assert stale.code == "pledge_changed"
    assert stale.state is state
    assert stale.previous_units == 3

    current = apply_pledge(_terms(), state, user_id=1, units=5, now_ms=NOW_MS, expected_units=3)
    assert current.code == "accepted"
    assert current.state.pledges == {1: 5}

    first = apply_pledge(_terms(), state, user_id=2, units=4, now_ms=NOW_MS, expected_units=0)
    assert first.code == "accepted"
    assert first.state.pledges == {1: 3, 2: 4}


def test_expected_units_checked_after_units() -> None:
    """An invalid expected total is `invalid_units`. A closed campaign and invalid units are checked first."""
    state = apply_pledge(_terms(), CampaignState(), user_id=1, units=3, now_ms=NOW_MS).state
    for expected in (-1, MAX_UNITS + 1, True):
        decision = apply_pledge(_terms(), state, user_id=1, units=5, now_ms=NOW_MS, expected_units=expected)
        assert decision.code == "invalid_units", expected
    invalid = apply_pledge(_terms(), state, user_id=1, units=-1, now_ms=NOW_MS, expected_units=9)
    assert invalid.code == "invalid_units"
    closed = apply_pledge(_terms(), state, user_id=1, units=5, now_ms=DEADLINE_MS, expected_units=9)
    assert closed.code == "campaign_closed"
    unchanged_but_stale = apply_pledge(_terms(), state, user_id=1, units=3, now_ms=NOW_MS, expected_units=2)
    assert unchanged_but_stale.code == "pledge_changed"


def test_due_at_deadline_or_when_sold_out() -> None:
    """A campaign is due at its deadline, or once sold out when close-when-sold-out is on."""
    terms = _terms(stock_cap_units=5)
    full = apply_pledge(terms, CampaignState(), user_id=1, units=5, now_ms=NOW_MS).state
    assert not is_due(terms, full, NOW_MS)
    assert is_due(terms, CampaignState(), DEADLINE_MS)
    assert not is_due(terms, CampaignState(), DEADLINE_MS - 1)
    assert is_due(replace(terms, close_when_sold_out=True), full, NOW_MS)


# -- releases of expired holds ------------------------------------------------------

def test_release_takes_units_back() -> None:
    """An expired hold releases up to its units, drops the member at zero and moves the tier back."""
    terms = _terms()
    state = apply_pledge(terms, CampaignState(), user_id=1, units=12, now_ms=NOW_MS).state
    released = apply_release(terms, state, user_id=1, units=5, now_ms=NOW_MS)
    assert released.accepted
    assert released.state.committed_units == 7
    assert unit_price_for(terms, released.state.committed_units) == 10_000
    everything = apply_release(terms, released.state, user_id=1, units=50, now_ms=NOW_MS)
    assert everything.state.committed_units == 0
    assert everything.state.participants == 0
    assert apply_release(terms, everything.state, user_id=1, units=1, now_ms=NOW_MS).code == "no_pledge"
    assert apply_release(terms, state, user_id=1, units=1, now_ms=DEADLINE_MS).code == "campaign_closed"


# -- tiers and prices ---------------------------------------------------------------

def test_prices_and_next_tier() -> None:
    """Below the first threshold the list price applies; the next tier is the first above the total."""
    terms = _terms()
    assert unit_price_for(terms, 0) == 10_000
    assert unit_price_for(terms, 9) == 10_000
    assert unit_price_for(terms, 10) == 9_000
    assert unit_price_for(terms, 100) == 7_000
    assert unit_price_for(terms, 120) == 7_000
    assert next_tier(terms, 0) == (10, 9_000)
    assert next_tier(terms, 10) == (50, 8_000)
    assert next_tier(terms, 100) is None
    assert at_most_price_won(terms) == 9_000
    assert at_most_price_won(_terms(min_total_units=5)) == 10_000
    assert at_most_price_won(_terms(min_total_units=50)) == 8_000
    assert stock_left(terms, CampaignState(committed_units=119)) == 1


@pytest.mark.parametrize(
    ("tiers", "code"),
    [
        ([], "tiers_required"),
        ([[10, 9_000], [10, 8_000]], "tiers_not_ascending"),
        ([[50, 9_000], [10, 8_000]], "tiers_not_ascending"),
        ([[10, 9_000], [50, 9_000]], "tier_prices_not_descending"),
        ([[10, 9_000], [50, 9_500]], "tier_prices_not_descending"),
        ([[10, 10_001]], "tier_price_above_list"),
        ([[0, 9_000]], "invalid_tier_units"),
        ([[10, 0]], "invalid_tier_price"),
        ([[121, 9_000]], "tier_above_cap"),
        ([[10, 9_000.5]], "invalid_tiers"),
        ([[10]], "invalid_tiers"),
        ([[True, 9_000]], "invalid_tiers"),
    ],
)
def test_validate_tiers_rejects(tiers: list[list[object]], code: str) -> None:
    """Unusable tier tables are rejected with a stable code."""
    with pytest.raises(InvalidTiers) as raised:
        validate_tiers(tiers, 10_000, 120)  # type: ignore[arg-type]
    assert raised.value.code == code


def test_validate_tiers_accepts() -> None:
    """A strictly ascending table with descending prices up to the list price is returned as tuples."""
    assert validate_tiers([[10, 10_000], [120, 7_000]], 10_000, 120) == ((10, 10_000), (120, 7_000))


@pytest.mark.parametrize("text", ["0", "1", "100000", "007"])
def test_parse_units_accepts(text: str) -> None:
    """Plain ASCII digits from 0 to 100000 are unit counts."""
    assert parse_units(text) == int(text)


@pytest.mark.parametrize("text", ["", "-1", "+1", "1.0", "1e3", "1,000", "１２", "100001", " 1", "NaN", "0x10", "1000000"])
def test_parse_units_rejects(text: str) -> None:
    """Signs, separators, decimals, exponents, full-width digits and values over 100000 are rejected."""
    with pytest.raises(InvalidUnits):
        parse_units(text)


def test_parse_units_rejects_boolean() -> None:
    """A JSON boolean is not a unit count."""
    with pytest.raises(InvalidUnits):
        parse_units(True)


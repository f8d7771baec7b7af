"""The auction rules as plain Python: increments, proxy bidding, reserve, buy-now, timing, input."""

from __future__ import annotations

from dataclasses import replace

import pytest

from auction_cases import CASES, SUPPLIER_ID, Case, terms_for
from engine.auction.rules import (
    CLOSING,
    DEFAULT_INCREMENTS,
    MAX_AMOUNT_WON,
    InvalidAmount,
    LotState,
    LotTerms,
    apply_bid,
    apply_buy_now,
    increment_for,
    min_next_bid,
    parse_amount_won,
    replay_bids,
    reserve_met,
    validate_increments,
)

START_MS = 1_000_000
END_MS = 10_000_000
NOW_MS = 2_000_000  # open, and far from the end of the default soft-close window


@pytest.mark.parametrize(
    ("amount", "step"),
    [
        (0, 100),
        (9_999, 100),
        (10_000, 500),
        (49_999, 500),
        (50_000, 1_000),
        (99_999, 1_000),
        (100_000, 5_000),
        (499_999, 5_000),
        (500_000, 10_000),
        (999_999, 10_000),
        (1_000_000, 20_000),
        (MAX_AMOUNT_WON, 20_000),
    ],
    ids=lambda value: f"{value:,}",
)
def test_increment_for_band_edges(amount: int, step: int) -> None:
    """The step is the one of the band that contains the amount being exceeded."""
    assert increment_for(amount) == step
    assert increment_for(amount, DEFAULT_INCREMENTS) == step


def test_increment_for_custom_table() -> None:
    """A configured table replaces the default bands."""
    table = ((0, 10), (1_000, 50))
    assert increment_for(999, table) == 10
    assert increment_for(1_000, table) == 50


def _terms(**changes: object) -> LotTerms:
    base = LotTerms(lot_id=1, supplier_id=SUPPLIER_ID, start_price_won=1_000, start_ms=START_MS, end_ms=END_MS)
    return replace(base, **changes)


def test_min_next_bid_first_is_start_price() -> None:
    """Before any bid the minimum is the start price."""
    terms = _terms(start_price_won=1_234)
    assert min_next_bid(terms, LotState.initial(terms)) == 1_234


@pytest.mark.parametrize(
    ("price", "minimum"),
    [(1_000, 1_100), (9_999, 10_099), (10_000, 10_500), (99_999, 100_999), (1_000_000, 1_020_000)],
    ids=lambda value: f"{value:,}",
)
def test_min_next_bid_is_price_plus_increment(price: int, minimum: int) -> None:
    """After a bid the minimum is the displayed price plus the step of its band."""
    terms = _terms()
    state = LotState(end_ms=END_MS, price_won=price, bid_count=1, leader_id=1, leader_max_won=price)
    assert min_next_bid(terms, state) == minimum


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_rules_table(case: Case) -> None:
    """Each step returns the table's code and leaves the lot in the table's state."""
    terms = terms_for(case, lot_id=1, start_ms=START_MS, end_ms=END_MS)
    state = LotState.initial(terms)
    for number, step in enumerate(case.steps, start=1):
        if step.kind == "buy_now":
            decision = apply_buy_now(
                terms, state, user_id=step.user, now_ms=NOW_MS, bidder_supplier_id=step.supplier
            )
        else:
            decision = apply_bid(
                terms, state, user_id=step.user, amount_won=step.amount, now_ms=NOW_MS,
                bidder_supplier_id=step.supplier,
            )
        where = f"step {number}: {step}"
        assert decision.code == step.code, where
        assert decision.accepted == (step.code == "accepted"), where
        if not decision.accepted:
            assert decision.state is state, f"{where}: a rejection must change nothing"
        state = decision.state
        assert state.price_won == step.price, where
        assert state.leader_id == step.leader, where
        assert state.leader_max_won == step.leader_max, where
        assert state.status == step.status, where
        assert reserve_met(terms, state) == step.reserve_met, where


def test_accepted_bid_increments_seq_and_count() -> None:
    """Every accepted bid takes the next sequence number and counts once."""
    terms = _terms()
    state = LotState.initial(terms)
    for number, (user, amount) in enumerate([(1, 2_000), (2, 1_500), (1, 3_000)], start=1):
        state = apply_bid(terms, state, user_id=user, amount_won=amount, now_ms=NOW_MS).state
        assert state.seq == number
        assert state.bid_count == number
    assert state.maxima == {1: 3_000, 2: 1_500}


# -- timing ------------------------------------------------------------------------------

WINDOW_MS = 120_000
EXTENSION_MS = 180_000


def _first_bid(terms: LotTerms, now_ms: int, amount: int = 5_000):  # type: ignore[no-untyped-def]
    return apply_bid(terms, LotState.initial(terms), user_id=1, amount_won=amount, now_ms=now_ms)


def test_bid_inside_window_extends_to_now_plus_extension() -> None:
    """An accepted bid in the last W ms moves the end to now + E."""
    terms = _terms(window_ms=WINDOW_MS, extension_ms=EXTENSION_MS)
    decision = _first_bid(terms, END_MS - 60_000)
    assert decision.accepted
    assert decision.state.end_ms == END_MS - 60_000 + EXTENSION_MS


def test_bid_at_window_start_extends() -> None:
    """A bid exactly W ms before the end is inside the window."""
    terms = _terms(window_ms=WINDOW_MS, extension_ms=EXTENSION_MS)
    decision = _first_bid(terms, END_MS - WINDOW_MS)
    assert decision.state.end_ms == END_MS - WINDOW_MS + EXTENSION_MS


def test_bid_before_window_does_not_extend() -> None:
    """A bid one ms before the window leaves the end alone."""
    terms = _terms(window_ms=WINDOW_MS, extension_ms=EXTENSION_MS)
    decision = _first_bid(terms, END_MS - WINDOW_MS - 1)
    assert decision.accepted
    assert decision.state.end_ms == END_MS


def test_extension_never_moves_end_earlier() -> None:
    """With E shorter than the time left, the end stays where it was."""
    terms = _terms(window_ms=WINDOW_MS, extension_ms=30_000)
    decision = _first_bid(terms, END_MS - 60_000)
    assert decision.state.end_ms == END_MS


def test_extension_capped_at_hard_cap() -> None:
    """An extension past the hard cap stops at the cap."""
    terms = _terms(window_ms=WINDOW_MS, extension_ms=EXTENSION_MS, hard_cap_ms=END_MS + 30_000)
    decision = _first_bid(terms, END_MS - 10_000)
    assert decision.state.end_ms == END_MS + 30_000


def test_hard_cap_before_end_never_shortens() -> None:
    """A hard cap earlier than the end stops extensions without moving the end earlier."""
    terms = _terms(window_ms=WINDOW_MS, extension_ms=EXTENSION_MS, hard_cap_ms=END_MS - 50_000)
    decision = _first_bid(terms, END_MS - 10_000)
    assert decision.state.end_ms == END_MS


def test_rejected_bid_inside_window_never_extends() -> None:
    """A bid that is too low, in the window, leaves the end alone."""
    terms = _terms(window_ms=WINDOW_MS, extension_ms=EXTENSION_MS)
    decision = _first_bid(terms, END_MS - 10_000, amount=999)
    assert decision.code == "bid_too_low"
    assert decision.state.end_ms == END_MS


def test_extended_end_accepts_bid_after_original_end() -> None:
    """After an extension the lot takes bids past its original end."""
    terms = _terms(window_ms=WINDOW_MS, extension_ms=EXTENSION_MS)
    state = _first_bid(terms, END_MS - 10_000).state
    decision = apply_bid(terms, state, user_id=2, amount_won=9_000, now_ms=END_MS + 60_000)
    assert decision.accepted
    assert decision.state.end_ms == END_MS + 60_000 + EXTENSION_MS


@pytest.mark.parametrize(
    ("now_ms", "code"),
    [
        (START_MS - 1, "lot_not_started"),
        (START_MS, "accepted"),
        (END_MS - 1, "accepted"),
        (END_MS, "lot_ended"),
        (END_MS + 1, "lot_ended"),
    ],
    ids=["before start", "at start", "last ms", "exactly at end", "after end"],
)
def test_bid_timing(now_ms: int, code: str) -> None:
    """Bids count from the start inclusive to the end exclusive."""
    assert _first_bid(_terms(), now_ms).code == code


@pytest.mark.parametrize(
    ("now_ms", "code"),
    [(START_MS - 1, "lot_not_started"), (END_MS, "lot_ended")],
    ids=["before start", "exactly at end"],
)
def test_buy_now_timing(now_ms: int, code: str) -> None:
    """Buy-now is judged by the same clock as bids."""
    terms = _terms(buy_now_won=30_000)
    decision = apply_buy_now(terms, LotState.initial(terms), user_id=1, now_ms=now_ms)
    assert decision.code == code


def test_buy_now_ends_lot_at_now() -> None:
    """Buying now closes the lot at that moment."""
    terms = _terms(buy_now_won=30_000)
    decision = apply_buy_now(terms, LotState.initial(terms), user_id=1, now_ms=NOW_MS)
    assert decision.state.status == CLOSING
    assert decision.state.end_ms == NOW_MS
    assert decision.state.seq == 1


@pytest.mark.parametrize("status", ["closing", "sold", "unsold"])
def test_bid_on_closed_lot_rejected(status: str) -> None:
    """A lot no longer open takes no bid."""
    terms = _terms()
    state = replace(LotState.initial(terms), status=status)
    assert apply_bid(terms, state, user_id=1, amount_won=5_000, now_ms=NOW_MS).code == "lot_ended"


@pytest.mark.parametrize(("status", "code"), [("cancelled", "lot_cancelled"), ("held", "lot_held")])
def test_bid_on_cancelled_or_held_lot_rejected(status: str, code: str) -> None:
    """Cancelled and held lots reject bids with their own codes."""
    terms = _terms()
    state = replace(LotState.initial(terms), status=status)
    assert apply_bid(terms, state, user_id=1, amount_won=5_000, now_ms=NOW_MS).code == code


@pytest.mark.parametrize("amount", [0, -5, MAX_AMOUNT_WON + 1, True], ids=["zero", "negative", "above max", "bool"])
def test_apply_bid_rejects_invalid_amount(amount: int) -> None:
    """Amounts outside 1..MAX_AMOUNT_WON never reach the proxy rules."""
    terms = _terms(start_price_won=1)
    assert apply_bid(terms, LotState.initial(terms), user_id=1, amount_won=amount, now_ms=NOW_MS).code == (
        "invalid_amount"
    )


# -- input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["", "-1", "+5", "1,000", "1.5", "1e3", "NaN", "１０００", " 100", "100 ", "0", "00", "10000000001",
     "999999999999", "٣", "²", True, False, 1.5, None, b"100", -1, 0, MAX_AMOUNT_WON + 1],
    ids=repr,
)
def test_parse_amount_won_rejects(text: object) -> None:
    """Anything but plain ASCII digits with a value in 1..MAX_AMOUNT_WON is rejected."""
    with pytest.raises(InvalidAmount):
        parse_amount_won(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("100", 100),
        ("1", 1),
        # Leading zeros are plain digits: "0100" is 100 won. The length limit (11) still applies.
        ("0100", 100),
        ("00000000100", 100),
        ("10000000000", MAX_AMOUNT_WON),
        (12_900, 12_900),
    ],
    ids=repr,
)
def test_parse_amount_won_accepts(text: str | int, value: int) -> None:
    """Plain ASCII digits within bounds parse to whole won."""
    assert parse_amount_won(text) == value


def test_parse_amount_won_length_limit() -> None:
    """The 11-character limit counts leading zeros too."""
    with pytest.raises(InvalidAmount):
        parse_amount_won("000000000100")


# -- replay ------------------------------------------------------------------------------


def test_replay_bids_matches_step_by_step() -> None:
    """Replaying accepted bids in order gives the state that applying them gave."""
    terms = _terms(reserve_won=4_000)
    bids = [(1, 2_000, NOW_MS), (2, 3_000, NOW_MS + 1), (1, 5_000, NOW_MS + 2), (3, 4_500, NOW_MS + 3)]
    state = LotState.initial(terms)
    for user, amount, at in bids:
        state = apply_bid(terms, state, user_id=user, amount_won=amount, now_ms=at).state
    replayed = replay_bids(terms, bids)
    assert (replayed.price_won, replayed.leader_id, replayed.leader_max_won) == (
        state.price_won, state.leader_id, state.leader_max_won,
    )
    assert replayed.bid_count == 4


def test_replay_bids_skips_bids_rules_reject() -> None:
    """After a void, bids the rules now reject are skipped and the given end is kept."""
    terms = _terms()
    bids = [(1, 5_000, NOW_MS), (2, 1_050, NOW_MS + 1), (2, 6_000, NOW_MS + 2)]
    replayed = replay_bids(terms, bids, end_ms=END_MS + 5)
    assert replayed.bid_count == 2
    assert replayed.leader_id == 2
    assert replayed.price_won == 5_100
    assert replayed.end_ms == END_MS + 5


@pytest.mark.parametrize(
    "table",
    [
        [(0, 100)] * 1 + [(i * 1_000, 100) for i in range(1, 21)],
        [(0, 100), (10_000, MAX_AMOUNT_WON + 1)],
        [(0, 100), (MAX_AMOUNT_WON + 1, 500)],
    ],
    ids=["too many bands", "step above max amount", "band start above max amount"],
)
def test_validate_increments_bounds(table) -> None:
    """Tables with more than 20 bands or values above the maximum amount are rejected."""
    with pytest.raises(ValueError):
        validate_increments(table)

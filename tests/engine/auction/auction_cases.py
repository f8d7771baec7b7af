"""The table of auction rule cases that both the plain-Python rules and bid.lua must pass.

Each case is a lot and a sequence of steps. Every step states the bid (or buy-now)
and what must be true after it: the result code, the price, the leader, the leader's
maximum, whether the reserve is met and the lot's status. The steps carry no times:
they all happen while the lot is open and far from its end, so the Redis test can
run them at whatever the server's clock says. Timing rules have their own tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from engine.auction.live import LotLoad
from engine.auction.rules import DEFAULT_INCREMENTS, LotTerms

SUPPLIER_ID = 900
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Step:
    """One bid and the state expected after it (leader None: the lot has no leader)."""

    user: int
    amount: int
    code: str
    price: int
    leader: int | None
    leader_max: int
    reserve_met: bool | None = None
    kind: str = "bid"
    supplier: int | None = None
    status: str = "open"


@dataclass(frozen=True)
class Case:
    id: str
    steps: tuple[Step, ...]
    start_price: int = 1_000
    reserve: int | None = None
    buy_now: int | None = None
    increments: tuple[tuple[int, int], ...] = field(default=DEFAULT_INCREMENTS)


A, B, C = 1, 2, 3

CASES: tuple[Case, ...] = (
    Case("first bid opens at start price", (Step(A, 5_000, "accepted", 1_000, A, 5_000),)),
    Case("first bid exactly at start price", (Step(A, 1_000, "accepted", 1_000, A, 1_000),)),
    Case("first bid below start rejected", (Step(A, 999, "bid_too_low", 0, None, 0),)),
    Case(
        "next bid below price plus increment rejected",
        (
            Step(A, 5_000, "accepted", 1_000, A, 5_000),
            Step(B, 1_099, "bid_too_low", 1_000, A, 5_000),
            Step(B, 1_100, "accepted", 1_200, A, 5_000),
        ),
    ),
    Case(
        "challenger beats leader by more than an increment",
        (Step(A, 5_000, "accepted", 1_000, A, 5_000), Step(B, 8_000, "accepted", 5_100, B, 8_000)),
    ),
    Case(
        "challenger beats leader capped at own maximum",
        (Step(A, 5_000, "accepted", 1_000, A, 5_000), Step(B, 5_050, "accepted", 5_050, B, 5_050)),
    ),
    Case(
        "challenger loses and price is its maximum plus increment",
        (Step(A, 5_000, "accepted", 1_000, A, 5_000), Step(B, 3_000, "accepted", 3_100, A, 5_000)),
    ),
    Case(
        "challenger loses and price is capped at leader maximum",
        (Step(A, 5_000, "accepted", 1_000, A, 5_000), Step(B, 4_950, "accepted", 5_000, A, 5_000)),
    ),
    Case(
        "tie keeps earlier bidder at that maximum",
        (Step(A, 5_000, "accepted", 1_000, A, 5_000), Step(B, 5_000, "accepted", 5_000, A, 5_000)),
    ),
    Case(
        "third bidder takes lead from proxy winner",
        (
            Step(A, 5_000, "accepted", 1_000, A, 5_000),
            Step(B, 3_000, "accepted", 3_100, A, 5_000),
            Step(C, 7_000, "accepted", 5_100, C, 7_000),
            Step(A, 6_000, "accepted", 6_100, C, 7_000),
        ),
    ),
    Case(
        "leader raising own maximum keeps price",
        (
            Step(A, 5_000, "accepted", 1_000, A, 5_000),
            Step(B, 3_000, "accepted", 3_100, A, 5_000),
            Step(A, 9_000, "accepted", 3_100, A, 9_000),
        ),
    ),
    Case(
        "leader raise not above own maximum rejected",
        (
            Step(A, 5_000, "accepted", 1_000, A, 5_000),
            Step(B, 3_000, "accepted", 3_100, A, 5_000),
            Step(A, 5_000, "max_not_raised", 3_100, A, 5_000),
            Step(A, 4_000, "max_not_raised", 3_100, A, 5_000),
        ),
    ),
    Case(
        "leader raise below minimum rejected",
        (Step(A, 5_000, "accepted", 1_000, A, 5_000), Step(A, 1_050, "bid_too_low", 1_000, A, 5_000)),
    ),
    Case(
        "increment of band 10000 applies from 10000",
        (
            Step(A, 20_000, "accepted", 9_900, A, 20_000),
            Step(B, 9_999, "bid_too_low", 9_900, A, 20_000),
            Step(B, 10_000, "accepted", 10_500, A, 20_000),
        ),
        start_price=9_900,
    ),
    Case(
        "challenger pays leader maximum plus its band step",
        (Step(A, 49_999, "accepted", 40_000, A, 49_999), Step(B, 60_000, "accepted", 50_499, B, 60_000)),
        start_price=40_000,
    ),
    Case(
        "losing challenger at band edge pays next band step",
        (Step(A, 200_000, "accepted", 40_000, A, 200_000), Step(B, 50_000, "accepted", 51_000, A, 200_000)),
        start_price=40_000,
    ),
    Case(
        "increment of band 1000000 is 20000",
        (
            Step(A, 2_000_000, "accepted", 1_000_000, A, 2_000_000),
            Step(B, 1_019_999, "bid_too_low", 1_000_000, A, 2_000_000),
            Step(B, 1_020_000, "accepted", 1_040_000, A, 2_000_000),
        ),
        start_price=1_000_000,
    ),
    Case(
        "maximum of 10000000000 won accepted",
        (Step(A, 10_000_000_000, "accepted", 1_000, A, 10_000_000_000),),
    ),
    Case(
        "maximum above 10000000000 won rejected",
        (Step(A, 10_000_000_001, "invalid_amount", 0, None, 0),),
    ),
    Case(
        "reserve first bid below pushes price to its maximum",
        (Step(A, 5_000, "accepted", 5_000, A, 5_000, reserve_met=False),),
        reserve=10_000,
    ),
    Case(
        "reserve first bid above lifts price to reserve",
        (Step(A, 12_000, "accepted", 10_000, A, 12_000, reserve_met=True),),
        reserve=10_000,
    ),
    Case(
        "reserve first bid exactly at reserve",
        (Step(A, 10_000, "accepted", 10_000, A, 10_000, reserve_met=True),),
        reserve=10_000,
    ),
    Case(
        "reserve leader raise below reserve pushes to maximum",
        (
            Step(A, 5_000, "accepted", 5_000, A, 5_000, reserve_met=False),
            Step(A, 8_000, "accepted", 8_000, A, 8_000, reserve_met=False),
        ),
        reserve=10_000,
    ),
    Case(
        "reserve leader raise above reserve lifts to reserve",
        (
            Step(A, 5_000, "accepted", 5_000, A, 5_000, reserve_met=False),
            Step(A, 15_000, "accepted", 10_000, A, 15_000, reserve_met=True),
        ),
        reserve=10_000,
    ),
    Case(
        "reserve new leader pushed toward reserve",
        (
            Step(A, 6_000, "accepted", 6_000, A, 6_000, reserve_met=False),
            Step(B, 7_000, "accepted", 7_000, B, 7_000, reserve_met=False),
        ),
        reserve=10_000,
    ),
    Case(
        "reserve met leader raise keeps price",
        (
            Step(A, 12_000, "accepted", 10_000, A, 12_000, reserve_met=True),
            Step(A, 20_000, "accepted", 10_000, A, 20_000, reserve_met=True),
        ),
        reserve=10_000,
    ),
    Case(
        "reserve losing challenger above reserve raises price normally",
        (
            Step(A, 20_000, "accepted", 10_000, A, 20_000, reserve_met=True),
            Step(B, 12_000, "accepted", 12_500, A, 20_000, reserve_met=True),
        ),
        reserve=10_000,
    ),
    Case(
        "buy now before first bid ends lot",
        (
            Step(A, 0, "accepted", 30_000, A, 30_000, kind="buy_now", status="closing"),
            Step(B, 40_000, "lot_ended", 30_000, A, 30_000, status="closing"),
            Step(B, 0, "lot_ended", 30_000, A, 30_000, kind="buy_now", status="closing"),
        ),
        buy_now=30_000,
    ),
    Case(
        "buy now after first bid unavailable",
        (
            Step(A, 2_000, "accepted", 1_000, A, 2_000),
            Step(B, 0, "buy_now_unavailable", 1_000, A, 2_000, kind="buy_now"),
        ),
        buy_now=30_000,
    ),
    Case(
        "buy now without price unavailable",
        (Step(A, 0, "buy_now_unavailable", 0, None, 0, kind="buy_now"),),
    ),
    Case(
        "buy now by lot supplier rejected",
        (Step(A, 0, "own_lot", 0, None, 0, kind="buy_now", supplier=SUPPLIER_ID),),
        buy_now=30_000,
    ),
    Case(
        "bid by lot supplier rejected",
        (Step(A, 5_000, "own_lot", 0, None, 0, supplier=SUPPLIER_ID),),
    ),
    Case(
        "bid by another supplier accepted",
        (Step(A, 5_000, "accepted", 1_000, A, 5_000, supplier=SUPPLIER_ID + 1),),
    ),
)


def terms_for(case: Case, *, lot_id: int, start_ms: int, end_ms: int) -> LotTerms:
    return LotTerms(
        lot_id=lot_id,
        supplier_id=SUPPLIER_ID,
        start_price_won=case.start_price,
        start_ms=start_ms,
        end_ms=end_ms,
        reserve_won=case.reserve,
        buy_now_won=case.buy_now,
        increments=case.increments,
    )


def at_ms(ms: int) -> datetime:
    """Return the UTC datetime of epoch milliseconds `ms`, without float rounding."""
    return EPOCH + timedelta(milliseconds=ms)


def lot_load(terms: LotTerms) -> LotLoad:
    """Build the `LotLoad` that puts the lot of `terms` into Redis."""
    return LotLoad(
        lot_id=terms.lot_id,
        supplier_id=terms.supplier_id,
        start_price_won=terms.start_price_won,
        reserve_won=terms.reserve_won,
        buy_now_won=terms.buy_now_won,
        start_at=at_ms(terms.start_ms),
        end_at=at_ms(terms.end_ms),
        hard_cap_at=at_ms(terms.hard_cap_ms) if terms.hard_cap_ms is not None else None,
        soft_close_window_s=terms.window_ms // 1000,
        extension_s=terms.extension_ms // 1000,
        increments=terms.increments,
    )

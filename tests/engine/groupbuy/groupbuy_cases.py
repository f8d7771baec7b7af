"""The table of group-buy rule cases that both rules.py and pledge.lua must pass.

Each case is a campaign and a sequence of pledges. Every step states a member's
new total (0 cancels) and what must be true after it: the result code, the
committed units, the participants, the unit price and, where given, the stock left
and whether the minimum is met. The steps carry no times: they all happen while
the campaign is open and far from its deadline. Deadline rules have their own tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.groupbuy.live import CampaignLoad
from engine.groupbuy.rules import CampaignState, CampaignTerms

SUPPLIER_ID = 900
LIST_PRICE = 10_000
TIERS = ((10, 9_000), (50, 8_000), (100, 7_000))


@dataclass(frozen=True)
class Step:
    user: int
    units: int
    code: str
    committed: int
    participants: int
    price: int
    units_left: int | None = None
    minimum_met: bool | None = None
    supplier: int | None = None


@dataclass(frozen=True)
class Case:
    id: str
    steps: tuple[Step, ...]
    min_total: int = 30
    min_buyers: int | None = None
    cap: int = 120
    limit: int = 40


A, B, C, D = 1, 2, 3, 4
OK = "accepted"

CASES: tuple[Case, ...] = (
    Case("below first threshold pays list price", (Step(A, 9, OK, 9, 1, 10_000, units_left=111),)),
    Case("first threshold is inclusive", (Step(A, 10, OK, 10, 1, 9_000),)),
    Case("second threshold is inclusive", (Step(A, 40, OK, 40, 1, 9_000), Step(B, 10, OK, 50, 2, 8_000))),
    Case("one unit below a threshold keeps the tier", (Step(A, 40, OK, 40, 1, 9_000), Step(B, 9, OK, 49, 2, 9_000))),
    Case("last tier at its threshold", (
        Step(A, 40, OK, 40, 1, 9_000), Step(B, 40, OK, 80, 2, 8_000), Step(C, 20, OK, 100, 3, 7_000),
    )),
    Case("cancellation moves the tier back", (
        Step(A, 40, OK, 40, 1, 9_000), Step(B, 10, OK, 50, 2, 8_000), Step(B, 0, OK, 40, 1, 9_000),
    )),
    Case("change down moves the tier back", (
        Step(A, 40, OK, 40, 1, 9_000), Step(B, 10, OK, 50, 2, 8_000), Step(A, 39, OK, 49, 2, 9_000),
    )),
    Case("change up replaces the total", (Step(A, 5, OK, 5, 1, 10_000), Step(A, 12, OK, 12, 1, 9_000))),
    Case("cancel to zero drops the participant", (
        Step(A, 5, OK, 5, 1, 10_000), Step(B, 5, OK, 10, 2, 9_000), Step(A, 0, OK, 5, 1, 10_000),
    )),
    Case("pledge again after cancelling", (
        Step(A, 5, OK, 5, 1, 10_000), Step(A, 0, OK, 0, 0, 10_000), Step(A, 7, OK, 7, 1, 10_000),
    )),
    Case("member limit exactly is accepted", (Step(A, 40, OK, 40, 1, 9_000),)),
    Case("over member limit is rejected", (Step(A, 41, "over_member_limit", 0, 0, 10_000),)),
    Case("change over member limit is rejected", (
        Step(A, 30, OK, 30, 1, 9_000), Step(A, 41, "over_member_limit", 30, 1, 9_000),
    )),
    Case("stock cap exactly is accepted", (
        Step(A, 40, OK, 40, 1, 9_000), Step(B, 40, OK, 80, 2, 8_000), Step(C, 40, OK, 120, 3, 7_000, units_left=0),
    )),
    Case("over stock is rejected whole with units left", (
        Step(A, 40, OK, 40, 1, 9_000), Step(B, 40, OK, 80, 2, 8_000), Step(C, 38, OK, 118, 3, 7_000),
        Step(D, 3, "over_stock", 118, 3, 7_000, units_left=2), Step(D, 2, OK, 120, 4, 7_000, units_left=0),
    )),
    Case("change beyond stock is rejected whole", (
        Step(A, 40, OK, 40, 1, 9_000), Step(B, 40, OK, 80, 2, 8_000), Step(C, 35, OK, 115, 3, 7_000),
        Step(D, 3, OK, 118, 4, 7_000), Step(D, 6, "over_stock", 118, 4, 7_000, units_left=2),
    )),
    Case("sold out rejects increases and takes decreases", (
        Step(A, 40, OK, 40, 1, 9_000), Step(B, 40, OK, 80, 2, 8_000), Step(C, 40, OK, 120, 3, 7_000),
        Step(D, 1, "sold_out", 120, 3, 7_000, units_left=0), Step(A, 39, OK, 119, 3, 7_000, units_left=1),
        Step(D, 1, OK, 120, 4, 7_000, units_left=0),
    )),
    Case("cancel without a pledge is rejected", (Step(A, 0, "no_pledge", 0, 0, 10_000),)),
    Case("unchanged total is rejected", (Step(A, 5, OK, 5, 1, 10_000), Step(A, 5, "pledge_unchanged", 5, 1, 10_000))),
    Case("supplier pledging on own goods is rejected", (Step(A, 5, "own_goods", 0, 0, 10_000, supplier=SUPPLIER_ID),)),
    Case("another supplier may pledge", (Step(A, 5, OK, 5, 1, 10_000, supplier=SUPPLIER_ID + 1),)),
    Case("minimum is met at the minimum total", (
        Step(A, 29, OK, 29, 1, 9_000, minimum_met=False), Step(B, 1, OK, 30, 2, 9_000, minimum_met=True),
    )),
    Case("minimum lost again after a cancellation", (
        Step(A, 30, OK, 30, 1, 9_000, minimum_met=True), Step(A, 29, OK, 29, 1, 9_000, minimum_met=False),
    )),
    Case("minimum number of buyers is also required", (
        Step(A, 30, OK, 30, 1, 9_000, minimum_met=False), Step(B, 1, OK, 31, 2, 9_000, minimum_met=True),
    ), min_buyers=2),
)


def terms_for(case: Case, *, campaign_id: int, start_ms: int, deadline_ms: int) -> CampaignTerms:
    return CampaignTerms(
        campaign_id=campaign_id, supplier_id=SUPPLIER_ID, list_price_won=LIST_PRICE, tiers=TIERS,
        min_total_units=case.min_total, min_buyers=case.min_buyers, stock_cap_units=case.cap,
        per_member_limit=case.limit, start_ms=start_ms, deadline_ms=deadline_ms,
    )


def campaign_load(terms: CampaignTerms) -> CampaignLoad:
    """Build the `CampaignLoad` that puts an empty campaign of `terms` into Redis."""
    return CampaignLoad(terms=terms, state=CampaignState())

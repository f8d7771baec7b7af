"""The staff console's lot row as rendered for the websocket pushes (no server needed)."""

from __future__ import annotations

import re

import pytest

from engine.auction.live import Snapshot
from web.live.render import LotRenderer
from web.templating import LocalizedTemplates

SNAPSHOT = Snapshot(
    lot_id=7, seq=3, status="open", price_won=12_000, bid_count=3, leader_id=None, leader_masked="",
    end_ms=1_800_000_000_000, start_ms=1_700_000_000_000, server_ms=1_750_000_000_000,
    min_next_won=12_500, reserve_met=None, buy_now_won=None,
)


def extension_text(extended_s: int, locale: str) -> str:
    info = {
        "title": "햇김", "supplier_name": "광산 김", "leader_name": "", "leader_id": None,
        "bids_per_minute": 0, "extended_s": extended_s, "watchers": 1,
    }
    html = LotRenderer(LocalizedTemplates()).staff_row(SNAPSHOT, info, locale)
    match = re.search(r"<dt>(?:연장|Extended)</dt><dd>(.*?)</dd>", html, re.S)
    assert match, html
    return match.group(1).strip()


@pytest.mark.parametrize(
    ("extended_s", "korean", "english"),
    [
        (0, "-", "-"),
        (36, "+36초", "+36 s"),
        (120, "+2분", "+2 min"),
        (150, "+2분 30초", "+2 min 30 s"),
    ],
)
def test_extension_in_minutes_and_seconds(extended_s: int, korean: str, english: str) -> None:
    """An extension shorter than a minute shows seconds instead of "+0분"; longer ones show both units."""
    assert extension_text(extended_s, "ko") == korean
    assert extension_text(extended_s, "en") == english

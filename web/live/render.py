"""Render the live regions of a lot (and of the staff console) as htmx fragments.

Each region is one element with a stable id (`lot-{id}-price`, ...). A page
includes the same fragment templates with `oob=False`. A websocket push renders
them with `oob=True`, so htmx swaps each element into place by its id. Fragments
extend nothing and take a small explicit context, so they render without a request.
"""

from __future__ import annotations

from typing import Any

from engine.auction.live import Snapshot
from web.live.views import HistoryRow, display_status, shown_price_won
from web.templating import LocalizedTemplates


def state_context(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "snap": snapshot,
        "lot_id": snapshot.lot_id,
        "status": display_status(snapshot),
        "price_won": shown_price_won(snapshot),
    }


class LotRenderer:
    """Fragment rendering for one app's templates (one Jinja environment per locale)."""

    def __init__(self, templates: LocalizedTemplates) -> None:
        self.templates = templates

    def state(self, snapshot: Snapshot, locale: str, *, announce: bool) -> str:
        """Render every public region that follows the live state, as out-of-band swaps."""
        return self.templates.render(
            "lots/_state.html", locale, oob=True, announce=announce, **state_context(snapshot)
        )

    def history_row(self, lot_id: int, row: HistoryRow, locale: str) -> str:
        """Render one new history row, prepended to the history list."""
        return self.templates.render("lots/_history_push.html", locale, lot_id=lot_id, row=row)

    def history(self, lot_id: int, rows: list[HistoryRow], locale: str) -> str:
        """Render the whole history list (connect snapshots and voids)."""
        return self.templates.render("lots/_history.html", locale, oob=True, lot_id=lot_id, rows=rows)

    def notice(self, lot_id: int, kind: str | None, locale: str) -> str:
        return self.templates.render("lots/_notice.html", locale, oob=True, lot_id=lot_id, notice=kind)

    def staff_row(self, snapshot: Snapshot, info: dict[str, Any], locale: str) -> str:
        return self.templates.render(
            "staff/_lot_row.html", locale, oob=True, info=info, **state_context(snapshot)
        )

    def staff_rows(self, rows: list[tuple[Snapshot, dict[str, Any]]], locale: str) -> str:
        return self.templates.render(
            "staff/_lot_rows.html", locale, oob=True,
            rows=[{**state_context(snapshot), "info": info} for snapshot, info in rows],
        )

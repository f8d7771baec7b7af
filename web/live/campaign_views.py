"""The views of a campaign (공동구매) page, read from Redis (live state) and PostgreSQL (the record).

The pages, the JSON API and the websocket hub build their views here, so the first
render and every later push show the same values. Nothing here needs a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from engine.groupbuy.campaigns import load_campaign
from engine.groupbuy.live import CampaignLive, CampaignSnapshot

LISTED_STATUSES = ("scheduled", "open")

# Display statuses besides the stored ones: Redis keeps "open" for a campaign that
# has not started yet and for one whose deadline passed but whose close has not run.
SCHEDULED = "scheduled"
ENDED = "ended"


@dataclass(frozen=True)
class CampaignView:
    """The fixed facts of a campaign shown beside its live state; prices in won."""

    campaign_id: int
    title: str
    unit_label: str
    product_id: int
    product_name: str
    product_unit: str
    origin_label: str
    description: str
    supplier_id: int
    supplier_name: str
    supplier_kind: str
    supplier_is_local: bool
    list_price_won: int
    tiers: tuple[tuple[int, int], ...]
    min_total_units: int
    min_buyers: int | None
    stock_cap_units: int
    per_member_limit: int
    start_at: datetime
    deadline_at: datetime
    close_when_sold_out: bool
    fulfilment: str
    fulfilment_terms: str
    payment_timing: str
    payment_due_s: int
    hold_s: int
    status: str


_VIEW_SQL = """
SELECT c.id, c.title, c.unit_label, c.product_id, p.name AS product_name, p.unit AS product_unit,
       p.origin_label, p.description, c.supplier_id, s.name AS supplier_name, s.kind AS supplier_kind,
       s.is_local AS supplier_is_local, c.list_price_won, c.tiers, c.min_total_units, c.min_buyers,
       c.stock_cap_units, c.per_member_limit, c.start_at, c.deadline_at, c.close_when_sold_out,
       c.fulfilment, c.fulfilment_terms, c.payment_timing, c.payment_due_s, c.hold_s, c.status
FROM campaigns c JOIN products p ON p.id = c.product_id JOIN suppliers s ON s.id = c.supplier_id
"""


def _view(row: asyncpg.Record) -> CampaignView:
    values = dict(row)
    values["campaign_id"] = values.pop("id")
    values["tiers"] = tuple((int(units), int(price)) for units, price in values["tiers"])
    return CampaignView(**values)


async def fetch_campaign(db: asyncpg.Pool, campaign_id: int) -> CampaignView | None:
    row = await db.fetchrow(_VIEW_SQL + " WHERE c.id = $1", campaign_id)
    return _view(row) if row else None


async def fetch_listed_campaigns(
    db: asyncpg.Pool, *, statuses: tuple[str, ...] = LISTED_STATUSES, limit: int = 100
) -> list[CampaignView]:
    """Campaigns in one of `statuses`, the nearest deadline first."""
    rows = await db.fetch(
        _VIEW_SQL + " WHERE c.status = ANY($1::text[]) ORDER BY c.deadline_at, c.id LIMIT $2",
        list(statuses), limit,
    )
    return [_view(row) for row in rows]


async def read_campaign_snapshot(db: asyncpg.Pool, live: CampaignLive, campaign_id: int) -> CampaignSnapshot | None:
    """Read the campaign's live snapshot, loading it into Redis first when it is missing there."""
    snapshot = await live.snapshot(campaign_id)
    if snapshot is None and await load_campaign(db, live, campaign_id):
        snapshot = await live.snapshot(campaign_id)
    return snapshot


async def read_campaign_snapshots(live: CampaignLive, campaign_ids: list[int]) -> dict[int, CampaignSnapshot]:
    """Snapshots of several campaigns (campaigns missing in Redis are left out)."""
    return await live.snapshots(campaign_ids)


async def member_units(live: CampaignLive, campaign_id: int, user_id: int | None) -> int:
    """Return the units `user_id` has pledged to the campaign (0 for none or no user)."""
    if user_id is None:
        return 0
    units = await live.redis.hget(live.keys.campaign_pledges(campaign_id), str(user_id))
    return int(units) if units else 0


def campaign_status(snapshot: CampaignSnapshot) -> str:
    """Return the status to show: scheduled, open, ended (deadline passed, close pending) or the stored one."""
    if snapshot.status == "open":
        if snapshot.server_ms < snapshot.start_ms:
            return SCHEDULED
        if snapshot.server_ms >= snapshot.deadline_ms:
            return ENDED
    return snapshot.status


def progress_percent(snapshot: CampaignSnapshot) -> int:
    """Return the committed units as a whole percentage of the minimum total, at most 100."""
    if snapshot.min_total_units <= 0:
        return 100
    return min(100, snapshot.committed_units * 100 // snapshot.min_total_units)


def tier_index(committed_units: int, tiers: tuple[tuple[int, int], ...]) -> int:
    """Return the index of the highest tier `committed_units` reaches, or -1 below the first threshold."""
    reached = -1
    for index, (threshold, _price) in enumerate(tiers):
        if committed_units >= threshold:
            reached = index
    return reached


def state_context(snapshot: CampaignSnapshot, view: CampaignView) -> dict[str, Any]:
    """Return the context every live fragment of a campaign renders from."""
    return {
        "snap": snapshot,
        "campaign": view,
        "campaign_id": snapshot.campaign_id,
        "status": campaign_status(snapshot),
        "percent": progress_percent(snapshot),
        "reached_tier": tier_index(snapshot.committed_units, view.tiers),
    }


def snapshot_from_event(event: dict[str, Any]) -> CampaignSnapshot:
    """Build the snapshot a published campaign event carries."""
    return CampaignSnapshot.from_reply(event)


def committed_before(event: dict[str, Any]) -> int:
    """Return the committed total before a published event (pledges and releases carry their delta)."""
    return int(event["committed_units"]) - int(event.get("delta_units") or 0)

"""Creating campaigns in PostgreSQL and loading their live state into Redis.

PostgreSQL is the record: a campaign is inserted there first, then loaded into Redis.
A campaign missing from Redis (never loaded, or Redis came back empty) is rebuilt
from `campaigns` and the `pledge_events` ledger before it takes another pledge.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Sequence

import asyncpg

from engine.actors import Actor
from engine.auction.acks import rebuild_grace_left_ms
from engine.errors import DomainError
from engine.groupbuy.ledger import hold_campaign_if_acknowledged_missing
from engine.groupbuy.live import CampaignLive, CampaignLoad
from engine.groupbuy.rules import (
    CLOSING,
    MAX_PRICE_WON,
    MAX_UNITS,
    OPEN,
    CampaignState,
    CampaignTerms,
    InvalidTiers,
    unit_price_for,
    validate_tiers,
)

log = logging.getLogger("jangteo.groupbuy.campaigns")

MAX_DURATION = timedelta(days=90)
MAX_PAYMENT_DUE_S = 30 * 86_400
MAX_HOLD_S = 7 * 86_400
FULFILMENTS = ("delivery", "pickup")
PAYMENT_TIMINGS = ("after_success", "up_front")
ACTIVE_STATUSES = ("scheduled", "open", "closing")


@dataclass(frozen=True)
class CampaignDraft:
    """A campaign as staff submit it; prices in won, counts in units, times aware (UTC).

    `tiers` are (min_units, unit_price_won) pairs: thresholds ascending and inclusive,
    prices descending and at most the list price.
    """

    product_id: int
    title: str
    list_price_won: int
    tiers: Sequence[Sequence[int]]
    min_total_units: int
    stock_cap_units: int
    per_member_limit: int
    start_at: datetime
    deadline_at: datetime
    min_buyers: int | None = None
    close_when_sold_out: bool = False
    unit_label: str = ""
    fulfilment: str = "delivery"
    fulfilment_terms: str = ""
    payment_timing: str = "after_success"
    payment_due_s: int = 172_800
    hold_s: int = 86_400


def _check_range(value: object, low: int, high: int, code: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DomainError(code, f"{name} must be a whole number from {low} to {high}, got {value!r:.40}", field=name)
    return value


def check_draft(draft: CampaignDraft, now: datetime) -> tuple[tuple[int, int], ...]:
    """Validate a draft at PostgreSQL time `now`; return its tiers or raise DomainError."""
    title = draft.title.strip()
    if not 1 <= len(title) <= 120:
        raise DomainError("invalid_title", "title must be 1 to 120 characters", field="title")
    if len(draft.unit_label) > 40:
        raise DomainError("invalid_unit_label", "unit label must be at most 40 characters", field="unit_label")

    _check_range(draft.list_price_won, 1, MAX_PRICE_WON, "invalid_amount", "list_price_won")
    _check_range(draft.min_total_units, 1, MAX_UNITS, "invalid_units", "min_total_units")
    _check_range(draft.stock_cap_units, 1, MAX_UNITS, "invalid_units", "stock_cap_units")
    _check_range(draft.per_member_limit, 1, MAX_UNITS, "invalid_member_limit", "per_member_limit")
    if draft.min_total_units > draft.stock_cap_units:
        raise DomainError("min_above_cap", "the minimum total must not exceed the stock cap")
    if draft.min_buyers is not None:
        _check_range(draft.min_buyers, 1, MAX_UNITS, "invalid_min_buyers", "min_buyers")
        if draft.min_buyers > draft.stock_cap_units:
            raise DomainError("min_buyers_above_cap", "each buyer pledges at least one unit, so min_buyers must not exceed the stock cap")

    if draft.deadline_at <= draft.start_at:
        raise DomainError("deadline_before_start", "the deadline must be after the start")
    if draft.deadline_at <= now:
        raise DomainError("deadline_in_past", "the deadline must be in the future")
    if draft.deadline_at - draft.start_at > MAX_DURATION:
        raise DomainError("duration_too_long", "a campaign runs at most 90 days")

    if draft.fulfilment not in FULFILMENTS:
        raise DomainError("invalid_fulfilment", f"fulfilment must be one of {', '.join(FULFILMENTS)}")
    if len(draft.fulfilment_terms) > 2000:
        raise DomainError("invalid_fulfilment_terms", "fulfilment terms must be at most 2000 characters")
    if draft.payment_timing not in PAYMENT_TIMINGS:
        raise DomainError("invalid_payment_timing", f"payment timing must be one of {', '.join(PAYMENT_TIMINGS)}")

    _check_range(draft.payment_due_s, 60, MAX_PAYMENT_DUE_S, "invalid_payment_due", "payment_due_s")
    _check_range(draft.hold_s, 60, MAX_HOLD_S, "invalid_hold", "hold_s")

    try:
        return validate_tiers(draft.tiers, draft.list_price_won, draft.stock_cap_units)
    except InvalidTiers as error:
        raise DomainError(error.code, str(error), field="tiers") from None


async def create_campaign(db: asyncpg.Pool, live: CampaignLive, actor: Actor, draft: CampaignDraft) -> int:
    """Insert a campaign for an approved product of an approved supplier, audit it and load it live.

    Staff only (suppliers apply to list). Raises DomainError with nothing written on
    invalid input.
    """
    if not actor.is_staff:
        raise DomainError("forbidden", "only staff create campaigns")
    async with db.acquire() as connection:
        async with connection.transaction():
            now = await connection.fetchval("SELECT now()")
            tiers = check_draft(draft, now)
            product = await connection.fetchrow(
                "SELECT p.id, p.supplier_id, p.status, s.status AS supplier_status"
                " FROM products p JOIN suppliers s ON s.id = p.supplier_id WHERE p.id = $1",
                draft.product_id,
            )
            if product is None:
                raise DomainError("product_not_found", "no such product", product_id=draft.product_id)
            if product["status"] != "approved":
                raise DomainError("product_not_approved", "the product is not approved for sale",
                                  product_id=draft.product_id)
            if product["supplier_status"] != "approved":
                raise DomainError("supplier_not_approved", "the supplier is not approved")
            status = OPEN if draft.start_at <= now else "scheduled"
            campaign_id = await connection.fetchval(
                """INSERT INTO campaigns (product_id, supplier_id, title, unit_label, list_price_won, tiers,
                       min_total_units, min_buyers, stock_cap_units, per_member_limit, start_at,
                       deadline_at, close_when_sold_out, fulfilment, fulfilment_terms, payment_timing,
                       payment_due_s, hold_s, status, created_by)
                   VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16,$17,$18,$19,$20)
                   RETURNING id""",
                draft.product_id, product["supplier_id"], draft.title.strip(), draft.unit_label.strip(),
                draft.list_price_won, [list(tier) for tier in tiers], draft.min_total_units,
                draft.min_buyers, draft.stock_cap_units, draft.per_member_limit, draft.start_at,
                draft.deadline_at, draft.close_when_sold_out, draft.fulfilment, draft.fulfilment_terms,
                draft.payment_timing, draft.payment_due_s, draft.hold_s, status, actor.user_id,
            )
            await connection.execute(
                "INSERT INTO audit_log (actor_id, action, target_type, target_id, detail)"
                " VALUES ($1, 'campaign.create', 'campaign', $2, $3)",
                actor.user_id, campaign_id,
                {"product_id": draft.product_id, "tiers": [list(tier) for tier in tiers],
                 "stock_cap_units": draft.stock_cap_units},
            )
    await load_campaign(db, live, campaign_id)
    return campaign_id


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def terms_from_row(row: asyncpg.Record) -> CampaignTerms:
    """Build the campaign's terms from its `campaigns` row."""
    return CampaignTerms(
        campaign_id=row["id"],
        supplier_id=row["supplier_id"],
        list_price_won=row["list_price_won"],
        tiers=tuple((int(units), int(price)) for units, price in row["tiers"]),
        min_total_units=row["min_total_units"],
        min_buyers=row["min_buyers"],
        stock_cap_units=row["stock_cap_units"],
        per_member_limit=row["per_member_limit"],
        start_ms=_ms(row["start_at"]),
        deadline_ms=_ms(row["deadline_at"]),
        close_when_sold_out=row["close_when_sold_out"],
    )


_LIVE_STATUS = {"scheduled": OPEN, "open": OPEN}


class CampaignRebuildPending(DomainError):
    """A campaign lost by Redis waits before its rebuild; the caller may retry shortly."""

    def __init__(self, campaign_id: int, retry_after_ms: int) -> None:
        super().__init__(
            "campaign_rebuilding", f"campaign {campaign_id} is being restored; retry in {retry_after_ms} ms",
            campaign_id=campaign_id, retry_after_ms=retry_after_ms,
        )


async def load_campaign(db: asyncpg.Pool, live: CampaignLive, campaign_id: int) -> bool:
    """Load one campaign into Redis from PostgreSQL, unless Redis already has it.

    A campaign that was live before and is active in PostgreSQL was lost by Redis:
    it is rebuilt only after `live.rebuild_grace_ms` (CampaignRebuildPending until
    then), and held first when its ack marks exceed its ledger. The live state is
    the state after the campaign's last `pledge_events` row: each member's units, the
    totals and the retry receipts of the accepted pledges. Returns False when the
    campaign does not exist or Redis already has it.
    """
    if await live.redis.exists(live.keys.campaign_state(campaign_id)):
        return False
    found = await db.fetchrow("SELECT status, live_loaded_at FROM campaigns WHERE id = $1", campaign_id)
    if found is None:
        return False
    was_live = found["live_loaded_at"] is not None
    if was_live and found["status"] in ACTIVE_STATUSES:
        gate = live.keys.campaign_rebuild_gate(campaign_id)
        left_ms = await rebuild_grace_left_ms(live.redis, gate, live.rebuild_grace_ms)
        if left_ms:
            raise CampaignRebuildPending(campaign_id, left_ms)

    async with db.acquire() as connection:
        # A campaign acknowledged beyond its ledger is rebuilt as held: rebuilt live,
        # it would hand out the lost sequence numbers again. This runs even when
        # `live_loaded_at` is NULL, because campaigns loaded before that column existed have none.
        await hold_campaign_if_acknowledged_missing(connection, campaign_id)
        row = await connection.fetchrow("SELECT * FROM campaigns WHERE id = $1", campaign_id)
        if row is None:
            return False
        events = await connection.fetch(
            "SELECT * FROM pledge_events WHERE campaign_id = $1 ORDER BY seq", campaign_id
        )
    terms = terms_from_row(row)
    pledges: dict[int, int] = {}
    receipts: dict[str, dict[str, Any]] = {}
    for event in events:
        if event["kind"] not in ("pledge", "hold_expired") or event["user_id"] is None:
            continue
        units = event["units"] or 0
        if units:
            pledges[event["user_id"]] = units
        else:
            pledges.pop(event["user_id"], None)
        if event["kind"] == "pledge" and event["client_id"]:
            receipts[f"{event['user_id']}:{event['client_id']}"] = receipt_from_event(terms, event)
    last = events[-1] if events else None
    status = _LIVE_STATUS.get(row["status"], row["status"])
    if last is not None and status == OPEN:
        if last["kind"] == "close":
            status = CLOSING
        elif last["kind"] == "cancel":
            status = "cancelled"
    state = CampaignState(
        status=status,
        seq=last["seq"] if last else 0,
        committed_units=sum(pledges.values()),
        participants=len(pledges),
        pledges=pledges,
    )
    loaded = await live.load(CampaignLoad(terms=terms, state=state, receipts=receipts))
    if loaded:
        await live.redis.delete(live.keys.campaign_rebuild_gate(campaign_id))
        if not was_live:
            await db.execute(
                "UPDATE campaigns SET live_loaded_at = now() WHERE id = $1 AND live_loaded_at IS NULL", campaign_id
            )
    return loaded


def receipt_from_event(terms: CampaignTerms, event: asyncpg.Record) -> dict[str, Any]:
    """Rebuild the receipt `pledge.lua` returned for one stored pledge event."""
    units = event["units"] or 0
    delta = event["delta_units"] or 0
    return {
        "receipt_id": f"{terms.campaign_id}-{event['seq']}",
        "campaign_id": terms.campaign_id,
        "seq": event["seq"],
        "units": units,
        "previous_units": units - delta,
        "delta_units": delta,
        "committed_units": event["committed_units"],
        "unit_price_won": unit_price_for(terms, event["committed_units"]),
        "server_ms": _ms(event["server_at"]),
    }


async def load_active_campaigns(db: asyncpg.Pool, live: CampaignLive) -> tuple[int, int]:
    """Load every campaign that is scheduled, open or closing and missing from Redis.

    Returns (loaded now, waiting for their rebuild grace); call again later while
    some are waiting.
    """
    rows = await db.fetch(
        "SELECT id FROM campaigns WHERE status = ANY($1::text[]) ORDER BY id", list(ACTIVE_STATUSES)
    )
    loaded = pending = 0
    for row in rows:
        try:
            loaded += await load_campaign(db, live, row["id"])
        except CampaignRebuildPending:
            pending += 1
    return loaded, pending


async def reload_missing_campaign_shards(db: asyncpg.Pool, live: CampaignLive) -> int:
    """Load the active campaigns of every shard whose loaded marker is missing; return campaigns loaded.

    A missing marker means Redis started empty (first start, or it lost its data).
    Campaigns already live are left alone. Campaigns lost by Redis wait for their
    rebuild grace (`load_campaign`), and are held first when acknowledged beyond
    their ledger. The marker is set once every campaign of the shard is in, so a
    shard with campaigns still waiting is tried again next round.
    """
    keys = live.keys
    pipe = live.redis.pipeline(transaction=False)
    for shard in range(keys.shards):
        pipe.exists(keys.campaign_shard_loaded(shard))
    present = await pipe.execute()
    loaded = 0
    for shard, exists in enumerate(present):
        if exists:
            continue
        rows = await db.fetch(
            "SELECT id FROM campaigns WHERE status = ANY($1::text[]) AND id % $2 = $3 ORDER BY id",
            list(ACTIVE_STATUSES), keys.shards, shard,
        )
        pending = 0
        for row in rows:
            try:
                loaded += await load_campaign(db, live, row["id"])
            except CampaignRebuildPending:
                pending += 1
        if pending:
            log.info("campaign shard waiting for rebuild grace shard=%s campaigns_waiting=%s", shard, pending)
            continue
        await live.redis.set(keys.campaign_shard_loaded(shard), str(await live.server_time_ms()))
        log.info("campaign shard loaded shard=%s campaigns=%s", shard, len(rows))
    return loaded

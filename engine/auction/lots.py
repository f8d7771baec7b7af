"""Creating lots in PostgreSQL and loading their live state into Redis.

PostgreSQL is the record: a lot is inserted there first, then loaded into Redis.
A lot missing from Redis (never loaded, or Redis came back empty) is rebuilt from
`lots` and the `lot_events` ledger before it takes another action.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Sequence

import asyncpg

from engine.actors import STAFF, SUPPLIER, Actor
from engine.auction.acks import rebuild_grace_left_ms
from engine.auction.live import AuctionLive, LotLoad
from engine.auction.rules import DEFAULT_INCREMENTS, MAX_AMOUNT_WON, validate_increments
from engine.errors import DomainError

MAX_WINDOW_S = 3600
MAX_DURATION = timedelta(days=30)


@dataclass(frozen=True)
class LotDraft:
    """A lot as a supplier or staff member submits it; amounts in won, times aware (UTC)."""

    product_id: int
    title: str
    start_price_won: int
    start_at: datetime
    end_at: datetime
    quantity: int = 1
    reserve_won: int | None = None
    buy_now_won: int | None = None
    hard_cap_at: datetime | None = None
    soft_close_window_s: int = 120
    extension_s: int = 120
    increments: Sequence[Sequence[int]] = field(default_factory=lambda: DEFAULT_INCREMENTS)


def _check_draft(draft: LotDraft, now: datetime) -> tuple[tuple[int, int], ...]:
    title = draft.title.strip()
    if not 1 <= len(title) <= 120:
        raise DomainError("invalid_title", "title must be 1 to 120 characters")
    if not 1 <= draft.quantity <= 100_000:
        raise DomainError("invalid_quantity", "quantity must be 1 to 100000")
    for name in ("start_price_won", "reserve_won", "buy_now_won"):
        value = getattr(draft, name)
        if value is not None and not 1 <= value <= MAX_AMOUNT_WON:
            raise DomainError("invalid_amount", f"{name} out of range", field=name)
    if draft.reserve_won is not None and draft.reserve_won < draft.start_price_won:
        raise DomainError("reserve_below_start", "reserve must be at least the start price")
    if draft.buy_now_won is not None:
        if draft.buy_now_won < draft.start_price_won:
            raise DomainError("buy_now_below_start", "buy-now price is below the start price")
        if draft.reserve_won is not None and draft.buy_now_won < draft.reserve_won:
            raise DomainError("buy_now_below_reserve", "buy-now price is below the reserve")
    if draft.end_at <= draft.start_at:
        raise DomainError("end_before_start", "end must be after start")
    if draft.end_at <= now:
        raise DomainError("end_in_past", "end must be in the future")
    if draft.end_at - draft.start_at > MAX_DURATION:
        raise DomainError("duration_too_long", "a lot runs at most 30 days")
    if draft.hard_cap_at is not None and draft.hard_cap_at < draft.end_at:
        raise DomainError("hard_cap_before_end", "the hard cap must not be before the end")
    for name in ("soft_close_window_s", "extension_s"):
        if not 0 <= getattr(draft, name) <= MAX_WINDOW_S:
            raise DomainError("invalid_soft_close", f"{name} must be 0 to {MAX_WINDOW_S} seconds", field=name)
    try:
        return validate_increments(draft.increments)
    except (ValueError, TypeError) as error:
        raise DomainError("invalid_increments", str(error)) from None


async def create_lot(db: asyncpg.Pool, live: AuctionLive, actor: Actor, draft: LotDraft) -> int:
    """Insert a lot for one of the actor's products (staff: any product) and load it live.

    Suppliers manage their own lots; staff may create lots for any supplier, and
    that is audited. Raises DomainError with nothing written on invalid input.
    """
    if actor.role not in (SUPPLIER, STAFF) or actor.status != "active":
        raise DomainError("forbidden", "only suppliers and staff create lots")
    async with db.acquire() as connection:
        async with connection.transaction():
            now = await connection.fetchval("SELECT now()")
            increments = _check_draft(draft, now)
            product = await connection.fetchrow(
                "SELECT p.id, p.supplier_id, p.status, s.status AS supplier_status"
                " FROM products p JOIN suppliers s ON s.id = p.supplier_id WHERE p.id = $1",
                draft.product_id,
            )
            if product is None:
                raise DomainError("product_not_found", "no such product", product_id=draft.product_id)
            if actor.role == SUPPLIER and product["supplier_id"] != actor.supplier_id:
                raise DomainError("forbidden", "a supplier lists only its own products")
            if product["supplier_status"] != "approved":
                raise DomainError("supplier_not_approved", "the supplier is not approved")
            status = "open" if draft.start_at <= now else "scheduled"
            lot_id = await connection.fetchval(
                """INSERT INTO lots (product_id, supplier_id, title, quantity, start_price_won,
                       reserve_won, buy_now_won, start_at, end_at, hard_cap_at,
                       soft_close_window_s, extension_s, increments, status, created_by)
                   VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15) RETURNING id""",
                draft.product_id, product["supplier_id"], draft.title.strip(), draft.quantity,
                draft.start_price_won, draft.reserve_won, draft.buy_now_won, draft.start_at,
                draft.end_at, draft.hard_cap_at, draft.soft_close_window_s, draft.extension_s,
                [list(band) for band in increments], status, actor.user_id,
            )
            if actor.role == STAFF:
                await connection.execute(
                    "INSERT INTO audit_log (actor_id, action, target_type, target_id, detail)"
                    " VALUES ($1, 'lot.create', 'lot', $2, $3)",
                    actor.user_id, lot_id, {"product_id": draft.product_id},
                )
    await load_lot(db, live, lot_id)
    return lot_id


_LIVE_STATUS = {"scheduled": "open", "open": "open"}
_ACTIVE_STATUSES = ("scheduled", "open", "closing")


class RebuildPending(DomainError):
    """A lot lost by Redis waits before its rebuild; the caller may retry shortly."""

    def __init__(self, lot_id: int, retry_after_ms: int) -> None:
        super().__init__(
            "lot_rebuilding", f"lot {lot_id} is being restored; retry in {retry_after_ms} ms",
            lot_id=lot_id, retry_after_ms=retry_after_ms,
        )


async def _wait_for_ack_marks(live: AuctionLive, lot_id: int) -> None:
    """Raise RebuildPending until the rebuild grace has passed since the lot was found missing."""
    left_ms = await rebuild_grace_left_ms(live.redis, live.keys.lot_rebuild_gate(lot_id), live.rebuild_grace_ms)
    if left_ms:
        raise RebuildPending(lot_id, left_ms)


async def load_lot(db: asyncpg.Pool, live: AuctionLive, lot_id: int) -> bool:
    """Load one lot into Redis from PostgreSQL, unless Redis already has it.

    A lot that was live before and is active in PostgreSQL was lost by Redis: it is
    rebuilt only after `live.rebuild_grace_ms` (RebuildPending until then), and held
    first when its ack marks exceed its ledger. The live state is the state after the
    lot's last ledger event; the bidders' maximums and the retry receipts are rebuilt
    from the ledger's bids (voided bids left out). Returns False when the lot does
    not exist or Redis already has it.
    """
    from engine.accounts import mask_name
    from engine.auction.ledger import hold_if_acknowledged_missing

    if await live.redis.exists(live.keys.lot_state(lot_id)):
        return False
    lot = await db.fetchrow("SELECT status, live_loaded_at FROM lots WHERE id = $1", lot_id)
    if lot is None:
        return False
    was_live = lot["live_loaded_at"] is not None
    if was_live and lot["status"] in _ACTIVE_STATUSES:
        await _wait_for_ack_marks(live, lot_id)

    async with db.acquire() as connection:
        if was_live:
            # A lot acknowledged beyond its ledger is rebuilt as held: rebuilt live,
            # it would hand out the lost sequence numbers again.
            await hold_if_acknowledged_missing(connection, lot_id)
        lot = await connection.fetchrow("SELECT * FROM lots WHERE id = $1", lot_id)
        if lot is None:
            return False
        events = await connection.fetch(
            "SELECT e.*, u.display_name FROM lot_events e LEFT JOIN users u ON u.id = e.user_id"
            " WHERE e.lot_id = $1 ORDER BY e.seq",
            lot_id,
        )
    voided = {e["voided_seq"] for e in events if e["kind"] == "void"}
    bids = [e for e in events if e["kind"] in ("bid", "buy_now") and e["seq"] not in voided]
    bidders: dict[int, int] = {}
    receipts: dict[str, dict[str, Any]] = {}
    names: dict[int, str] = {}
    for event in events:
        if event["seq"] in voided and event["client_id"]:
            receipts[f"{event['user_id']}:{event['client_id']}"] = {"voided": True}
    for bid in bids:
        user_id = bid["user_id"]
        bidders[user_id] = max(bidders.get(user_id, 0), bid["amount_won"])
        names[user_id] = bid["display_name"] or ""
        if bid["client_id"]:
            receipts[f"{user_id}:{bid['client_id']}"] = {
                "receipt_id": f"{lot_id}-{bid['seq']}", "lot_id": lot_id, "seq": bid["seq"],
                "kind": bid["kind"], "amount_won": bid["amount_won"], "price_won": bid["price_won"],
                "leading": bid["leader_id"] == user_id,
                "end_ms": int(bid["end_at"].timestamp() * 1000),
                "server_ms": int(bid["server_at"].timestamp() * 1000),
            }
    last = events[-1] if events else None
    leader_id = last["leader_id"] if last else None
    status = _LIVE_STATUS.get(lot["status"], lot["status"])
    if last is not None and status == "open":
        # PostgreSQL may lag behind the ledger when a step after the script failed.
        status = {"close": "closing", "cancel": "cancelled"}.get(last["kind"], status)
    loaded = await live.load(
        LotLoad(
            lot_id=lot_id,
            supplier_id=lot["supplier_id"],
            start_price_won=lot["start_price_won"],
            reserve_won=lot["reserve_won"],
            buy_now_won=lot["buy_now_won"],
            start_at=lot["start_at"],
            end_at=lot["end_at"],
            hard_cap_at=lot["hard_cap_at"],
            soft_close_window_s=lot["soft_close_window_s"],
            extension_s=lot["extension_s"],
            increments=lot["increments"],
            status=status,
            seq=last["seq"] if last else 0,
            price_won=(last["price_won"] or 0) if last else 0,
            leader_id=leader_id,
            leader_max_won=bidders.get(leader_id, 0) if leader_id else 0,
            leader_masked=mask_name(names.get(leader_id, "")) if leader_id else "",
            bid_count=len(bids),
            current_end_at=last["end_at"] if last and last["end_at"] else None,
            bidders=bidders,
            receipts=receipts,
        )
    )
    if loaded:
        await live.redis.delete(live.keys.lot_rebuild_gate(lot_id))
        if not was_live:
            await db.execute(
                "UPDATE lots SET live_loaded_at = now() WHERE id = $1 AND live_loaded_at IS NULL", lot_id
            )
    return loaded


async def load_active_lots(db: asyncpg.Pool, live: AuctionLive) -> tuple[int, int]:
    """Load every lot that is scheduled, open or closing and missing from Redis.

    Returns (loaded now, waiting for their rebuild grace); call again later while
    some are waiting.
    """
    ids = await db.fetch("SELECT id FROM lots WHERE status IN ('scheduled', 'open', 'closing') ORDER BY id")
    loaded = pending = 0
    for row in ids:
        try:
            loaded += await load_lot(db, live, row["id"])
        except RebuildPending:
            pending += 1
    return loaded, pending

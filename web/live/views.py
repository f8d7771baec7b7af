"""What a lot page shows, read from Redis (live state) and PostgreSQL (the record).

Pages, the JSON API and the websocket hub build their views here, so a first page
render and every later push show the same values. Nothing here needs a
request, because the hub calls it without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis

from engine.accounts import mask_name
from engine.auction.live import AuctionLive, Snapshot
from engine.auction.lots import load_lot
from engine.keys import Keys

HISTORY_LIMIT = 20
# How far back the ledger stream is read for bids the ledger consumer has not yet
# written to PostgreSQL. The stream is shared by every lot of a shard.
STREAM_TAIL_ENTRIES = 500

# Display status: Redis keeps "open" for a lot that has not started yet and for one
# whose end passed but whose close has not run. Pages show them apart.
SCHEDULED = "scheduled"
ENDED = "ended"


@dataclass(frozen=True)
class HistoryRow:
    """One accepted bid as the public history shows it (masked name, price after it)."""

    seq: int
    kind: str
    bidder_masked: str
    price_won: int
    server_ms: int
    voided: bool = False


@dataclass(frozen=True)
class LotTerms:
    """The fixed facts of a lot shown beside its live state."""

    lot_id: int
    title: str
    quantity: int
    product_id: int
    product_name: str
    product_unit: str
    origin_label: str
    description: str
    supplier_id: int
    supplier_name: str
    start_price_won: int
    has_reserve: bool
    buy_now_won: int | None
    start_at: datetime
    end_at: datetime
    hard_cap_at: datetime | None
    soft_close_window_s: int
    extension_s: int
    increments: list[list[int]]
    status: str

    @property
    def product_label(self) -> str:
        """The product name with its unit, unless the name already ends with the unit.

        Demo and supplier names often carry the unit ("햅쌀 10kg" sold by the "10kg"),
        which would read "햅쌀 10kg 10kg". Spaces are ignored in the comparison.
        """
        name = self.product_name.strip()
        unit = self.product_unit.strip()
        if not unit or name.replace(" ", "").endswith(unit.replace(" ", "")):
            return name
        return f"{name} {unit}"


_TERMS_SQL = """
SELECT l.id, l.title, l.quantity, l.product_id, p.name AS product_name, p.unit AS product_unit,
       p.origin_label, p.description, l.supplier_id, s.name AS supplier_name, l.start_price_won,
       l.reserve_won IS NOT NULL AS has_reserve, l.buy_now_won, l.start_at, l.end_at,
       l.hard_cap_at, l.soft_close_window_s, l.extension_s, l.increments, l.status
FROM lots l JOIN products p ON p.id = l.product_id JOIN suppliers s ON s.id = l.supplier_id
"""


def _terms(row: asyncpg.Record) -> LotTerms:
    return LotTerms(
        lot_id=row["id"], title=row["title"], quantity=row["quantity"], product_id=row["product_id"],
        product_name=row["product_name"], product_unit=row["product_unit"],
        origin_label=row["origin_label"], description=row["description"],
        supplier_id=row["supplier_id"], supplier_name=row["supplier_name"],
        start_price_won=row["start_price_won"], has_reserve=row["has_reserve"],
        buy_now_won=row["buy_now_won"], start_at=row["start_at"], end_at=row["end_at"],
        hard_cap_at=row["hard_cap_at"], soft_close_window_s=row["soft_close_window_s"],
        extension_s=row["extension_s"], increments=row["increments"], status=row["status"],
    )


async def fetch_terms(db: asyncpg.Pool, lot_id: int) -> LotTerms | None:
    row = await db.fetchrow(_TERMS_SQL + " WHERE l.id = $1", lot_id)
    return _terms(row) if row else None


async def fetch_listed_terms(
    db: asyncpg.Pool, *, statuses: tuple[str, ...], supplier_id: int | None = None, limit: int = 100
) -> list[LotTerms]:
    """Lots in one of `statuses` (optionally of one supplier), ending soonest first."""
    rows = await db.fetch(
        _TERMS_SQL + " WHERE l.status = ANY($1::text[]) AND ($2::bigint IS NULL OR l.supplier_id = $2)"
        " ORDER BY l.end_at, l.id LIMIT $3",
        list(statuses), supplier_id, limit,
    )
    return [_terms(row) for row in rows]


async def read_snapshot(db: asyncpg.Pool, live: AuctionLive, lot_id: int) -> Snapshot | None:
    """Read the lot's live snapshot, loading the lot into Redis first when it is missing there."""
    snapshot = await live.snapshot(lot_id)
    if snapshot is None and await load_lot(db, live, lot_id):
        snapshot = await live.snapshot(lot_id)
    return snapshot


async def read_snapshots(live: AuctionLive, lot_ids: list[int]) -> dict[int, Snapshot]:
    """Snapshots of several lots (lots missing in Redis are left out)."""
    found: dict[int, Snapshot] = {}
    for lot_id in lot_ids:
        snapshot = await live.snapshot(lot_id)
        if snapshot is not None:
            found[lot_id] = snapshot
    return found


def display_status(snapshot: Snapshot) -> str:
    if snapshot.status == "open":
        if snapshot.server_ms < snapshot.start_ms:
            return SCHEDULED
        if snapshot.server_ms >= snapshot.end_ms:
            return ENDED
    return snapshot.status


def shown_price_won(snapshot: Snapshot) -> int:
    """Return the price to show: the current price, or the start price before the first bid."""
    return snapshot.price_won if snapshot.bid_count else snapshot.min_next_won


def snapshot_from_event(event: dict[str, Any]) -> Snapshot | None:
    """Build a snapshot from a published bid event; None for events that lack the bid fields."""
    if "min_next_won" not in event:
        return None
    return Snapshot.from_reply(event)


def history_row_from_event(event: dict[str, Any]) -> HistoryRow:
    return HistoryRow(
        seq=int(event["seq"]),
        kind=event["event"],
        bidder_masked=event.get("bidder_masked") or "*",
        price_won=int(event["price_won"]),
        server_ms=int(event["server_ms"]),
    )


def notice_kind(snapshot: Snapshot, user_id: int | None, bidders: set[int] | frozenset[int]) -> str | None:
    """Return the private notice one user sees for a lot, or None when they have not bid."""
    if user_id is None:
        return None
    leading = snapshot.leader_id == user_id
    if not leading and user_id not in bidders:
        return None
    status = display_status(snapshot)
    if status in ("open", SCHEDULED):
        return "winning" if leading else "outbid"
    if status == "cancelled":
        return "cancelled"
    if status == "held":
        return "held"
    if not leading:
        return "not_won"
    if status == "unsold" or snapshot.reserve_met is False:
        return "reserve_not_met"
    return "won"


async def recent_history(
    db: asyncpg.Pool, redis: Redis, keys: Keys, lot_id: int, *, limit: int = HISTORY_LIMIT
) -> list[HistoryRow]:
    """Read the newest accepted bids of a lot, newest first, with voided bids marked.

    PostgreSQL is the record, and bids the ledger consumer has not written yet are
    read from the tail of the shard's ledger stream, so a bid shows up at once.
    """
    async with db.acquire() as connection:
        rows = await connection.fetch(
            "SELECT e.seq, e.kind, e.price_won, e.server_at, u.display_name,"
            " EXISTS (SELECT 1 FROM lot_events v WHERE v.lot_id = e.lot_id AND v.kind = 'void'"
            "         AND v.voided_seq = e.seq) AS voided"
            " FROM lot_events e LEFT JOIN users u ON u.id = e.user_id"
            " WHERE e.lot_id = $1 AND e.kind IN ('bid', 'buy_now') ORDER BY e.seq DESC LIMIT $2",
            lot_id, limit,
        )
        recorded_max = await connection.fetchval(
            "SELECT coalesce(max(seq), 0) FROM lot_events WHERE lot_id = $1", lot_id
        )
        history = [
            HistoryRow(
                seq=row["seq"], kind=row["kind"], bidder_masked=mask_name(row["display_name"] or ""),
                price_won=row["price_won"] or 0, server_ms=int(row["server_at"].timestamp() * 1000),
                voided=row["voided"],
            )
            for row in rows
        ]
        tail = await _unrecorded_bids(redis, keys, lot_id, recorded_max)
        if tail:
            names = dict(
                await connection.fetch(
                    "SELECT id, display_name FROM users WHERE id = ANY($1::bigint[])",
                    list({int(entry["user"]) for entry in tail}),
                )
            )
    if not tail:
        return history
    voided = {int(entry.get("voided_seq") or 0) for entry in tail if entry["kind"] == "void"}
    fresh = [
        HistoryRow(
            seq=int(entry["seq"]), kind=entry["kind"],
            bidder_masked=mask_name(names.get(int(entry["user"]), "")),
            price_won=int(entry["price"]), server_ms=int(entry["server_ms"]),
            voided=int(entry["seq"]) in voided,
        )
        for entry in tail
        if entry["kind"] in ("bid", "buy_now")
    ]
    fresh.sort(key=lambda row: row.seq, reverse=True)
    if voided:
        history = [HistoryRow(**{**row.__dict__, "voided": row.voided or row.seq in voided}) for row in history]
    return (fresh + history)[:limit]


async def _unrecorded_bids(redis: Redis, keys: Keys, lot_id: int, after_seq: int) -> list[dict[str, str]]:
    entries = await redis.xrevrange(keys.ledger_stream_for_lot(lot_id), count=STREAM_TAIL_ENTRIES)
    wanted = str(lot_id)
    found: list[dict[str, str]] = []
    for _entry_id, raw in entries:
        fields = {_text(k): _text(v) for k, v in raw.items()}
        if fields.get("lot") != wanted:
            continue
        if int(fields["seq"]) <= after_seq:
            # Entries are newest first, so everything further back is recorded already.
            break
        found.append(fields)
    return found


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

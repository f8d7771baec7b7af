"""Closing lots exactly once: Redis stops the lot, PostgreSQL records the result.

A close runs in three steps, each safe to repeat:
1. `AuctionLive.begin_close` moves a due lot from open to closing in Redis and
   appends a `close` event carrying the lot's last sequence number (the final seq).
2. `finalize_lot` waits until `lot_events` holds every sequence number 1..final, then
   in one PostgreSQL transaction locks the lot row, returns at once if the lot is
   already final, and otherwise writes the sale, the order awaiting payment, the
   money ledger rows and the outbox mails, and sets the lot's final status.
3. `settle_live` copies the final status to Redis, which takes the lot off the
   ends set.

Two closers racing on one lot serialize on the row lock; the second finds the lot
final and only settles. A closer killed between steps 2 and 3 leaves the lot closing
in Redis, still in the ends set, so the next round settles it. The unique
constraints on `sales`, `orders` and `money_ledger` are the last guard.

A lot whose ledger misses a sequence number (Redis lost entries before they were
stored) or that a client was acknowledged beyond Redis's final sequence number is
held for staff review instead of being sold.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from engine import commission, outbox
from engine.auction.ledger import ACKNOWLEDGED_MISSING, hold_lot, ms_to_datetime
from engine.auction.live import AuctionLive
from engine.auction.lots import RebuildPending, load_lot
from engine.config import Settings
from engine.mail import templates
from engine.mail.i18n import recipient_locale

# A settled lot's live keys stay this long for late page views, then expire;
# PostgreSQL keeps the record and `load_lot` can bring a settled lot back.
SETTLED_LOT_TTL_S = 7 * 24 * 3600

log = logging.getLogger("jangteo.closing")

SOLD = "sold"
UNSOLD = "unsold"
HELD = "held"
CANCELLED = "cancelled"
FINAL_STATUSES = frozenset({SOLD, UNSOLD, HELD, CANCELLED})
WAITING = "waiting"  # the ledger has not caught up yet; the next round tries again

GAP_REASON = "ledger gap"
ACK_REASON = ACKNOWLEDGED_MISSING
AHEAD_REASON = "ledger ahead of live state"


@dataclass(frozen=True)
class CloseOutcome:
    lot_id: int
    status: str  # sold, unsold, held, cancelled or waiting
    sale_id: int | None = None
    order_id: int | None = None


@dataclass
class GapWatch:
    """When this process first saw each lot's ledger gap (monotonic seconds).

    A gap holds its lot only after it has lasted `ledger_gap_grace_s`, measured both
    by Redis time since the lot's end and by this process's own observation. So a
    worker that starts behind a backlog does not hold lots the consumer is about to store.
    """

    first_seen_s: dict[int, float] = field(default_factory=dict)

    def observed_for_s(self, lot_id: int) -> float:
        now = time.monotonic()
        return now - self.first_seen_s.setdefault(lot_id, now)

    def forget(self, lot_id: int) -> None:
        self.first_seen_s.pop(lot_id, None)


# -- orders -------------------------------------------------------------------------


@dataclass(frozen=True)
class AuctionOrder:
    sale_id: int
    order_id: int
    order_no: str
    due_at: datetime
    commission_won: int


async def create_auction_order(
    connection: asyncpg.Connection,
    settings: Settings,
    lot: asyncpg.Record,
    *,
    buyer_id: int,
    price_won: int,
    sold_at: datetime,
    second_chance: bool = False,
) -> AuctionOrder:
    """Insert the sale, its order (bank transfer, awaiting payment) and its money ledger rows.

    `lot` must carry the lot's columns plus the product's `product_kind` and `is_local`.
    Call inside the transaction that holds the lot row's lock.
    """
    sale_id = await connection.fetchval(
        "INSERT INTO sales (lot_id, buyer_id, price_won, channel, second_chance)"
        " VALUES ($1, $2, $3, 'auction', $4) RETURNING id",
        lot["id"], buyer_id, price_won, second_chance,
    )
    order_id = await connection.fetchval("SELECT nextval(pg_get_serial_sequence('orders', 'id'))")
    order_no = f"A{sold_at.astimezone(templates.KST):%Y%m%d}{order_id}"
    due_at = sold_at + timedelta(seconds=settings.payment_due_s)
    await connection.execute(
        """INSERT INTO orders (id, order_no, channel, sale_id, buyer_id, supplier_id, amount_won,
                               status, payment_method, payment_due_at)
           VALUES ($1, $2, 'auction', $3, $4, $5, $6, 'awaiting_payment', 'bank_transfer', $7)""",
        order_id, order_no, sale_id, buyer_id, lot["supplier_id"], price_won, due_at,
    )
    commission_won = await commission.record_sale_entries(
        connection, order_id=order_id, supplier_id=lot["supplier_id"], amount_won=price_won,
        is_local=lot["is_local"], kind=lot["product_kind"], sold_at=sold_at,
    )
    return AuctionOrder(sale_id, order_id, order_no, due_at, commission_won)


# -- finalizing ---------------------------------------------------------------------

_LOCK_LOT = """
SELECT l.*, p.kind AS product_kind, p.is_local, s.email AS supplier_email
FROM lots l
JOIN products p ON p.id = l.product_id
JOIN suppliers s ON s.id = l.supplier_id
WHERE l.id = $1
FOR UPDATE OF l
"""


@dataclass(frozen=True)
class LedgerCheck:
    complete: bool
    stored: int  # rows with seq <= final
    max_seq: int
    acknowledged_seq: int


async def check_ledger(connection: asyncpg.Connection, lot_id: int, final_seq: int) -> LedgerCheck:
    row = await connection.fetchrow(
        """SELECT count(*) FILTER (WHERE seq <= $2) AS stored, coalesce(max(seq), 0) AS max_seq,
                  (SELECT seq FROM lot_ack_marks WHERE lot_id = $1) AS acknowledged_seq
           FROM lot_events WHERE lot_id = $1""",
        lot_id, final_seq,
    )
    return LedgerCheck(
        complete=row["stored"] == final_seq,
        stored=row["stored"],
        max_seq=row["max_seq"],
        acknowledged_seq=row["acknowledged_seq"] or 0,
    )


async def finalize_lot(
    db: asyncpg.Pool, settings: Settings, lot_id: int, final_seq: int, *, hold_gap: bool = False
) -> CloseOutcome:
    """Record the result of a lot that Redis closed at `final_seq`, exactly once.

    Returns `waiting` while the ledger misses a sequence number, unless `hold_gap` is
    set, which holds the lot instead. A lot already final returns its status.
    """
    async with db.acquire() as connection:
        async with connection.transaction():
            lot = await connection.fetchrow(_LOCK_LOT, lot_id)
            if lot is None:
                raise LookupError(f"lot {lot_id} is not in PostgreSQL; cannot finalize it")
            if lot["status"] in FINAL_STATUSES:
                return CloseOutcome(lot_id, lot["status"])

            ledger = await check_ledger(connection, lot_id, final_seq)
            reason = None
            if ledger.acknowledged_seq > final_seq:
                reason = ACK_REASON
            elif ledger.max_seq > final_seq:
                reason = AHEAD_REASON
            elif not ledger.complete:
                if not hold_gap:
                    return CloseOutcome(lot_id, WAITING)
                reason = GAP_REASON
            if reason is not None:
                await hold_lot(connection, lot_id, reason)
                return CloseOutcome(lot_id, HELD)

            return await _record_result(connection, settings, lot, final_seq)


async def _record_result(
    connection: asyncpg.Connection, settings: Settings, lot: asyncpg.Record, final_seq: int
) -> CloseOutcome:
    lot_id = lot["id"]
    events = await connection.fetch(
        "SELECT seq, kind, user_id, price_won, leader_id, end_at, voided_seq, server_at"
        " FROM lot_events WHERE lot_id = $1 AND seq <= $2 ORDER BY seq",
        lot_id, final_seq,
    )
    final = events[-1]
    if final["kind"] == "cancel":
        await connection.execute(
            "UPDATE lots SET status = 'cancelled', final_seq = $2, closed_at = now() WHERE id = $1",
            lot_id, final_seq,
        )
        return CloseOutcome(lot_id, CANCELLED)

    bidder_ids = sorted({e["user_id"] for e in events if e["kind"] in ("bid", "buy_now")})
    winner_id = final["leader_id"]
    price_won = final["price_won"] or 0
    reserve_met = lot["reserve_won"] is None or price_won >= lot["reserve_won"]
    sold = winner_id is not None and price_won > 0 and reserve_met
    sold_at = final["server_at"]
    status = SOLD if sold else UNSOLD
    await connection.execute(
        "UPDATE lots SET status = $2, final_end_at = $3, final_seq = $4, closed_at = now() WHERE id = $1",
        lot_id, status, final["end_at"], final_seq,
    )

    emails = {
        row["id"]: row["email"]
        for row in await connection.fetch("SELECT id, email FROM users WHERE id = ANY($1::bigint[])", bidder_ids)
    }
    order: AuctionOrder | None = None
    supplier_locale = await recipient_locale(connection, lot["supplier_email"])
    if sold:
        order = await create_auction_order(
            connection, settings, lot, buyer_id=winner_id, price_won=price_won, sold_at=sold_at
        )
        won = templates.lot_won(
            await recipient_locale(connection, emails[winner_id]),
            lot_id=lot_id, title=lot["title"], order_no=order.order_no, amount_won=price_won, due_at=order.due_at,
        )
        await outbox.enqueue(connection, f"lot:{lot_id}:won", emails[winner_id], won.subject, won.body)
        notice = templates.lot_supplier_sold(
            supplier_locale, lot_id=lot_id, title=lot["title"], order_no=order.order_no, amount_won=price_won
        )
    else:
        notice = templates.lot_supplier_unsold(supplier_locale, lot_id=lot_id, title=lot["title"])
    for user_id in bidder_ids:
        if user_id != winner_id or not sold:
            lost = templates.lot_lost(await recipient_locale(connection, emails[user_id]), lot_id=lot_id,
                                      title=lot["title"])
            await outbox.enqueue(connection, f"lot:{lot_id}:lost", emails[user_id], lost.subject, lost.body)
    await outbox.enqueue(connection, f"lot:{lot_id}:supplier", lot["supplier_email"], notice.subject, notice.body)

    log.info(
        "lot closed lot_id=%s status=%s final_seq=%s price_won=%s order_id=%s",
        lot_id, status, final_seq, price_won if sold else 0, order.order_id if order else None,
    )
    if order is None:
        return CloseOutcome(lot_id, status)
    return CloseOutcome(lot_id, status, order.sale_id, order.order_id)


async def settle_live(live: AuctionLive, lot_id: int, status: str) -> bool:
    """Copy a final status to Redis (repeatable); False when Redis has another state."""
    reply = await live.admin(lot_id, "settle", status, settled_ttl_s=SETTLED_LOT_TTL_S)
    if not reply.get("ok"):
        log.warning("lot settle skipped lot_id=%s status=%s code=%s live_status=%s",
                    lot_id, status, reply.get("code"), reply.get("status"))
        return False
    return True


# -- the closer ---------------------------------------------------------------------


async def close_lot(
    db: asyncpg.Pool, live: AuctionLive, settings: Settings, lot_id: int, *, gaps: GapWatch | None = None
) -> CloseOutcome:
    """Close one due lot: stop it in Redis, record it in PostgreSQL, settle Redis."""
    reply = await live.begin_close(lot_id)
    if not reply.get("ok"):
        return await _close_rejected(db, live, lot_id, reply)
    state: dict[str, Any] = reply["state"]
    final_seq = int(state["seq"])
    hold_gap = await _gap_is_final(live, settings, lot_id, state, gaps or GapWatch())
    outcome = await finalize_lot(db, settings, lot_id, final_seq, hold_gap=hold_gap)
    if outcome.status == WAITING:
        return outcome
    if gaps is not None:
        gaps.forget(lot_id)
    await settle_live(live, lot_id, outcome.status)
    return outcome


async def _gap_is_final(
    live: AuctionLive, settings: Settings, lot_id: int, state: dict[str, Any], gaps: GapWatch
) -> bool:
    """Whether a ledger gap, if there is one, should hold the lot now.

    An empty shard stream means the consumer stored (and deleted) everything Redis
    still has, so a gap then can never fill. Otherwise the gap must have lasted the
    grace period.
    """
    stream = live.keys.ledger_stream_for_lot(lot_id)
    if await live.redis.xlen(stream) == 0:
        return True
    grace_ms = settings.ledger_gap_grace_s * 1000
    since_end_ms = int(state["server_ms"]) - int(state["end_ms"])
    return since_end_ms >= grace_ms and gaps.observed_for_s(lot_id) >= settings.ledger_gap_grace_s


async def _close_rejected(db: asyncpg.Pool, live: AuctionLive, lot_id: int, reply: dict[str, Any]) -> CloseOutcome:
    code = reply.get("code")
    if code == "lot_not_loaded":
        # The ends set names a lot whose state is gone: rebuild it from the record.
        await load_lot(db, live, lot_id)
        return CloseOutcome(lot_id, WAITING)
    if code == "not_open":
        # Redis has already settled this lot (or it was cancelled); the script took it
        # off the ends set.
        return CloseOutcome(lot_id, reply.get("status") or "")
    return CloseOutcome(lot_id, WAITING)


async def close_due_lots(
    db: asyncpg.Pool, live: AuctionLive, settings: Settings, *, gaps: GapWatch | None = None, limit: int = 100
) -> list[CloseOutcome]:
    """Close every lot whose end has passed by Redis time, shard by shard.

    Safe to run in several processes at once. A lot whose ledger is behind stays
    due and is tried again next round. Redis or PostgreSQL errors propagate; the
    caller retries the round.
    """
    outcomes: list[CloseOutcome] = []
    for shard in range(settings.redis_shards):
        for lot_id in await live.due_lots(shard, limit=limit):
            outcomes.append(await close_lot(db, live, settings, lot_id, gaps=gaps))
    return outcomes


# -- keeping Redis loaded and PostgreSQL's display status current ---------------------


async def open_started_lots(db: asyncpg.Pool) -> int:
    """Mark scheduled lots whose start has passed as open (display only; Redis judges by time)."""
    result = await db.execute("UPDATE lots SET status = 'open' WHERE status = 'scheduled' AND start_at <= now()")
    return int(result.split()[-1])


async def reload_missing_shards(db: asyncpg.Pool, live: AuctionLive, settings: Settings) -> int:
    """Load the active lots of every shard whose loaded marker is missing; return lots loaded.

    A missing marker means Redis started empty (first start, or it lost its data).
    Lots already live are left alone. Lots lost by Redis wait for their rebuild grace
    (`load_lot`), and are held first when acknowledged beyond their ledger, so they
    take no bid under a reissued sequence number. The marker is set once every lot
    of the shard is in, so a shard with lots still waiting is tried again next round.
    """
    keys = live.keys
    pipe = live.redis.pipeline(transaction=False)
    for shard in range(settings.redis_shards):
        pipe.exists(keys.shard_loaded(shard))
    present = await pipe.execute()
    missing = [shard for shard, exists in enumerate(present) if not exists]
    loaded = 0
    for shard in missing:
        rows = await db.fetch(
            "SELECT id FROM lots WHERE status IN ('scheduled', 'open', 'closing') AND id % $1 = $2 ORDER BY id",
            settings.redis_shards, shard,
        )
        pending = 0
        for row in rows:
            try:
                loaded += await load_lot(db, live, row["id"])
            except RebuildPending:
                pending += 1
        if pending:
            log.info("shard waiting for rebuild grace shard=%s lots_waiting=%s", shard, pending)
            continue
        await live.redis.set(keys.shard_loaded(shard), ms_to_datetime(await live.server_time_ms()).isoformat())
        log.info("shard loaded shard=%s lots=%s", shard, len(rows))
    return loaded


async def sync_held_lots(db: asyncpg.Pool, live: AuctionLive) -> int:
    """Stop taking bids in Redis for lots PostgreSQL holds for review; return lots changed.

    The ledger consumer and the rebuild check hold lots in PostgreSQL only; this copies
    the hold to the live state, so no receipt is handed out for a held lot after it.
    """
    rows = await db.fetch("SELECT id FROM lots WHERE status = 'held' AND closed_at IS NULL ORDER BY id")
    changed = 0
    for row in rows:
        reply = await live.admin(row["id"], "hold", "review")
        if reply.get("changed"):
            changed += 1
    return changed

"""Staff actions on lots: cancel, extend, void a bid, and second-chance offers.

Each action is staff-only (DomainError `forbidden` otherwise, with nothing changed)
and writes one `audit_log` row. The change to the live lot is one admin script call
made while the lot's PostgreSQL row is locked, and the audit row and any status
change commit in that same transaction. If the commit fails after Redis applied the
change, the ledger still records it (the script appends an event with the staff
member's id), and repeating the action finishes the PostgreSQL side.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import asyncpg
import orjson

from engine import outbox
from engine.accounts import mask_name
from engine.actors import Actor
from engine.auction import closing
from engine.auction.live import AuctionLive
from engine.auction.lots import load_lot
from engine.auction.rules import LotTerms, replay_bids, validate_increments
from engine.config import Settings
from engine.errors import DomainError
from engine.mail import templates
from engine.mail.i18n import recipient_locale
from engine.orders import audit, cancel_order_in_transaction, require_staff

log = logging.getLogger("jangteo.staff")

SECOND_CHANCE_TTL_S = 24 * 3600
VOID_ATTEMPTS = 5
LEDGER_WAIT_S = 10.0


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def _lock_lot(connection: asyncpg.Connection, lot_id: int) -> asyncpg.Record:
    lot = await connection.fetchrow("SELECT * FROM lots WHERE id = $1 FOR UPDATE", lot_id)
    if lot is None:
        raise DomainError("lot_not_found", f"lot {lot_id} does not exist", lot_id=lot_id)
    return lot


def _require_live(lot: asyncpg.Record) -> None:
    if lot["status"] not in ("scheduled", "open"):
        raise DomainError(
            "lot_not_open", f"lot {lot['id']} is {lot['status']}; staff change only scheduled or open lots",
            lot_id=lot["id"], status=lot["status"],
        )


async def _admin(db: asyncpg.Pool, live: AuctionLive, lot_id: int, action: str, argument: str, actor: Actor) -> dict:
    reply = await live.admin(lot_id, action, argument, actor.user_id)
    if reply.get("code") == "lot_not_loaded":
        # Redis lost the lot: rebuild it from the record, then apply the action.
        await load_lot(db, live, lot_id)
        reply = await live.admin(lot_id, action, argument, actor.user_id)
    return reply


# -- cancel and extend ----------------------------------------------------------------


async def cancel_lot(db: asyncpg.Pool, live: AuctionLive, actor: Actor, lot_id: int) -> None:
    """Cancel a scheduled or open lot: bids are rejected from then on, and nothing is sold."""
    require_staff(actor)
    async with db.acquire() as connection:
        async with connection.transaction():
            lot = await _lock_lot(connection, lot_id)
            _require_live(lot)
            reply = await _admin(db, live, lot_id, "cancel", "", actor)
            already = reply.get("code") == "not_open" and reply.get("status") == "cancelled"
            if not reply.get("ok") and not already:
                raise DomainError("lot_not_open", f"lot {lot_id} is no longer open (live status "
                                  f"{reply.get('status')}); it can no longer be cancelled", lot_id=lot_id)
            await connection.execute(
                "UPDATE lots SET status = 'cancelled', closed_at = now(), final_seq = $2 WHERE id = $1",
                lot_id, reply.get("seq"),
            )
            await audit(connection, actor, "lot.cancel", "lot", lot_id, {"seq": reply.get("seq")})
    log.info("lot cancelled lot_id=%s actor_id=%s", lot_id, actor.user_id)


async def extend_lot(db: asyncpg.Pool, live: AuctionLive, actor: Actor, lot_id: int, new_end: datetime) -> int:
    """Move an open lot's end to `new_end` (later than now and than its current end); returns the event seq."""
    require_staff(actor)
    if new_end.tzinfo is None:
        raise DomainError("invalid_end", "new end must be a time with a time zone")
    async with db.acquire() as connection:
        async with connection.transaction():
            lot = await _lock_lot(connection, lot_id)
            _require_live(lot)
            if lot["hard_cap_at"] is not None and new_end > lot["hard_cap_at"]:
                raise DomainError("beyond_hard_cap", f"lot {lot_id} may not run past its hard cap",
                                  lot_id=lot_id, hard_cap_at=lot["hard_cap_at"].isoformat())
            reply = await _admin(db, live, lot_id, "extend", str(_ms(new_end)), actor)
            if not reply.get("ok"):
                if reply.get("code") == "end_not_later":
                    raise DomainError("end_not_later", "the new end must be later than now and than the current end",
                                      lot_id=lot_id)
                raise DomainError("lot_not_open", f"lot {lot_id} is no longer open", lot_id=lot_id)
            await audit(connection, actor, "lot.extend", "lot", lot_id,
                        {"new_end": new_end.isoformat(), "seq": reply["seq"]})
    log.info("lot extended lot_id=%s actor_id=%s seq=%s", lot_id, actor.user_id, reply["seq"])
    return int(reply["seq"])


# -- void -----------------------------------------------------------------------------


def _terms(lot: asyncpg.Record) -> LotTerms:
    return LotTerms(
        lot_id=lot["id"],
        supplier_id=lot["supplier_id"],
        start_price_won=lot["start_price_won"],
        start_ms=_ms(lot["start_at"]),
        end_ms=_ms(lot["end_at"]),
        reserve_won=lot["reserve_won"],
        buy_now_won=lot["buy_now_won"],
        hard_cap_ms=_ms(lot["hard_cap_at"]) if lot["hard_cap_at"] else None,
        window_ms=lot["soft_close_window_s"] * 1000,
        extension_ms=lot["extension_s"] * 1000,
        increments=validate_increments(lot["increments"]),
    )


async def _wait_for_ledger(db: asyncpg.Pool, lot_id: int, seq: int, wait_s: float) -> None:
    """Wait until `lot_events` contains the lot's events up to `seq` (the ledger consumer runs elsewhere)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        stored = await db.fetchval("SELECT count(*) FROM lot_events WHERE lot_id = $1 AND seq <= $2", lot_id, seq)
        if stored >= seq:
            return
        if loop.time() >= deadline:
            raise DomainError("ledger_behind", f"the ledger of lot {lot_id} is not yet up to date; try again shortly",
                              lot_id=lot_id)
        await asyncio.sleep(0.05)


async def void_bid(
    db: asyncpg.Pool, live: AuctionLive, actor: Actor, lot_id: int, seq: int, *, ledger_wait_s: float = LEDGER_WAIT_S
) -> int:
    """Void one accepted bid of an open lot and recompute the price from the remaining bids.

    The recomputation replays the ledger's bids (those not voided) through the rules;
    the reset is applied only if no bid arrived meanwhile, otherwise it is recomputed,
    up to five times. Returns the seq of the void event.
    """
    require_staff(actor)
    for _ in range(VOID_ATTEMPTS):
        snapshot = await live.snapshot(lot_id)
        if snapshot is None:
            await load_lot(db, live, lot_id)
            snapshot = await live.snapshot(lot_id)
            if snapshot is None:
                raise DomainError("lot_not_found", f"lot {lot_id} does not exist", lot_id=lot_id)
        await _wait_for_ledger(db, lot_id, snapshot.seq, ledger_wait_s)
        async with db.acquire() as connection:
            async with connection.transaction():
                lot = await _lock_lot(connection, lot_id)
                _require_live(lot)
                argument = await _reset_argument(connection, lot, seq, snapshot.seq, snapshot.end_ms)
                reply = await _admin(db, live, lot_id, "reset", argument, actor)
                if reply.get("code") == "seq_changed":
                    continue
                if not reply.get("ok"):
                    raise DomainError("lot_not_open", f"lot {lot_id} is no longer open", lot_id=lot_id)
                await audit(connection, actor, "lot.void_bid", "lot", lot_id,
                            {"voided_seq": seq, "seq": reply["seq"], **orjson.loads(argument)["summary"]})
        log.info("bid voided lot_id=%s voided_seq=%s actor_id=%s", lot_id, seq, actor.user_id)
        return int(reply["seq"])
    raise DomainError("lot_busy", f"lot {lot_id} kept receiving bids; try the void again", lot_id=lot_id)


async def _reset_argument(
    connection: asyncpg.Connection, lot: asyncpg.Record, seq: int, expected_seq: int, end_ms: int
) -> str:
    events = await connection.fetch(
        "SELECT e.seq, e.kind, e.user_id, e.client_id, e.amount_won, e.voided_seq, e.server_at, u.display_name"
        " FROM lot_events e LEFT JOIN users u ON u.id = e.user_id"
        " WHERE e.lot_id = $1 AND e.seq <= $2 ORDER BY e.seq",
        lot["id"], expected_seq,
    )
    voided = {e["voided_seq"] for e in events if e["kind"] == "void"}
    target = next((e for e in events if e["seq"] == seq), None)
    if target is None or target["kind"] != "bid":
        raise DomainError("bid_not_found", f"lot {lot['id']} has no bid with sequence number {seq}",
                          lot_id=lot["id"], seq=seq)
    if seq in voided:
        raise DomainError("bid_already_voided", f"bid {seq} of lot {lot['id']} is already void",
                          lot_id=lot["id"], seq=seq)
    voided.add(seq)
    remaining = [e for e in events if e["kind"] == "bid" and e["seq"] not in voided]
    state = replay_bids(
        _terms(lot), [(e["user_id"], e["amount_won"], _ms(e["server_at"])) for e in remaining], end_ms=end_ms
    )
    names = {e["user_id"]: e["display_name"] or "" for e in remaining}
    leader = state.leader_id or 0
    return orjson.dumps({
        "price": state.price_won,
        "leader": leader,
        "leader_max": state.leader_max_won,
        "leader_masked": mask_name(names[leader]) if leader else "",
        "bid_count": state.bid_count,
        "bidders": {str(user): amount for user, amount in state.maxima.items()},
        "voided_seq": seq,
        "voided_receipt": f"{target['user_id']}:{target['client_id']}" if target["client_id"] else None,
        "expected_seq": expected_seq,
        "summary": {"price_won": state.price_won, "leader_id": state.leader_id, "bid_count": state.bid_count},
    }).decode()


# -- second chance --------------------------------------------------------------------


async def _runner_up(connection: asyncpg.Connection, lot_id: int, winner_id: int) -> tuple[int, int] | None:
    """Return the highest maximum of a bidder other than the winner (the earlier bid on ties)."""
    row = await connection.fetchrow(
        """SELECT user_id, amount_won FROM lot_events e
           WHERE e.lot_id = $1 AND e.kind = 'bid' AND e.user_id <> $2
             AND NOT EXISTS (SELECT 1 FROM lot_events v
                             WHERE v.lot_id = e.lot_id AND v.kind = 'void' AND v.voided_seq = e.seq)
           ORDER BY amount_won DESC, seq
           LIMIT 1""",
        lot_id, winner_id,
    )
    return (row["user_id"], row["amount_won"]) if row else None


async def second_chance_offer(
    db: asyncpg.Pool, settings: Settings, actor: Actor, lot_id: int, *, ttl_s: int = SECOND_CHANCE_TTL_S
) -> int:
    """Offer a sold lot whose winner did not pay to the runner-up at the runner-up's maximum.

    The winner's order must be cancelled or past its payment due time (it is then
    cancelled here). The runner-up's maximum never exceeds the final price, and an
    offer below the reserve is rejected. Returns the offer id; the runner-up is mailed.
    """
    require_staff(actor)
    async with db.acquire() as connection:
        async with connection.transaction():
            lot = await _lock_lot(connection, lot_id)
            sale = await connection.fetchrow(
                "SELECT s.buyer_id, o.id AS order_id, o.status, o.payment_due_at < now() AS overdue"
                " FROM sales s JOIN orders o ON o.sale_id = s.id"
                " WHERE s.lot_id = $1 AND NOT s.second_chance FOR UPDATE OF o",
                lot_id,
            )
            if lot["status"] != "sold" or sale is None:
                raise DomainError("lot_not_sold", f"lot {lot_id} was not sold; there is nothing to offer again",
                                  lot_id=lot_id)
            if sale["status"] == "awaiting_payment" and sale["overdue"]:
                order = await connection.fetchrow("SELECT * FROM orders WHERE id = $1", sale["order_id"])
                await cancel_order_in_transaction(connection, order)
            elif sale["status"] != "cancelled":
                raise DomainError("winner_order_active", f"the winner's order of lot {lot_id} is {sale['status']}"
                                  " and not overdue", lot_id=lot_id, status=sale["status"])
            runner_up = await _runner_up(connection, lot_id, sale["buyer_id"])
            if runner_up is None:
                raise DomainError("no_runner_up", f"lot {lot_id} had no other bidder", lot_id=lot_id)
            user_id, price_won = runner_up
            if lot["reserve_won"] is not None and price_won < lot["reserve_won"]:
                raise DomainError("runner_up_below_reserve", f"the runner-up's maximum on lot {lot_id} is below"
                                  " its reserve", lot_id=lot_id)
            offer = await connection.fetchrow(
                """INSERT INTO second_chance_offers (lot_id, user_id, price_won, expires_at, created_by)
                   VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5)
                   ON CONFLICT (lot_id, user_id) DO NOTHING
                   RETURNING id, expires_at""",
                lot_id, user_id, price_won, float(ttl_s), actor.user_id,
            )
            if offer is None:
                raise DomainError("offer_exists", f"lot {lot_id} was already offered to its runner-up", lot_id=lot_id)
            email = await connection.fetchval("SELECT email FROM users WHERE id = $1", user_id)
            mail = templates.second_chance_offered(
                await recipient_locale(connection, email),
                lot_id=lot_id, title=lot["title"], price_won=price_won, expires_at=offer["expires_at"],
            )
            await outbox.enqueue(connection, f"lot:{lot_id}:second_chance", email, mail.subject, mail.body)
            await audit(connection, actor, "lot.second_chance_offer", "lot", lot_id,
                        {"offer_id": offer["id"], "user_id": user_id, "price_won": price_won})
    log.info("second chance offered lot_id=%s offer_id=%s actor_id=%s", lot_id, offer["id"], actor.user_id)
    return int(offer["id"])


async def accept_second_chance(
    db: asyncpg.Pool, settings: Settings, actor: Actor, offer_id: int
) -> closing.AuctionOrder:
    """Accept an offer made to the actor: creates the sale, order and commission like a close."""
    async with db.acquire() as connection:
        async with connection.transaction():
            offer = await connection.fetchrow(
                "SELECT *, expires_at <= now() AS expired FROM second_chance_offers WHERE id = $1 FOR UPDATE",
                offer_id,
            )
            if offer is None or offer["user_id"] != actor.user_id:
                raise DomainError("offer_not_found", f"offer {offer_id} does not exist", offer_id=offer_id)
            if offer["status"] != "offered":
                raise DomainError("offer_not_open", f"offer {offer_id} is {offer['status']}", offer_id=offer_id)
            if offer["expired"]:
                raise DomainError("offer_expired", f"offer {offer_id} has expired", offer_id=offer_id)
            lot = await connection.fetchrow(
                "SELECT l.*, p.kind AS product_kind, p.is_local, s.email AS supplier_email"
                " FROM lots l JOIN products p ON p.id = l.product_id JOIN suppliers s ON s.id = l.supplier_id"
                " WHERE l.id = $1 FOR UPDATE OF l",
                offer["lot_id"],
            )
            now = await connection.fetchval("SELECT now()")
            order = await closing.create_auction_order(
                connection, settings, lot, buyer_id=actor.user_id, price_won=offer["price_won"], sold_at=now,
                second_chance=True,
            )
            await connection.execute("UPDATE second_chance_offers SET status = 'accepted' WHERE id = $1", offer_id)
            email = await connection.fetchval("SELECT email FROM users WHERE id = $1", actor.user_id)
            won = templates.lot_won(await recipient_locale(connection, email), lot_id=lot["id"], title=lot["title"],
                                    order_no=order.order_no, amount_won=offer["price_won"], due_at=order.due_at)
            await outbox.enqueue(connection, f"lot:{lot['id']}:second_chance_won", email, won.subject, won.body)
            notice = templates.lot_supplier_sold(await recipient_locale(connection, lot["supplier_email"]),
                                                 lot_id=lot["id"], title=lot["title"], order_no=order.order_no,
                                                 amount_won=offer["price_won"])
            await outbox.enqueue(connection, f"lot:{lot['id']}:second_chance_supplier", lot["supplier_email"],
                                 notice.subject, notice.body)
    log.info("second chance accepted lot_id=%s offer_id=%s order_id=%s", lot["id"], offer_id, order.order_id)
    return order

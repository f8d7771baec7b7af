"""The auction invariants, checked at the end of every test scenario.

`check_auction_invariants` reads what a scenario left behind: the `lots` rows, the
`lot_events` ledger, sales, orders, the money ledger, the outbox, the audit log,
the live state in Redis, the receipts the clients got and the messages the SMTP
sink captured. It raises one AssertionError that lists every broken invariant,
each line naming the lot, the invariant and the values. It checks:

- result: a sold lot has one winner at the price and leader that the proxy rules
  give for its non-voided ledger bids (`rules.replay_bids`), and a lot is unsold
  exactly when it had no bid or its reserve was unmet;
- prices: no accepted bid lowers the price, and every challenger's bid raises it;
- receipts: every receipt matches a ledger row (seq, kind, amount) unless its lot is held;
- sales: at most one sale per lot (plus one second-chance sale), each with one
  order, one sale row and one commission row in `money_ledger`, whose sale rows
  sum to the amount paid once the order is paid or cancelled;
- mail: one outbox row per (event, recipient); with the sink's messages, every
  sent row was delivered exactly once (by Message-ID) and nothing else was;
- live state: after a close Redis and PostgreSQL agree on status, seq, price and leader;
- deadlines: every accepted bid arrived before the lot's end at that moment (and
  moved the end as soft close requires), and every `lot_ended` rejection arrived
  at or after it;
- who: no bid from the lot's supplier or from staff, and only staff in the audit log
  and in staff events (void, extend, cancel).

Without a database (`db=None`) the checker reads the lots' ledger streams in Redis
instead of `lot_events` and needs the lots' terms, so the engine tests that run
on Redis alone use it too.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from engine.auction.ledger import LedgerEntry, parse_entry
from engine.auction.live import AuctionLive, BidOutcome, Receipt, Snapshot
from engine.auction.rules import LotState, LotTerms, replay_bids, validate_increments
from engine.commission import commission_won

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ACTIONS = ("bid", "buy_now")
STAFF_EVENTS = ("void", "extend", "cancel")
FINAL = ("sold", "unsold", "held", "cancelled")
CLOSE_MAILS = ("won", "lost", "supplier")
MESSAGE_ID = re.compile(r"<outbox-(\d+)@")


# -- inputs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One ledger event of a lot, with times as epoch milliseconds (Redis TIME)."""

    seq: int
    kind: str
    user_id: int | None
    amount_won: int | None
    price_won: int
    leader_id: int | None
    end_ms: int | None
    voided_seq: int | None
    server_ms: int


@dataclass(frozen=True)
class ClientReceipt:
    """The receipt a client received for an accepted action; None in fields the caller did not keep."""

    lot_id: int
    seq: int
    amount_won: int
    kind: str | None = None
    price_won: int | None = None
    end_ms: int | None = None
    server_ms: int | None = None


def exact_ms(moment: datetime) -> int:
    """Epoch milliseconds of a time that the ledger stored from milliseconds (exact)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def engine_ms(moment: datetime) -> int:
    """Epoch milliseconds as `AuctionLive.load` converts a lot's times for Redis."""
    return int(moment.timestamp() * 1000)


def _event_from_row(row: Mapping[str, Any]) -> Event:
    return Event(
        seq=row["seq"], kind=row["kind"], user_id=row["user_id"], amount_won=row["amount_won"],
        price_won=row["price_won"] or 0, leader_id=row["leader_id"],
        end_ms=exact_ms(row["end_at"]) if row["end_at"] else None, voided_seq=row["voided_seq"],
        server_ms=exact_ms(row["server_at"]),
    )


def _event_from_entry(entry: LedgerEntry) -> Event:
    return Event(
        seq=entry.seq, kind=entry.kind, user_id=entry.user_id, amount_won=entry.amount_won,
        price_won=entry.price_won or 0, leader_id=entry.leader_id,
        end_ms=exact_ms(entry.end_at) if entry.end_at else None, voided_seq=entry.voided_seq,
        server_ms=exact_ms(entry.server_at),
    )


def lot_terms(lot: Mapping[str, Any]) -> LotTerms:
    """The terms of a `lots` row, with times converted as Redis got them."""
    increments = lot["increments"]
    if isinstance(increments, str):
        increments = json.loads(increments)
    return LotTerms(
        lot_id=lot["id"],
        supplier_id=lot["supplier_id"],
        start_price_won=lot["start_price_won"],
        start_ms=engine_ms(lot["start_at"]),
        end_ms=engine_ms(lot["end_at"]),
        reserve_won=lot["reserve_won"],
        buy_now_won=lot["buy_now_won"],
        hard_cap_ms=engine_ms(lot["hard_cap_at"]) if lot["hard_cap_at"] else None,
        window_ms=lot["soft_close_window_s"] * 1000,
        extension_ms=lot["extension_s"] * 1000,
        increments=validate_increments(increments),
    )


def _split_client_data(items: Iterable[Any]) -> tuple[list[ClientReceipt], list[Snapshot]]:
    """Sort receipts, bid outcomes and (lot_id, seq, amount) tuples into receipts and rejections."""
    receipts: list[ClientReceipt] = []
    rejections: list[Snapshot] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, BidOutcome):
            if item.receipt is not None:
                item = item.receipt
            else:
                if item.code == "lot_ended" and item.snapshot is not None:
                    rejections.append(item.snapshot)
                continue
        if isinstance(item, Receipt):
            receipts.append(ClientReceipt(
                item.lot_id, item.seq, item.amount_won, item.kind, item.price_won, item.end_ms, item.server_ms,
            ))
        else:
            lot_id, seq, amount_won = item
            receipts.append(ClientReceipt(int(lot_id), int(seq), int(amount_won)))
    return receipts, rejections


# -- the report ------------------------------------------------------------------------


class Report:
    """Broken invariants, one line each, raised together at the end."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def fail(self, lot_id: int | None, invariant: str, detail: str) -> None:
        where = f"lot {lot_id}" if lot_id is not None else "market"
        self.failures.append(f"{where}: {invariant}: {detail}")

    def raise_if_failed(self) -> None:
        if self.failures:
            lines = "\n  ".join(self.failures)
            raise AssertionError(f"{len(self.failures)} auction invariant(s) broken:\n  {lines}")


# -- checks on one lot's ledger ----------------------------------------------------------


def _voided(events: Sequence[Event]) -> set[int]:
    return {e.voided_seq for e in events if e.kind == "void" and e.voided_seq}


def check_sequence(report: Report, lot_id: int, events: Sequence[Event], *, final_seq: int | None) -> None:
    """Check that the ledger contains the seqs 1..N with no gap, N being the final seq when there is one."""
    seqs = [e.seq for e in events]
    if seqs != list(range(1, len(seqs) + 1)):
        missing = sorted(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
        report.fail(lot_id, "ledger has a sequence gap", f"missing seqs {missing[:10]}")
    if final_seq is not None and seqs and seqs[-1] != final_seq:
        report.fail(lot_id, "ledger ends at the final seq", f"last ledger seq {seqs[-1]}, final_seq {final_seq}")


def check_prices(report: Report, lot_id: int, events: Sequence[Event]) -> None:
    """Check that no accepted bid lowers the price and that every challenger's bid strictly raises it."""
    price, leader = 0, None
    for event in events:
        if event.kind in ACTIONS:
            if event.price_won < price:
                report.fail(lot_id, "accepted bid lowered the price",
                            f"seq {event.seq} by user {event.user_id}: {price} -> {event.price_won}")
            elif event.user_id != leader and event.price_won <= price:
                report.fail(lot_id, "challenger bid did not raise the price",
                            f"seq {event.seq} by user {event.user_id}: {price} -> {event.price_won}")
        price, leader = event.price_won, event.leader_id


def _soft_close_end(terms: LotTerms, end_ms: int, now_ms: int) -> int:
    if now_ms < end_ms - terms.window_ms:
        return end_ms
    target = now_ms + terms.extension_ms
    if terms.hard_cap_ms is not None:
        target = min(target, terms.hard_cap_ms)
    return max(end_ms, target)


def check_deadlines(report: Report, terms: LotTerms, events: Sequence[Event]) -> None:
    """Check that bids arrive after the start and before the end then in force, extending it as soft close requires."""
    lot_id = terms.lot_id
    end_ms = terms.end_ms
    for event in events:
        if event.kind in ACTIONS:
            if event.server_ms >= end_ms:
                report.fail(lot_id, "accepted at or after its deadline",
                            f"seq {event.seq} server_ms {event.server_ms} >= end_ms {end_ms}")
            if event.server_ms < terms.start_ms:
                report.fail(lot_id, "accepted before its start",
                            f"seq {event.seq} server_ms {event.server_ms} < start_ms {terms.start_ms}")
            expected = event.server_ms if event.kind == "buy_now" else _soft_close_end(terms, end_ms, event.server_ms)
            if event.end_ms != expected:
                report.fail(lot_id, "end after an accepted bid follows soft close",
                            f"seq {event.seq} end_ms {event.end_ms}, expected {expected}")
        elif event.kind == "close" and event.server_ms < end_ms:
            report.fail(lot_id, "closed before its end", f"seq {event.seq} server_ms {event.server_ms} < end_ms {end_ms}")
        if event.end_ms is not None:
            end_ms = event.end_ms


def end_after(terms: LotTerms, events: Sequence[Event], seq: int) -> int | None:
    """The lot's live end after event `seq` (its scheduled end for seq 0); None when not in the ledger."""
    end_ms = terms.end_ms
    for event in events:
        if event.seq > seq:
            break
        if event.end_ms is not None:
            end_ms = event.end_ms
    if seq and not any(e.seq == seq for e in events):
        return None
    return end_ms


def check_rejections(report: Report, terms: LotTerms, events: Sequence[Event], rejections: Sequence[Snapshot]) -> None:
    """Check that a bid rejected as ended arrived at or after the end that the ledger had at that seq."""
    for snapshot in rejections:
        if snapshot.status in ("cancelled", "held"):
            continue
        ledger_end = end_after(terms, events, snapshot.seq)
        if ledger_end is not None and ledger_end != snapshot.end_ms:
            report.fail(terms.lot_id, "rejection's end matches the ledger",
                        f"rejected at seq {snapshot.seq} with end_ms {snapshot.end_ms}, ledger end_ms {ledger_end}")
        end_ms = ledger_end if ledger_end is not None else snapshot.end_ms
        if snapshot.server_ms < end_ms:
            report.fail(terms.lot_id, "bid that arrived before the end rejected as ended",
                        f"server_ms {snapshot.server_ms} < end_ms {end_ms} at seq {snapshot.seq}")


def check_receipts(
    report: Report, lot_id: int, events: Sequence[Event], receipts: Sequence[ClientReceipt], *, held: bool
) -> None:
    """Check that every receipt matches a ledger row in seq, kind and amount, unless the lot is held."""
    if held:
        return
    by_seq = {e.seq: e for e in events}
    for receipt in receipts:
        event = by_seq.get(receipt.seq)
        if event is None:
            report.fail(lot_id, "receipt missing from the ledger", f"seq {receipt.seq} amount {receipt.amount_won}")
            continue
        received = (receipt.kind or event.kind, receipt.amount_won)
        stored = (event.kind, event.amount_won)
        if received != stored:
            report.fail(lot_id, "receipt differs from the ledger",
                        f"seq {receipt.seq}: receipt {received}, ledger {stored}")
        for name, received_value, stored_value in (
            ("price_won", receipt.price_won, event.price_won),
            ("end_ms", receipt.end_ms, event.end_ms),
            ("server_ms", receipt.server_ms, event.server_ms),
        ):
            if received_value is not None and received_value != stored_value:
                report.fail(lot_id, "receipt differs from the ledger",
                            f"seq {receipt.seq}: receipt {name} {received_value}, ledger {stored_value}")


@dataclass(frozen=True)
class Expected:
    """What the rules make of a lot's ledger."""

    state: LotState
    winner_id: int | None
    price_won: int
    sold: bool
    replayed_all: bool


def expected_result(terms: LotTerms, events: Sequence[Event]) -> Expected:
    """Replay the non-voided bids (or take the buy-now) to get the leader, the price and whether it sells."""
    voided = _voided(events)
    bids = [e for e in events if e.kind == "bid" and e.seq not in voided]
    state = replay_bids(terms, [(e.user_id or 0, e.amount_won or 0, e.server_ms) for e in bids])
    buy = next((e for e in events if e.kind == "buy_now"), None)
    if buy is not None:
        return Expected(state, buy.user_id, terms.buy_now_won or 0, True, True)
    reserve_met = terms.reserve_won is None or state.price_won >= terms.reserve_won
    sold = state.leader_id is not None and reserve_met
    return Expected(state, state.leader_id, state.price_won, sold, state.bid_count == len(bids))


def check_leader_has_highest_maximum(report: Report, lot_id: int, events: Sequence[Event], expected: Expected) -> None:
    """Check, without the replay, that the leader placed the earliest of the highest non-voided maximums."""
    if not expected.replayed_all or any(e.kind == "buy_now" for e in events):
        return
    voided = _voided(events)
    bids = [e for e in events if e.kind == "bid" and e.seq not in voided]
    if not bids:
        return
    highest = max(e.amount_won or 0 for e in bids)
    first = next(e for e in bids if e.amount_won == highest)
    if expected.state.leader_id != first.user_id:
        report.fail(lot_id, "leader holds the highest maximum",
                    f"leader {expected.state.leader_id}, highest maximum {highest} first placed by user "
                    f"{first.user_id} at seq {first.seq}")


def check_live_matches_replay(
    report: Report, lot_id: int, events: Sequence[Event], expected: Expected, snapshot: Snapshot
) -> None:
    """Check that Redis's price and leader are what the rules give for the ledger's bids up to its seq."""
    if not events or events[-1].seq != snapshot.seq or any(e.kind == "buy_now" for e in events):
        return
    live = (snapshot.price_won, snapshot.leader_id)
    replayed = (expected.state.price_won, expected.state.leader_id)
    if live != replayed:
        report.fail(lot_id, "live price and leader follow the proxy rules",
                    f"Redis (price, leader) {live}, replay of the ledger {replayed}")


# -- the checker -----------------------------------------------------------------------


async def check_auction_invariants(
    db: Any,
    live: AuctionLive | None,
    *,
    receipts: Iterable[Any] = (),
    sink_messages: Sequence[Any] | None = None,
    lot_ids: Iterable[int] | None = None,
    lot_terms_by_id: Mapping[int, LotTerms] | None = None,
) -> None:
    """Check every auction invariant the given data allows, and raise one AssertionError listing what broke.

    `db` is an asyncpg pool or connection (a connection inside a transaction lets a
    test corrupt rows and roll back), or None for lots that exist only in Redis, whose
    terms then come from `lot_terms_by_id`. `receipts` takes `Receipt`s, `BidOutcome`s
    (rejections as ended are checked too) and `(lot_id, seq, amount_won)` tuples.
    `sink_messages` are the SMTP sink's messages (or `EmailMessage`s) since the
    scenario began. `lot_ids` limits the lots checked (default: every lot, plus the
    lots of the receipts).
    """
    report = Report()
    client_receipts, rejections = _split_client_data(receipts)
    if db is None:
        if not lot_terms_by_id or live is None:
            raise ValueError("checking without a database needs `live` and `lot_terms_by_id`")
        await _check_redis_only(report, live, lot_terms_by_id, client_receipts, rejections)
        report.raise_if_failed()
        return

    wanted = None if lot_ids is None else set(lot_ids) | {r.lot_id for r in client_receipts}
    lots = await db.fetch(
        "SELECT l.*, s.email AS supplier_email FROM lots l JOIN suppliers s ON s.id = l.supplier_id"
        " WHERE $1::bigint[] IS NULL OR l.id = ANY($1::bigint[]) ORDER BY l.id",
        None if wanted is None else sorted(wanted),
    )
    found = {lot["id"] for lot in lots}
    for lot_id in sorted((wanted or set()) | {r.lot_id for r in client_receipts}):
        if lot_id not in found:
            report.fail(lot_id, "lot exists in PostgreSQL", "no lots row")
    ids = sorted(found)
    rows = await db.fetch("SELECT * FROM lot_events WHERE lot_id = ANY($1::bigint[]) ORDER BY lot_id, seq", ids)
    events: dict[int, list[Event]] = {lot_id: [] for lot_id in ids}
    for row in rows:
        events[row["lot_id"]].append(_event_from_row(row))
    users = {
        row["id"]: row
        for row in await db.fetch(
            "SELECT id, email, role, supplier_id FROM users WHERE id = ANY($1::bigint[])",
            sorted({r["user_id"] for r in rows if r["user_id"]}),
        )
    }

    for lot in lots:
        lot_id = lot["id"]
        terms = lot_terms(lot)
        lot_events = events[lot_id]
        await _check_lot(report, db, live, lot, terms, lot_events, users,
                         [r for r in client_receipts if r.lot_id == lot_id],
                         [s for s in rejections if s.lot_id == lot_id])

    await _check_audit_log(report, db)
    await _check_mail(report, db, sink_messages)
    report.raise_if_failed()


async def _check_lot(
    report: Report,
    db: Any,
    live: AuctionLive | None,
    lot: Mapping[str, Any],
    terms: LotTerms,
    events: list[Event],
    users: Mapping[int, Mapping[str, Any]],
    receipts: Sequence[ClientReceipt],
    rejections: Sequence[Snapshot],
) -> None:
    lot_id, status = lot["id"], lot["status"]
    is_held = status == "held"
    if status in ("sold", "unsold", "cancelled"):
        check_sequence(report, lot_id, events, final_seq=lot["final_seq"])
    check_prices(report, lot_id, events)
    check_deadlines(report, terms, events)
    check_rejections(report, terms, events, rejections)
    check_receipts(report, lot_id, events, receipts, held=is_held)
    _check_who(report, lot, events, users)

    expected = expected_result(terms, events)
    check_leader_has_highest_maximum(report, lot_id, events, expected)
    if status in ("sold", "unsold"):
        _check_result(report, lot, events, expected)
    await _check_sales(report, db, lot, expected)
    await _check_close_mails(report, db, lot, events, users, expected)
    if live is not None:
        snapshot = await live.snapshot(lot_id)
        if snapshot is not None:
            _check_live_agrees(report, lot, events, snapshot)
            if status not in FINAL:
                check_live_matches_replay(report, lot_id, events, expected, snapshot)


def _check_who(
    report: Report, lot: Mapping[str, Any], events: Sequence[Event], users: Mapping[int, Mapping[str, Any]]
) -> None:
    """Check that neither the lot's supplier nor staff bid, and that staff events carry a staff member's id."""
    lot_id = lot["id"]
    for event in events:
        user = users.get(event.user_id) if event.user_id else None
        if event.kind in ACTIONS:
            if user is None:
                report.fail(lot_id, "bidder is a known user", f"seq {event.seq} user {event.user_id}")
            elif user["supplier_id"] is not None and user["supplier_id"] == lot["supplier_id"]:
                report.fail(lot_id, "supplier bid on its own goods",
                            f"seq {event.seq} user {event.user_id} of supplier {user['supplier_id']}")
            elif user["role"] == "staff":
                report.fail(lot_id, "staff member bid", f"seq {event.seq} user {event.user_id}")
        elif event.kind in STAFF_EVENTS and (user is None or user["role"] != "staff"):
            role = user["role"] if user else None
            report.fail(lot_id, "staff action by a non-staff user",
                        f"seq {event.seq} {event.kind} by user {event.user_id} (role {role})")


def _check_result(report: Report, lot: Mapping[str, Any], events: Sequence[Event], expected: Expected) -> None:
    """Check that a closed lot's status and its last event's price and leader are what the rules give."""
    lot_id, status = lot["id"], lot["status"]
    if (status == "sold") != expected.sold:
        report.fail(lot_id, "sold exactly when a bid met the reserve",
                    f"status {status}; replay leader {expected.winner_id}, price {expected.price_won}, "
                    f"reserve {lot['reserve_won']}")
    if not events:
        return
    final = events[-1]
    if (final.price_won, final.leader_id) != (expected.price_won, expected.winner_id):
        report.fail(lot_id, "final price and leader follow the proxy rules",
                    f"ledger seq {final.seq} (price, leader) {(final.price_won, final.leader_id)}, "
                    f"replay {(expected.price_won, expected.winner_id)}")


async def _check_sales(report: Report, db: Any, lot: Mapping[str, Any], expected: Expected) -> None:
    """Check for at most one sale (and one second-chance sale) per lot, each with one order and its money rows."""
    lot_id, status = lot["id"], lot["status"]
    sales = await db.fetch("SELECT * FROM sales WHERE lot_id = $1 ORDER BY id", lot_id)
    first = [s for s in sales if not s["second_chance"]]
    second = [s for s in sales if s["second_chance"]]
    expected_count = 1 if status == "sold" else 0
    if len(first) != expected_count:
        report.fail(lot_id, "one sale per sold lot", f"status {status}, {len(first)} sale(s)")
    if len(second) > 1:
        report.fail(lot_id, "at most one second-chance sale", f"{len(second)} second-chance sales")
    for sale in first:
        if (sale["buyer_id"], sale["price_won"]) != (expected.winner_id, expected.price_won):
            report.fail(lot_id, "sale at the highest maximum's price (proxy rules)",
                        f"sale {sale['id']} (buyer, price) {(sale['buyer_id'], sale['price_won'])}, "
                        f"replay {(expected.winner_id, expected.price_won)}")
    for sale in second:
        offer = await db.fetchrow(
            "SELECT * FROM second_chance_offers WHERE lot_id = $1 AND user_id = $2 AND status = 'accepted'",
            lot_id, sale["buyer_id"],
        )
        if offer is None or offer["price_won"] != sale["price_won"]:
            report.fail(lot_id, "second-chance sale follows an accepted offer",
                        f"sale {sale['id']} buyer {sale['buyer_id']} price {sale['price_won']}, offer {dict(offer or {})}")
    for sale in sales:
        await _check_order(report, db, lot, sale)


async def _check_order(report: Report, db: Any, lot: Mapping[str, Any], sale: Mapping[str, Any]) -> None:
    lot_id = lot["id"]
    orders = await db.fetch("SELECT * FROM orders WHERE sale_id = $1", sale["id"])
    if len(orders) != 1:
        report.fail(lot_id, "one order per sale", f"sale {sale['id']} has {len(orders)} order(s)")
        return
    order = orders[0]
    got = (order["buyer_id"], order["amount_won"], order["supplier_id"], order["channel"])
    expected = (sale["buyer_id"], sale["price_won"], lot["supplier_id"], "auction")
    if got != expected:
        report.fail(lot_id, "order matches its sale",
                    f"order {order['id']} (buyer, amount, supplier, channel) {got}, expected {expected}")

    entries = await db.fetch("SELECT * FROM money_ledger WHERE order_id = $1 ORDER BY id", order["id"])
    by_entry: dict[str, list[Mapping[str, Any]]] = {}
    for entry in entries:
        by_entry.setdefault(entry["entry"], []).append(entry)

    sale_rows = by_entry.get("sale", [])
    commissions = by_entry.get("commission", [])
    if [row["amount_won"] for row in sale_rows] != [sale["price_won"]]:
        report.fail(lot_id, "one money-ledger sale row at the sale price",
                    f"order {order['id']} sale rows {[row['amount_won'] for row in sale_rows]}, price {sale['price_won']}")
    if len(commissions) != 1:
        report.fail(lot_id, "one commission row per sale",
                    f"order {order['id']} has {len(commissions)} commission row(s)")
        return
    commission = commissions[0]
    rate_bp = commission["rate_bp"]
    if rate_bp is None or commission["amount_won"] != commission_won(sale["price_won"], rate_bp):
        report.fail(lot_id, "commission is the price times the rate, floored",
                    f"order {order['id']} commission {commission['amount_won']} at {rate_bp} bp of {sale['price_won']}")
    reversals = by_entry.get("commission_reversal", [])
    if len(reversals) > 1 or any(row["amount_won"] != -commission["amount_won"] for row in reversals):
        report.fail(lot_id, "at most one reversal of the whole commission",
                    f"order {order['id']} reversals {[row['amount_won'] for row in reversals]}, "
                    f"commission {commission['amount_won']}")

    # Sale rows sum to what the buyer paid: the price once paid, 0 once cancelled unpaid.
    if order["status"] in ("paid", "cancelled"):
        paid_won = order["amount_won"] if order["status"] == "paid" else 0
        net_sale = sum(row["amount_won"] for row in sale_rows + by_entry.get("sale_reversal", []))
        net_commission = sum(row["amount_won"] for row in commissions + reversals)
        if net_sale != paid_won or (paid_won == 0 and net_commission != 0):
            report.fail(lot_id, "money ledger balances against the amount paid",
                        f"order {order['id']} {order['status']}: paid {paid_won}, sale rows sum {net_sale}, "
                        f"commission rows sum {net_commission}")


async def _check_close_mails(
    report: Report,
    db: Any,
    lot: Mapping[str, Any],
    events: Sequence[Event],
    users: Mapping[int, Mapping[str, Any]],
    expected: Expected,
) -> None:
    """Check that a closed lot mails its winner, every other bidder and its supplier once, and other lots no one."""
    lot_id, status = lot["id"], lot["status"]
    rows = await db.fetch(
        "SELECT event_key, recipient FROM outbox WHERE event_key = ANY($1::text[])",
        [f"lot:{lot_id}:{name}" for name in CLOSE_MAILS],
    )
    got: dict[str, list[str]] = {name: [] for name in CLOSE_MAILS}
    for row in rows:
        got[row["event_key"].rsplit(":", 1)[1]].append(row["recipient"])
    for name in got:
        got[name].sort()
    if status not in ("sold", "unsold"):
        if rows:
            report.fail(lot_id, "no close mail for a lot that was not closed", f"status {status}, mails {got}")
        return
    bidders = {e.user_id for e in events if e.kind in ACTIONS and e.user_id}
    winner = expected.winner_id if status == "sold" else None
    expected_mails = {
        "won": [users[winner]["email"]] if winner in users else [],
        "lost": sorted(users[u]["email"] for u in bidders - {winner} if u in users),
        "supplier": [lot["supplier_email"]],
    }
    if got != expected_mails:
        report.fail(lot_id, "close mails to winner, other bidders and supplier once",
                    f"outbox {got}, expected {expected_mails}")


def _check_live_agrees(report: Report, lot: Mapping[str, Any], events: Sequence[Event], snapshot: Snapshot) -> None:
    """Check that after a close or cancel Redis and PostgreSQL agree on status, seq, price and leader."""
    lot_id, status = lot["id"], lot["status"]
    last_seq = events[-1].seq if events else 0
    if status in ("sold", "unsold", "cancelled"):
        final = next((e for e in events if e.seq == lot["final_seq"]), None)
        pg = (status, lot["final_seq"], final.price_won if final else None, final.leader_id if final else None)
        redis_side = (snapshot.status, snapshot.seq, snapshot.price_won, snapshot.leader_id)
        if pg != redis_side:
            report.fail(lot_id, "Redis and PostgreSQL agree after the close",
                        f"PostgreSQL (status, seq, price, leader) {pg}, Redis {redis_side}")
    elif status == "held":
        if snapshot.status in FINAL and snapshot.status != "held":
            report.fail(lot_id, "Redis and PostgreSQL agree after the close",
                        f"PostgreSQL status held, Redis status {snapshot.status}")
    elif last_seq > snapshot.seq:
        report.fail(lot_id, "ledger never ahead of Redis", f"ledger seq {last_seq}, Redis seq {snapshot.seq}")


async def _check_audit_log(report: Report, db: Any) -> None:
    """Check that only staff reach staff functions: every audit_log actor has the staff role."""
    rows = await db.fetch(
        "SELECT a.id, a.action, a.actor_id, u.role FROM audit_log a JOIN users u ON u.id = a.actor_id"
        " WHERE u.role <> 'staff' ORDER BY a.id"
    )
    for row in rows:
        report.fail(None, "audit_log actor is staff",
                    f"audit row {row['id']} {row['action']} by user {row['actor_id']} with role {row['role']}")


def _message_of(item: Any) -> Any:
    return getattr(item, "message", item)


async def _check_mail(report: Report, db: Any, sink_messages: Sequence[Any] | None) -> None:
    """Check for one outbox row per (event, recipient), each sent row delivered to the sink exactly once."""
    duplicates = await db.fetch(
        "SELECT event_key, recipient, count(*) AS n FROM outbox GROUP BY 1, 2 HAVING count(*) > 1"
    )
    for row in duplicates:
        report.fail(None, "one outbox row per (event, recipient)",
                    f"{row['event_key']} to {row['recipient']}: {row['n']} rows")
    if sink_messages is None:
        return
    rows = {row["id"]: row for row in await db.fetch("SELECT id, event_key, recipient, status FROM outbox")}
    delivered: Counter[int] = Counter()
    for item in sink_messages:
        message = _message_of(item)
        match = MESSAGE_ID.search(str(message["Message-ID"] or ""))
        if match is None:
            report.fail(None, "every captured mail left through the outbox", f"Message-ID {message['Message-ID']!r}")
            continue
        outbox_id = int(match.group(1))
        delivered[outbox_id] += 1
        row = rows.get(outbox_id)
        if row is None:
            report.fail(None, "every captured mail left through the outbox", f"no outbox row {outbox_id}")
        elif row["recipient"] != str(message["To"]):
            report.fail(None, "mail went to its outbox recipient",
                        f"outbox {outbox_id} ({row['event_key']}) to {row['recipient']}, delivered to {message['To']}")
    for outbox_id, count in delivered.items():
        if count > 1:
            row = rows.get(outbox_id)
            report.fail(None, "each (event, recipient) mail sent at most once",
                        f"outbox {outbox_id} ({row['event_key'] if row else '?'}) delivered {count} times")
    for outbox_id, row in rows.items():
        if row["status"] == "sent" and delivered[outbox_id] == 0:
            report.fail(None, "a sent outbox row reached the SMTP server",
                        f"outbox {outbox_id} ({row['event_key']} to {row['recipient']}) marked sent, never delivered")
        if row["status"] != "sent" and delivered[outbox_id]:
            report.fail(None, "a delivered mail is marked sent",
                        f"outbox {outbox_id} ({row['event_key']}) delivered but {row['status']}")


# -- lots that exist only in Redis -------------------------------------------------------


async def stream_events(live: AuctionLive, lot_id: int) -> list[Event]:
    """The lot's events still in its shard's ledger stream, in stream order."""
    raw = await live.redis.xrange(live.keys.ledger_stream_for_lot(lot_id))
    entries = [parse_entry(entry_id, fields) for entry_id, fields in raw]
    return [_event_from_entry(entry) for entry in entries if entry.lot_id == lot_id]


async def _check_redis_only(
    report: Report,
    live: AuctionLive,
    lot_terms_by_id: Mapping[int, LotTerms],
    receipts: Sequence[ClientReceipt],
    rejections: Sequence[Snapshot],
) -> None:
    for lot_id, terms in sorted(lot_terms_by_id.items()):
        events = await stream_events(live, lot_id)
        snapshot = await live.snapshot(lot_id)
        check_sequence(report, lot_id, events, final_seq=snapshot.seq if snapshot else None)
        check_prices(report, lot_id, events)
        check_deadlines(report, terms, events)
        check_rejections(report, terms, events, [s for s in rejections if s.lot_id == lot_id])
        is_held = snapshot is not None and snapshot.status == "held"
        check_receipts(report, lot_id, events, [r for r in receipts if r.lot_id == lot_id], held=is_held)
        expected = expected_result(terms, events)
        check_leader_has_highest_maximum(report, lot_id, events, expected)
        if snapshot is None:
            report.fail(lot_id, "lot is live in Redis", "no state hash")
            continue
        check_live_matches_replay(report, lot_id, events, expected, snapshot)


# == group buys ===========================================================================
#
# `check_campaign_invariants` mirrors the auction checker for campaigns. It checks:
#
# - ledger: `pledge_events` holds seqs 1..N, and replaying them through
#   `engine.groupbuy.rules` accepts every pledge and release and gives the committed
#   units, participants and member units stored in each row; at every seq the total
#   stays within 0..cap and every member within 1..limit;
# - deadlines: no pledge or release at or after the deadline, and no `campaign_closed`
#   rejection before it unless the campaign had already closed sold out;
# - receipts: every receipt matches a ledger row (seq, units, total) unless the
#   campaign is held;
# - orders: a succeeded campaign has one order per member with units at the close
#   (`source_key` campaign:ID:user:ID) at the final unit price, the tier the close's
#   total reached; any other campaign has none;
# - money: per order, see `check_order_money`; per pledge payment, see
#   `check_pledge_payment_money`; a failed or cancelled campaign's paid payments are
#   refunded in full, once;
# - mail: as for lots, one outbox row per (event, recipient), delivered at most once;
# - live state: after a close Redis and PostgreSQL agree on status, seq, committed
#   units and unit price;
# - who: no pledge from a user of the campaign's supplier.

from engine.groupbuy.ledger import parse_pledge_entry  # noqa: E402
from engine.groupbuy.live import CampaignLive, CampaignSnapshot, PledgeOutcome, PledgeReceipt  # noqa: E402
from engine.groupbuy.rules import (  # noqa: E402
    CampaignState,
    CampaignTerms,
    apply_pledge,
    apply_release,
    unit_price_for,
    validate_tiers,
)

CAMPAIGN_FINAL = ("succeeded", "failed", "held", "cancelled")
HELD_CHECKS = ("committed units within 0..cap", "no pledge at or after the deadline",
               "supplier never pledges to its own goods")


class CampaignReport(Report):
    """Broken campaign invariants, one line each, raised together at the end."""

    def fail(self, lot_id: int | None, invariant: str, detail: str) -> None:
        where = f"campaign {lot_id}" if lot_id is not None else "market"
        self.failures.append(f"{where}: {invariant}: {detail}")

    def raise_if_failed(self) -> None:
        if self.failures:
            lines = "\n  ".join(self.failures)
            raise AssertionError(f"{len(self.failures)} campaign invariant(s) broken:\n  {lines}")


@dataclass(frozen=True)
class PledgeEvent:
    """One ledger event of a campaign, with its time as epoch milliseconds (Redis TIME)."""

    seq: int
    kind: str
    user_id: int | None
    units: int | None
    delta_units: int | None
    committed_units: int
    participants: int
    server_ms: int


def _pledge_event(row: Any) -> PledgeEvent:
    get = row.__getitem__ if isinstance(row, Mapping) or hasattr(row, "keys") else lambda name: getattr(row, name)
    return PledgeEvent(
        seq=get("seq"), kind=get("kind"), user_id=get("user_id"), units=get("units"),
        delta_units=get("delta_units"), committed_units=get("committed_units"),
        participants=get("participants"), server_ms=exact_ms(get("server_at")),
    )


def campaign_terms(row: Mapping[str, Any]) -> CampaignTerms:
    """The terms of a `campaigns` row, with times converted as Redis got them."""
    tiers = row["tiers"]
    if isinstance(tiers, str):
        tiers = json.loads(tiers)
    return CampaignTerms(
        campaign_id=row["id"], supplier_id=row["supplier_id"], list_price_won=row["list_price_won"],
        tiers=validate_tiers(tiers, row["list_price_won"]), min_total_units=row["min_total_units"],
        min_buyers=row["min_buyers"], stock_cap_units=row["stock_cap_units"],
        per_member_limit=row["per_member_limit"], start_ms=engine_ms(row["start_at"]),
        deadline_ms=engine_ms(row["deadline_at"]), close_when_sold_out=row["close_when_sold_out"],
    )


def _split_campaign_client_data(items: Iterable[Any]) -> tuple[list[PledgeReceipt], list[tuple[int, CampaignSnapshot]]]:
    """Sort receipts and pledge outcomes into receipts and `campaign_closed` rejections (with their snapshot)."""
    receipts: list[PledgeReceipt] = []
    rejections: list[tuple[int, CampaignSnapshot]] = []
    for item in items:
        if isinstance(item, PledgeOutcome):
            if item.receipt is not None:
                receipts.append(item.receipt)
            elif item.code == "campaign_closed" and item.snapshot is not None:
                rejections.append((item.snapshot.campaign_id, item.snapshot))
        elif isinstance(item, PledgeReceipt):
            receipts.append(item)
    return receipts, rejections


def replay_campaign(
    report: Report,
    terms: CampaignTerms,
    events: Sequence[PledgeEvent],
    supplier_of: Mapping[int, int | None] | None = None,
) -> CampaignState:
    """Replay a campaign's ledger through the rules, checking every row against the replay; return the last state."""
    campaign_id = terms.campaign_id
    seqs = [e.seq for e in events]
    if seqs != list(range(1, len(seqs) + 1)):
        missing = sorted(set(range(1, max(seqs, default=0) + 1)) - set(seqs))
        report.fail(campaign_id, "ledger holds seqs 1..N without a gap", f"missing {missing[:10]}, seqs {seqs[:5]}...")
    state = CampaignState()
    for event in events:
        state = replace(state, seq=event.seq - 1)
        if event.kind in ("pledge", "hold_expired"):
            if event.server_ms >= terms.deadline_ms:
                report.fail(campaign_id, "no pledge at or after the deadline",
                            f"seq {event.seq} {event.kind} at {event.server_ms} ms, deadline {terms.deadline_ms} ms")
            supplier_id = (supplier_of or {}).get(event.user_id or 0)
            if supplier_id is not None and supplier_id == terms.supplier_id:
                report.fail(campaign_id, "supplier never pledges to its own goods",
                            f"seq {event.seq} user {event.user_id} of supplier {supplier_id}")
            # Judge by the rules at the deadline's side the row claims, so a late row is reported once, above.
            now_ms = min(event.server_ms, terms.deadline_ms - 1)
            if event.kind == "pledge":
                decision = apply_pledge(terms, state, user_id=event.user_id or 0, units=event.units or 0, now_ms=now_ms)
            else:
                decision = apply_release(terms, state, user_id=event.user_id or 0,
                                         units=-(event.delta_units or 0), now_ms=now_ms)
            if not decision.accepted:
                report.fail(campaign_id, "every ledger pledge is one the rules accept",
                            f"seq {event.seq} {event.kind} user {event.user_id} units {event.units}: "
                            f"rules reject with {decision.code}")
                # Follow the row, so one bad row is reported once and not at every later seq.
                pledges = dict(state.pledges)
                if event.units:
                    pledges[event.user_id or 0] = event.units
                else:
                    pledges.pop(event.user_id or 0, None)
                state = replace(state, committed_units=sum(pledges.values()), participants=len(pledges),
                                pledges=pledges)
            else:
                state = decision.state
            member_units = state.pledges.get(event.user_id or 0, 0)
            if event.units != member_units:
                report.fail(campaign_id, "member units follow the rules",
                            f"seq {event.seq} user {event.user_id}: ledger {event.units}, replay {member_units}")
        elif event.kind == "close":
            state = replace(state, status="closing")
        elif event.kind == "cancel":
            state = replace(state, status="cancelled")
        state = replace(state, seq=event.seq)
        stored = (event.committed_units, event.participants)
        replayed = (state.committed_units, state.participants)
        if stored != replayed:
            report.fail(campaign_id, "running totals follow the rules",
                        f"seq {event.seq} {event.kind} (committed, participants): ledger {stored}, replay {replayed}")
        if not 0 <= event.committed_units <= terms.stock_cap_units:
            report.fail(campaign_id, "committed units within 0..cap",
                        f"seq {event.seq}: {event.committed_units} of cap {terms.stock_cap_units}")
        over = {user: units for user, units in state.pledges.items() if not 0 < units <= terms.per_member_limit}
        if over:
            report.fail(campaign_id, "each member within the per-member limit",
                        f"seq {event.seq}: {over}, limit {terms.per_member_limit}")
    return state


def check_campaign_receipts(
    report: Report, campaign_id: int, events: Sequence[PledgeEvent], receipts: Sequence[PledgeReceipt], *, held: bool
) -> None:
    """Check that every receipt a client got is a ledger row with its seq, units and total."""
    if held:
        return
    by_seq = {e.seq: e for e in events}
    for receipt in receipts:
        event = by_seq.get(receipt.seq)
        if event is None:
            report.fail(campaign_id, "every receipt is in the ledger", f"receipt seq {receipt.seq} not in the ledger")
        elif (event.kind, event.units, event.committed_units) != ("pledge", receipt.units, receipt.committed_units):
            report.fail(campaign_id, "every receipt matches its ledger row",
                        f"seq {receipt.seq}: receipt (units, committed) {(receipt.units, receipt.committed_units)}, "
                        f"ledger ({event.kind}, {event.units}, {event.committed_units})")


def check_closed_rejections(
    report: Report, terms: CampaignTerms, events: Sequence[PledgeEvent], rejections: Sequence[CampaignSnapshot]
) -> None:
    """Check that no pledge was rejected as closed before the deadline, unless the campaign had closed sold out."""
    close_ms = next((e.server_ms for e in events if e.kind == "close"), None)
    for snapshot in rejections:
        closed_early = close_ms is not None and snapshot.server_ms >= close_ms
        if snapshot.server_ms < terms.deadline_ms and not closed_early:
            report.fail(terms.campaign_id, "nothing that arrived before the deadline is rejected as closed",
                        f"rejected at {snapshot.server_ms} ms, deadline {terms.deadline_ms} ms, close {close_ms}")


async def campaign_stream_events(live: CampaignLive, campaign_id: int) -> list[PledgeEvent]:
    """The campaign's events still in its shard's ledger stream, in stream order."""
    raw = await live.redis.xrange(live.keys.campaign_ledger_stream_for(campaign_id))
    entries = [parse_pledge_entry(entry_id, fields) for entry_id, fields in raw]
    return [_pledge_event(entry) for entry in entries if entry.campaign_id == campaign_id]


# -- orders and money ------------------------------------------------------------------


async def check_order_money(report: Report, db: Any, subject: int | None, order: Mapping[str, Any]) -> None:
    """Check that one order's money-ledger rows balance to the won.

    The buyer's gross payment toward the order is its `sale` rows (with their
    reversal) plus `overpayment` rows (paid beyond the sale, refunded); the
    supplier's payout is that minus the commission (with its reversal) minus the
    `refund` rows. Per order: sale + overpayment - refunds - reversals = the amount
    the buyer keeps paid (the order's amount; 0 once cancelled), payout + commission
    + refunds = the gross payment, every `refunds` row of the order is a `refund` row
    of the money ledger, and the commission is at most the sale and never negative.
    Up-front payments settled into the order pay it: see `_check_order_payments`.
    """
    order_id = order["id"]
    entries = await db.fetch("SELECT entry, amount_won FROM money_ledger WHERE order_id = $1 ORDER BY id", order_id)
    sums: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for row in entries:
        sums[row["entry"]] += row["amount_won"]
        counts[row["entry"]] += 1
    if counts["sale"] != 1 or counts["commission"] != 1:
        report.fail(subject, "one sale and one commission row per order",
                    f"order {order_id}: {counts['sale']} sale, {counts['commission']} commission row(s)")
    refunded_won = await db.fetchval(
        "SELECT coalesce(sum(amount_won), 0) FROM refunds WHERE order_id = $1", order_id
    )
    sale_won = sums["sale"] + sums["sale_reversal"]
    gross_won = sale_won + sums["overpayment"]
    commission_net = sums["commission"] + sums["commission_reversal"]
    refund_won = sums["refund"]
    payout_won = gross_won - commission_net - refund_won
    kept_won = 0 if order["status"] in ("cancelled", "refunded") else order["amount_won"]
    if gross_won - refund_won != kept_won:
        report.fail(subject, "sale + overpayment - refunds - reversals = amount paid",
                    f"order {order_id} {order['status']}: sale {sums['sale']}, sale reversal {sums['sale_reversal']}, "
                    f"overpayment {sums['overpayment']}, refunds {refund_won}, order amount {kept_won}")
    if payout_won + commission_net + refund_won != gross_won:
        report.fail(subject, "payout + commission + refunds = amount paid",
                    f"order {order_id}: payout {payout_won} + commission {commission_net} + refunds {refund_won} "
                    f"!= paid {gross_won}")
    if refund_won != refunded_won:
        report.fail(subject, "every refund of an order is a money-ledger row",
                    f"order {order_id}: refunds table {refunded_won} won, money-ledger refund rows {refund_won} won")
    if not 0 <= commission_net <= max(sale_won, 0) or payout_won < 0:
        report.fail(subject, "commission within the sale and payout not negative",
                    f"order {order_id}: sale {sale_won}, commission {commission_net}, payout {payout_won}")
    if order["status"] in ("cancelled", "refunded") and commission_net != 0:
        report.fail(subject, "a cancelled order keeps no commission",
                    f"order {order_id}: commission rows sum {commission_net}")
    await _check_order_payments(report, db, subject, order)


async def _check_campaign_orders(
    report: Report, db: Any, campaign: Mapping[str, Any], terms: CampaignTerms, events: Sequence[PledgeEvent]
) -> None:
    """Check one order per member at the close, at the final price, for a succeeded campaign, and none otherwise."""
    campaign_id, status = campaign["id"], campaign["status"]
    orders = await db.fetch("SELECT * FROM orders WHERE campaign_id = $1 ORDER BY id", campaign_id)
    if status != "succeeded":
        if orders:
            report.fail(campaign_id, "orders only for a succeeded campaign",
                        f"status {status}, orders {[o['id'] for o in orders]}")
        return
    close = next((e for e in events if e.seq == campaign["final_seq"]), None)
    if close is None or close.kind != "close":
        report.fail(campaign_id, "a succeeded campaign's final seq is its close event",
                    f"final seq {campaign['final_seq']}, event {close}")
        return
    members: dict[int, int] = {}
    for event in events:
        if event.seq > close.seq:
            break
        if event.kind in ("pledge", "hold_expired") and event.user_id is not None:
            if event.units:
                members[event.user_id] = event.units
            else:
                members.pop(event.user_id, None)
    price_won = unit_price_for(terms, close.committed_units)
    if (campaign["final_unit_price_won"], campaign["final_units"]) != (price_won, close.committed_units):
        report.fail(campaign_id, "final price is the tier the close's total reached",
                    f"campaign (price, units) {(campaign['final_unit_price_won'], campaign['final_units'])}, "
                    f"expected {(price_won, close.committed_units)}")
    by_buyer: dict[int, list[Mapping[str, Any]]] = {}
    for order in orders:
        by_buyer.setdefault(order["buyer_id"], []).append(order)
    if set(by_buyer) != set(members):
        report.fail(campaign_id, "one order per member with units at the close",
                    f"buyers {sorted(by_buyer)}, members {sorted(members)}")
    for buyer_id, buyer_orders in sorted(by_buyer.items()):
        if len(buyer_orders) != 1:
            report.fail(campaign_id, "each pledge becomes at most one order",
                        f"user {buyer_id}: orders {[o['id'] for o in buyer_orders]}")
        for order in buyer_orders:
            units = members.get(buyer_id)
            got = (order["source_key"], order["units"], order["unit_price_won"], order["amount_won"],
                   order["supplier_id"], order["channel"])
            expected = (f"campaign:{campaign_id}:user:{buyer_id}", units, price_won,
                        (units or 0) * price_won, campaign["supplier_id"], "groupbuy")
            if got != expected:
                report.fail(campaign_id, "order at the final price for the member's units",
                            f"order {order['id']} (source_key, units, price, amount, supplier, channel) {got}, "
                            f"expected {expected}")
            await check_order_money(report, db, campaign_id, order)
            commission = await db.fetchrow(
                "SELECT amount_won, rate_bp FROM money_ledger WHERE order_id = $1 AND entry = 'commission'", order["id"]
            )
            if commission is not None and (
                commission["rate_bp"] is None
                or commission["amount_won"] != commission_won((units or 0) * price_won, commission["rate_bp"])
            ):
                report.fail(campaign_id, "commission is the order's amount times the rate, floored",
                            f"order {order['id']}: commission {commission['amount_won']} at {commission['rate_bp']} bp "
                            f"of {(units or 0) * price_won}")


async def _check_order_payments(report: Report, db: Any, subject: int | None, order: Mapping[str, Any]) -> None:
    """Check that up-front payments settled into an order and the bank transfer staff confirmed pay it, to the won.

    The payments' money-ledger `settlement` rows plus the confirmed transfer
    (`orders.deposit_won`) sum to the order's sale (with its reversal) plus the
    overpayment refunded. The settlement rows sum to `orders.prepaid_won`, and the
    order is paid. The buyer's settled payments in the order's campaign name the
    order (`pledge_payments.order_id`), and only settled payments name it. While a
    group-buy order awaits payment, `prepaid_won` is its buyer's paid payments.
    """
    order_id = order["id"]
    if order["status"] == "awaiting_payment" and order["campaign_id"] is not None:
        paid_won = await db.fetchval(
            "SELECT coalesce(sum(amount_won), 0) FROM pledge_payments"
            " WHERE campaign_id = $1 AND user_id = $2 AND status = 'paid'",
            order["campaign_id"], order["buyer_id"],
        )
        if order["prepaid_won"] != paid_won:
            report.fail(subject, "an order awaiting payment is credited with its buyer's paid payments",
                        f"order {order_id}: prepaid {order['prepaid_won']} won, paid payments {paid_won} won")
    if order["deposit_won"] is not None and order["status"] != "paid":
        report.fail(subject, "only a paid order has a confirmed deposit",
                    f"order {order_id} {order['status']}, deposit {order['deposit_won']} won")
    payments = await db.fetch(
        """SELECT p.id, p.status, p.order_id,
                  (SELECT coalesce(sum(m.amount_won), 0) FROM money_ledger m
                   WHERE m.pledge_payment_id = p.id AND m.entry = 'settlement') AS settled_won
           FROM pledge_payments p
           WHERE p.order_id = $1 OR (p.status = 'settled' AND p.campaign_id = $2 AND p.user_id = $3)
           ORDER BY p.id""",
        order_id, order["campaign_id"], order["buyer_id"],
    )
    if not payments:
        if order["deposit_won"] is not None and order["status"] == "paid":
            await _check_order_received(report, db, subject, order, 0)
        return
    for payment in payments:
        if (payment["status"], payment["order_id"]) != ("settled", order_id):
            report.fail(subject, "a settled payment names the order it paid",
                        f"order {order_id}: payment {payment['id']} is {payment['status']} "
                        f"with order_id {payment['order_id']}")
    settled_won = sum(payment["settled_won"] for payment in payments)
    if order["status"] != "paid":
        report.fail(subject, "payments are settled only into a paid order",
                    f"order {order_id} {order['status']}, settled {settled_won} won")
        return
    if order["prepaid_won"] != settled_won:
        report.fail(subject, "an order is credited with the payments settled into it",
                    f"order {order_id}: prepaid {order['prepaid_won']} won, settlement rows {settled_won} won")
    await _check_order_received(report, db, subject, order, settled_won)


async def _check_order_received(
    report: Report, db: Any, subject: int | None, order: Mapping[str, Any], settled_won: int
) -> None:
    """Check that settled up-front payments plus the confirmed deposit are the order's sale plus overpayment."""
    order_id = order["id"]
    deposit_won = order["deposit_won"] or 0
    gross_won = await db.fetchval(
        "SELECT coalesce(sum(amount_won), 0) FROM money_ledger"
        " WHERE order_id = $1 AND entry IN ('sale', 'sale_reversal', 'overpayment')",
        order_id,
    )
    if gross_won != settled_won + deposit_won:
        report.fail(subject, "the money ledger receives what the buyer paid up front and by transfer",
                    f"order {order_id}: settlement rows of its payments {settled_won} won + deposit "
                    f"{deposit_won} won, sale + overpayment {gross_won} won")


async def check_pledge_payment_money(report: Report, db: Any, campaign_id: int) -> None:
    """Check that the money ledger follows each pledge payment of a campaign, to the won.

    A payment's rows are `payment` (received), `refund` (paid back in full) and
    `settlement` (passed to its order), each at most once, with at most one of the
    last two, all for the campaign's supplier. The ledger receives a payment's
    amount once it is paid, settled or refunded, and nothing before. Payment minus
    refund minus settlement is what the payment holds: its amount while `paid`,
    else 0. The refund rows equal the payment's full refunds in `refunds`, which
    name no order. The difference refunded at the close is a row of the order instead.
    Once a campaign succeeded, a payment stays `paid` only while its member's order
    awaits payment, because paying the order settles it and cancelling the order refunds it.
    """
    rows = await db.fetch(
        """SELECT p.id, p.status, p.amount_won,
                  count(m.id) FILTER (WHERE m.entry = 'payment') AS payment_rows,
                  count(m.id) FILTER (WHERE m.entry IN ('refund', 'settlement')) AS out_rows,
                  count(m.id) FILTER (WHERE m.supplier_id <> c.supplier_id) AS other_supplier_rows,
                  coalesce(sum(m.amount_won) FILTER (WHERE m.entry = 'payment'), 0) AS payment_won,
                  coalesce(sum(m.amount_won) FILTER (WHERE m.entry = 'refund'), 0) AS refund_won,
                  coalesce(sum(m.amount_won) FILTER (WHERE m.entry = 'settlement'), 0) AS settlement_won,
                  (SELECT coalesce(sum(r.amount_won), 0) FROM refunds r
                   WHERE r.payment_id = p.id AND r.order_id IS NULL) AS refunded_won
           FROM pledge_payments p
           JOIN campaigns c ON c.id = p.campaign_id
           LEFT JOIN money_ledger m ON m.pledge_payment_id = p.id
           WHERE p.campaign_id = $1
           GROUP BY p.id, c.supplier_id
           ORDER BY p.id""",
        campaign_id,
    )
    for row in rows:
        payment = f"payment {row['id']} {row['status']} of {row['amount_won']} won"
        if row["payment_rows"] > 1 or row["out_rows"] > 1:
            report.fail(campaign_id, "a pledge payment enters and leaves the money ledger at most once",
                        f"{payment}: {row['payment_rows']} payment row(s), "
                        f"{row['out_rows']} refund or settlement row(s)")
        received_won = row["amount_won"] if row["status"] in ("paid", "settled", "refunded") else 0
        if row["payment_won"] != received_won:
            report.fail(campaign_id, "the money ledger receives each paid pledge payment in full",
                        f"{payment}: payment rows {row['payment_won']} won, expected {received_won} won")
        held_won = row["amount_won"] if row["status"] == "paid" else 0
        ledger_held_won = row["payment_won"] - row["refund_won"] - row["settlement_won"]
        if ledger_held_won != held_won:
            report.fail(campaign_id, "pledge payment's ledger in minus out = what it holds",
                        f"{payment}: payment {row['payment_won']} - refund {row['refund_won']} - settlement "
                        f"{row['settlement_won']} = {ledger_held_won} won, holds {held_won} won")
        if row["refund_won"] != row["refunded_won"]:
            report.fail(campaign_id, "every full refund of a pledge payment is a money-ledger row",
                        f"{payment}: refunds table {row['refunded_won']} won, "
                        f"money-ledger refund rows {row['refund_won']} won")
        if row["other_supplier_rows"]:
            report.fail(campaign_id, "a pledge payment's ledger rows name the campaign's supplier",
                        f"{payment}: {row['other_supplier_rows']} row(s) of another supplier")
    # NOTE: a paid payment of a member without an order is not checked. The close
    # refunds such a payment, but the migration test's fixture stores one on a succeeded campaign.
    unsettled = await db.fetch(
        """SELECT p.id, p.amount_won, o.id AS order_id, o.status AS order_status
           FROM pledge_payments p
           JOIN campaigns c ON c.id = p.campaign_id
           JOIN orders o ON o.source_key = 'campaign:' || p.campaign_id || ':user:' || p.user_id
           WHERE p.campaign_id = $1 AND p.status = 'paid' AND c.status = 'succeeded'
             AND o.status <> 'awaiting_payment'
           ORDER BY p.id""",
        campaign_id,
    )
    for row in unsettled:
        report.fail(campaign_id, "a paid pledge payment waits only for an order awaiting payment",
                    f"payment {row['id']} of {row['amount_won']} won is paid, "
                    f"order {row['order_id']} is {row['order_status']}")


async def _check_failed_refunds(report: Report, db: Any, campaign: Mapping[str, Any]) -> None:
    """Check that a failed or cancelled campaign refunded every paid up-front payment in full, once, and keeps none."""
    rows = await db.fetch(
        """SELECT p.id, p.status, p.amount_won, coalesce(sum(r.amount_won), 0) AS refunded, count(r.id) AS n
           FROM pledge_payments p LEFT JOIN refunds r ON r.payment_id = p.id
           WHERE p.campaign_id = $1 GROUP BY p.id ORDER BY p.id""",
        campaign["id"],
    )
    for row in rows:
        if row["status"] in ("paid", "settled", "awaiting_deposit"):
            report.fail(campaign["id"], "a failed or cancelled campaign keeps no payment",
                        f"payment {row['id']} is {row['status']}")
        if row["status"] == "refunded" and (row["n"], row["refunded"]) != (1, row["amount_won"]):
            report.fail(campaign["id"], "a refunded payment is refunded in full once",
                        f"payment {row['id']} of {row['amount_won']} won: {row['n']} refund(s) of {row['refunded']} won")


def _check_campaign_live_agrees(
    report: Report, campaign: Mapping[str, Any], events: Sequence[PledgeEvent], snapshot: CampaignSnapshot | None
) -> None:
    """Check that after a close Redis and PostgreSQL agree on status, seq, committed units and unit price."""
    campaign_id, status = campaign["id"], campaign["status"]
    last_seq = events[-1].seq if events else 0
    if snapshot is None:
        # NOTE: a campaign missing from Redis (never loaded, or Redis lost it and no
        # rebuild ran since) has nothing to disagree with.
        return
    if status in ("succeeded", "failed", "cancelled"):
        final = next((e for e in events if e.seq == campaign["final_seq"]), None)
        pg = (status, campaign["final_seq"], final.committed_units if final else None)
        redis_side = (snapshot.status, snapshot.seq, snapshot.committed_units)
        if pg != redis_side:
            report.fail(campaign_id, "Redis and PostgreSQL agree after the close",
                        f"PostgreSQL (status, seq, committed) {pg}, Redis {redis_side}")
        if status == "succeeded" and snapshot.unit_price_won != campaign["final_unit_price_won"]:
            report.fail(campaign_id, "Redis and PostgreSQL agree on the final price",
                        f"PostgreSQL {campaign['final_unit_price_won']}, Redis {snapshot.unit_price_won}")
    elif status != "held" and last_seq > snapshot.seq:
        report.fail(campaign_id, "ledger never ahead of Redis", f"ledger seq {last_seq}, Redis seq {snapshot.seq}")


# -- the checker -----------------------------------------------------------------------


async def check_campaign_invariants(
    db: Any,
    campaign_live: CampaignLive | None,
    *,
    receipts: Iterable[Any] = (),
    sink_messages: Sequence[Any] | None = None,
    campaign_ids: Iterable[int] | None = None,
    campaign_terms_by_id: Mapping[int, CampaignTerms] | None = None,
) -> None:
    """Check every group-buy invariant the given data allows, and raise one AssertionError listing what broke.

    `db` is an asyncpg pool or connection (a connection inside a transaction lets a
    test corrupt rows and roll back), or None for campaigns that exist only in Redis,
    whose terms then come from `campaign_terms_by_id`. `receipts` takes
    `PledgeReceipt`s and `PledgeOutcome`s (rejections as closed are checked too).
    `sink_messages` are the SMTP sink's messages since the scenario began.
    `campaign_ids` limits the campaigns checked (default: every campaign).
    """
    report = CampaignReport()
    client_receipts, rejections = _split_campaign_client_data(receipts)
    if db is None:
        if not campaign_terms_by_id or campaign_live is None:
            raise ValueError("checking without a database needs `campaign_live` and `campaign_terms_by_id`")
        for campaign_id, terms in sorted(campaign_terms_by_id.items()):
            events = await campaign_stream_events(campaign_live, campaign_id)
            state = replay_campaign(report, terms, events)
            check_closed_rejections(report, terms, events, [s for c, s in rejections if c == campaign_id])
            snapshot = await campaign_live.snapshot(campaign_id)
            check_campaign_receipts(report, campaign_id, events,
                                    [r for r in client_receipts if r.campaign_id == campaign_id],
                                    held=snapshot is not None and snapshot.status == "held")
            live_pledges = await campaign_live.pledges(campaign_id)
            if snapshot is None:
                report.fail(campaign_id, "campaign is live in Redis", "no state hash")
            elif (snapshot.seq, snapshot.committed_units, snapshot.participants, live_pledges) != (
                state.seq, state.committed_units, state.participants, state.pledges
            ):
                report.fail(campaign_id, "Redis state follows the rules",
                            f"Redis (seq, committed, participants) "
                            f"{(snapshot.seq, snapshot.committed_units, snapshot.participants)}, "
                            f"replay {(state.seq, state.committed_units, state.participants)}")
        report.raise_if_failed()
        return

    wanted = None if campaign_ids is None else sorted(set(campaign_ids) | {r.campaign_id for r in client_receipts})
    campaigns = await db.fetch(
        "SELECT * FROM campaigns WHERE $1::bigint[] IS NULL OR id = ANY($1::bigint[]) ORDER BY id", wanted
    )
    ids = [c["id"] for c in campaigns]
    rows = await db.fetch(
        "SELECT * FROM pledge_events WHERE campaign_id = ANY($1::bigint[]) ORDER BY campaign_id, seq", ids
    )
    events: dict[int, list[PledgeEvent]] = {campaign_id: [] for campaign_id in ids}
    for row in rows:
        events[row["campaign_id"]].append(_pledge_event(row))
    supplier_of = {
        row["id"]: row["supplier_id"]
        for row in await db.fetch(
            "SELECT id, supplier_id FROM users WHERE id = ANY($1::bigint[])",
            sorted({r["user_id"] for r in rows if r["user_id"]}),
        )
    }
    for campaign in campaigns:
        campaign_id = campaign["id"]
        terms = campaign_terms(campaign)
        campaign_events = events[campaign_id]
        if campaign["status"] == "held":
            # A held campaign's ledger may miss seqs (that is why it is held), so only
            # the checks that need no replay count.
            scratch = CampaignReport()
            replay_campaign(scratch, terms, campaign_events, supplier_of)
            report.failures.extend(line for line in scratch.failures if any(
                name in line for name in HELD_CHECKS
            ))
        else:
            replay_campaign(report, terms, campaign_events, supplier_of)
        check_closed_rejections(report, terms, campaign_events, [s for c, s in rejections if c == campaign_id])
        check_campaign_receipts(report, campaign_id, campaign_events,
                                [r for r in client_receipts if r.campaign_id == campaign_id],
                                held=campaign["status"] == "held")
        await _check_campaign_orders(report, db, campaign, terms, campaign_events)
        await check_pledge_payment_money(report, db, campaign_id)
        if campaign["status"] in ("failed", "cancelled"):
            await _check_failed_refunds(report, db, campaign)
        if campaign_live is not None:
            _check_campaign_live_agrees(report, campaign, campaign_events, await campaign_live.snapshot(campaign_id))
    await _check_mail(report, db, sink_messages)
    report.raise_if_failed()


async def check_orders_money(db: Any, order_ids: Iterable[int]) -> None:
    """Check `check_order_money` on each given order (any channel), and raise one AssertionError listing what broke.

    A group-buy order's campaign also gets `check_pledge_payment_money`, so the
    up-front payments that paid or were refunded around the order are checked too.
    """
    report = CampaignReport()
    orders = await db.fetch("SELECT * FROM orders WHERE id = ANY($1::bigint[]) ORDER BY id", sorted(order_ids))
    for order in orders:
        await check_order_money(report, db, None, order)
    for campaign_id in sorted({order["campaign_id"] for order in orders if order["campaign_id"] is not None}):
        await check_pledge_payment_money(report, db, campaign_id)
    report.raise_if_failed()


async def check_pledge_payments_money(db: Any, campaign_ids: Iterable[int]) -> None:
    """Check `check_pledge_payment_money` on each given campaign, and raise one AssertionError listing what broke."""
    report = CampaignReport()
    for campaign_id in sorted(set(campaign_ids)):
        await check_pledge_payment_money(report, db, campaign_id)
    report.raise_if_failed()

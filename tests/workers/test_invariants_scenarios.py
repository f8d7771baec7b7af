"""End-to-end auction scenarios, each ending with the invariant checker, and the checker's own self-test."""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import timedelta

import asyncpg
import pytest

from engine.actors import Actor
from engine.auction.closing import close_due_lots
from engine.auction.ledger import LedgerConsumer
from engine.auction.live import AuctionLive, BidOutcome
from engine.auction.lots import LotDraft, create_lot
from engine.auction.service import submit_bid
from engine.config import Settings
from engine.outbox import OutboxSender
from invariants import check_auction_invariants, lot_terms
from worker_testkit import FINAL, Market, close_until_final, counts, make_market, send_all, wait_until_due


@asynccontextmanager
async def running_workers(db: asyncpg.Pool, live: AuctionLive, settings: Settings) -> AsyncIterator[None]:
    """Run a ledger consumer, a closer loop and an outbox sender in the background, as the worker does."""
    stop = asyncio.Event()
    consumer = LedgerConsumer(db, live.redis, live.keys, block_ms=50, claim_idle_s=0.5)
    assert settings.smtp_url
    sender = OutboxSender(db, smtp_url=settings.smtp_url, mail_from=settings.mail_from)

    async def closer() -> None:
        while not stop.is_set():
            await close_due_lots(db, live, settings)
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.05)
            except asyncio.TimeoutError:
                pass

    tasks = [
        asyncio.create_task(consumer.run(stop)),
        asyncio.create_task(closer()),
        asyncio.create_task(sender.run(stop, idle_s=0.05)),
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def wait_until_settled(db: asyncpg.Pool, live: AuctionLive, lot_ids: list[int]) -> None:
    """Wait until every lot is final in both stores and no mail is pending (the per-test timeout bounds it)."""
    while True:
        statuses = {row["id"]: row["status"] for row in await db.fetch(
            "SELECT id, status FROM lots WHERE id = ANY($1::bigint[])", lot_ids)}
        settled = all(statuses.get(lot_id) in FINAL for lot_id in lot_ids)
        if settled:
            for lot_id in lot_ids:
                snapshot = await live.snapshot(lot_id)
                settled = settled and snapshot is not None and snapshot.status == statuses[lot_id]
        pending = await db.fetchval("SELECT count(*) FROM outbox WHERE status <> 'sent'")
        if settled and pending == 0:
            return
        await asyncio.sleep(0.05)


async def soft_close_lot(
    db: asyncpg.Pool, live: AuctionLive, market: Market, *, ends_in_s: float, window_s: int, cap_after_s: float | None
) -> int:
    """Create an open lot through `create_lot`, with soft close on and an optional hard cap."""
    now = await db.fetchval("SELECT now()")
    end_at = now + timedelta(seconds=ends_in_s)
    draft = LotDraft(
        product_id=market.product_id, title="광산 유기농 쌀 10kg", start_price_won=10_000,
        start_at=now - timedelta(seconds=1), end_at=end_at,
        hard_cap_at=end_at + timedelta(seconds=cap_after_s) if cap_after_s is not None else None,
        soft_close_window_s=window_s, extension_s=window_s,
    )
    return await create_lot(db, live, market.supplier, draft)


def bid_requests(members: list[Actor], count: int, seed: int) -> list[tuple[Actor, int]]:
    """(member, maximum) pairs: amounts rising with noise, a tenth of them repeating an earlier amount."""
    rng = random.Random(seed)
    requests: list[tuple[Actor, int]] = []
    for number in range(count):
        member = members[number % len(members)]
        if requests and rng.random() < 0.1:
            amount = rng.choice(requests)[1]
        else:
            amount = max(10_000, 10_000 + number * 500 + rng.randrange(-8_000, 8_000))
        requests.append((member, amount))
    return requests


async def test_scenario_500_concurrent_bids(db, live, wk_settings, market, smtp_sink):
    """500 concurrent bids from 50 members under soft close end in one sale, order, commission and mail set."""
    members = [await market.member(f"김민{number:02d}") for number in range(50)]
    lot_id = await soft_close_lot(db, live, market, ends_in_s=1.5, window_s=2, cap_after_s=None)
    requests = bid_requests(members, 500, seed=11)

    async with running_workers(db, live, wk_settings):
        outcomes: list[BidOutcome] = list(await asyncio.gather(*(
            submit_bid(db, live, member, lot_id, amount, f"c{number}")
            for number, (member, amount) in enumerate(requests)
        )))
        accepted = [(number, outcome) for number, outcome in enumerate(outcomes) if outcome.accepted]
        retries = [
            await submit_bid(db, live, requests[number][0], lot_id, requests[number][1], f"c{number}")
            for number, _ in accepted[:20]
        ]
        await wait_until_settled(db, live, [lot_id])

    # The bids go out in pipelines on several connections, which Redis may run in any
    # order: when a high amount runs early, the lower ones after it are too low. From
    # 3 to 42 of 500 were seen accepted. Two accepted bids already exercise proxy
    # bidding (the second meets the first's maximum) and soft close.
    assert len(accepted) >= 2
    assert {outcome.code for outcome in outcomes if not outcome.accepted} <= {"bid_too_low", "max_not_raised"}
    for (_, first), retry in zip(accepted, retries):
        assert retry.receipt is not None and first.receipt is not None
        assert retry.receipt.retry
        assert retry.receipt.seq == first.receipt.seq
    lot = await db.fetchrow("SELECT * FROM lots WHERE id = $1", lot_id)
    assert lot["status"] == "sold"
    assert lot["final_end_at"] > lot["end_at"], "soft close must have extended the lot"
    bidders = await db.fetchval(
        "SELECT count(DISTINCT user_id) FROM lot_events WHERE lot_id = $1 AND kind = 'bid'", lot_id)
    assert await counts(db, lot_id) == {"sales": 1, "orders": 1, "commissions": 1, "mails": bidders + 1}
    pairs = [(str(m.message["To"]), str(m.message["Subject"])) for m in smtp_sink.messages]
    assert len(pairs) == len(set(pairs)) == bidders + 1
    await check_auction_invariants(
        db, live, receipts=[*outcomes, *retries], sink_messages=smtp_sink.messages, lot_ids=[lot_id]
    )


async def test_scenario_supplier_bids_own_lot(db, live, wk_settings, market, smtp_sink):
    """A supplier's account bidding on its own lot is rejected; another supplier's account may bid."""
    lot_id = await market.lot(duration_s=1.5)
    other_market = await make_market(db, live)
    first, second = await market.member("김가영"), await market.member("이나래")
    outcomes = [
        await submit_bid(db, live, first, lot_id, 12_000, "first"),
        await submit_bid(db, live, market.supplier, lot_id, 20_000, "own"),
        await submit_bid(db, live, other_market.supplier, lot_id, 15_000, "other-supplier"),
        await submit_bid(db, live, second, lot_id, 14_000, "second"),
        await submit_bid(db, live, market.supplier, lot_id, 30_000, "own-again"),
    ]

    async with running_workers(db, live, wk_settings):
        await wait_until_settled(db, live, [lot_id])

    assert [outcome.code for outcome in outcomes] == ["accepted", "own_lot", "accepted", "accepted", "own_lot"]
    bidder_ids = {row["user_id"] for row in await db.fetch(
        "SELECT user_id FROM lot_events WHERE lot_id = $1 AND kind = 'bid'", lot_id)}
    assert market.supplier.user_id not in bidder_ids
    sale = await db.fetchrow("SELECT buyer_id, price_won FROM sales WHERE lot_id = $1", lot_id)
    assert (sale["buyer_id"], sale["price_won"]) == (other_market.supplier.user_id, 14_500)
    await check_auction_invariants(db, live, receipts=outcomes, sink_messages=smtp_sink.messages, lot_ids=[lot_id])


async def test_scenario_20_lots_near_their_ends(db, live, wk_settings, market, smtp_sink):
    """20 lots bid on in waves across their ends: late bids are rejected as ended and every lot closes once."""
    members = [await market.member(f"이수{number:02d}") for number in range(30)]
    lot_ids = [await market.lot(duration_s=1.0 + 0.05 * number) for number in range(10)]
    lot_ids += [
        await soft_close_lot(db, live, market, ends_in_s=1.0 + 0.05 * number, window_s=1, cap_after_s=1.0)
        for number in range(10)
    ]
    outcomes: dict[int, list[BidOutcome]] = {lot_id: [] for lot_id in lot_ids}

    async def bid(lot_index: int, wave: int, seat: int) -> None:
        lot_id = lot_ids[lot_index]
        member = members[(lot_index + seat * 7) % len(members)]
        amount = 10_000 + (wave * 3 + seat) * 1_000
        outcome = await submit_bid(db, live, member, lot_id, amount, f"w{wave}s{seat}")
        outcomes[lot_id].append(outcome)

    async with running_workers(db, live, wk_settings):
        wave = 0
        while not all(any(o.code == "lot_ended" for o in outcomes[lot_id]) for lot_id in lot_ids):
            await asyncio.gather(*(
                bid(lot_index, wave, seat) for lot_index in range(len(lot_ids)) for seat in range(3)
            ))
            wave += 1
            await asyncio.sleep(0.02)
        await wait_until_settled(db, live, lot_ids)

    for lot_id in lot_ids:
        assert any(o.accepted for o in outcomes[lot_id]), f"lot {lot_id} took no bid"
        assert any(o.code == "lot_ended" for o in outcomes[lot_id]), f"lot {lot_id} rejected no late bid"
    statuses = [row["status"] for row in await db.fetch(
        "SELECT status FROM lots WHERE id = ANY($1::bigint[])", lot_ids)]
    assert statuses == ["sold"] * len(lot_ids)
    assert await db.fetchval("SELECT count(*) FROM sales") == len(lot_ids)
    extended = await db.fetchval(
        "SELECT count(*) FROM lots WHERE id = ANY($1::bigint[]) AND final_end_at > end_at", lot_ids[10:])
    assert extended > 0, "no soft-close lot was extended"
    every_outcome = [outcome for lot_outcomes in outcomes.values() for outcome in lot_outcomes]
    await check_auction_invariants(
        db, live, receipts=every_outcome, sink_messages=smtp_sink.messages, lot_ids=lot_ids
    )


# -- the checker's self-test ---------------------------------------------------------------


async def test_checker_rejects_corruptions(db, live, wk_settings, consumer, market, smtp_sink):
    """The checker passes an intact closed lot and fails each corruption of it, naming the invariant."""
    lot_id = await market.lot(duration_s=1.0)
    a, b, c = await market.member("김가영"), await market.member("이나래"), await market.member("박다솜")
    outcomes = [await market.accepted_bid(lot_id, a, 12_000), await market.accepted_bid(lot_id, b, 15_000),
                await market.accepted_bid(lot_id, c, 13_000)]
    late_member = await market.member("최라온")
    await wait_until_due(live, lot_id)
    late = await market.bid(lot_id, late_member, 40_000)
    assert late.code == "lot_ended"
    assert await close_until_final(db, live, wk_settings, consumer, lot_id) == "sold"
    assert await send_all(db, wk_settings) == 4
    messages = list(smtp_sink.messages)
    received = [*outcomes, late]
    await check_auction_invariants(db, live, receipts=received, sink_messages=messages)

    assert late.snapshot is not None
    early_rejection = BidOutcome(False, "lot_ended", None, replace(late.snapshot, server_ms=late.snapshot.end_ms - 1))
    supplier_user, staff_user = market.supplier.user_id, market.staff.user_id
    cases: list[tuple[str, list[str], dict, str]] = [
        ("deleted ledger row", ["DELETE FROM lot_events WHERE seq = 2"], {}, "ledger has a sequence gap"),
        ("deleted bid row", ["DELETE FROM lot_events WHERE seq = 2"], {}, "receipt missing from the ledger"),
        ("second commission row", [
            "DROP INDEX money_ledger_once_key",
            "INSERT INTO money_ledger (order_id, supplier_id, entry, amount_won, rate_bp)"
            " SELECT order_id, supplier_id, entry, amount_won, rate_bp FROM money_ledger WHERE entry = 'commission'",
        ], {}, "one commission row per sale"),
        ("changed sale price", ["UPDATE sales SET price_won = price_won + 500"], {},
         "sale at the highest maximum's price"),
        ("second sale", [
            "DROP INDEX sales_lot_once_key",
            "INSERT INTO sales (lot_id, buyer_id, price_won) SELECT lot_id, buyer_id, price_won FROM sales",
        ], {}, "one sale per sold lot"),
        ("lowered price", ["UPDATE lot_events SET price_won = 9000 WHERE seq = 3"], {},
         "accepted bid lowered the price"),
        ("bid after the deadline",
         ["UPDATE lot_events e SET server_at = l.end_at + interval '1 second' FROM lots l"
          " WHERE l.id = e.lot_id AND e.seq = 3"], {}, "accepted at or after its deadline"),
        ("supplier's bid", [f"UPDATE lot_events SET user_id = {supplier_user} WHERE seq = 1"], {},
         "supplier bid on its own goods"),
        ("staff bid", [f"UPDATE lot_events SET user_id = {staff_user} WHERE seq = 1"], {}, "staff member bid"),
        ("member in the audit log", [
            "INSERT INTO audit_log (actor_id, action, target_type, target_id)"
            f" VALUES ({a.user_id}, 'lot.cancel', 'lot', {lot_id})",
        ], {}, "audit_log actor is staff"),
        ("close mail removed", ["DELETE FROM outbox WHERE event_key LIKE '%:won'"], {},
         "close mails to winner, other bidders and supplier once"),
        ("receipt not in the ledger", [], {"receipts": [*received, (lot_id, 9, 50_000)]},
         "receipt missing from the ledger"),
        ("receipt with another amount", [], {"receipts": [(lot_id, 2, 16_000)]}, "receipt differs from the ledger"),
        ("bid rejected before the end", [], {"receipts": [early_rejection]},
         "bid that arrived before the end rejected as ended"),
        ("mail delivered twice", [], {"sink_messages": messages + messages[:1]}, "sent at most once"),
        ("sent mail never delivered", [], {"sink_messages": messages[1:]}, "marked sent, never delivered"),
    ]
    for name, statements, overrides, fragment in cases:
        options = {"receipts": received, "sink_messages": messages, **overrides}
        async with db.acquire() as connection:
            transaction = connection.transaction()
            await transaction.start()
            try:
                for statement in statements:
                    await connection.execute(statement)
                await _require_failure(connection, live, options, name, fragment)
            finally:
                await transaction.rollback()

    state_key = live.keys.lot_state(lot_id)
    price = await live.redis.hget(state_key, "price")
    await live.redis.hset(state_key, "price", int(price) + 100)
    try:
        await _require_failure(db, live, {"receipts": received}, "Redis price changed", "Redis and PostgreSQL agree")
    finally:
        await live.redis.hset(state_key, "price", price)
    await check_auction_invariants(db, live, receipts=received, sink_messages=messages)


async def _require_failure(db, live: AuctionLive, options: dict, name: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    try:
        await check_auction_invariants(db, live, **options)
    except AssertionError as error:
        assert fragment in str(error), f"case {name!r}: expected {fragment!r} in the checker's message:\n{error}"
    else:
        pytest.fail(f"case {name!r}: the checker passed a corrupted market")


async def test_checker_reports_missing_lot(db, live):
    """A lot checked by id that PostgreSQL does not have is reported, not skipped."""
    missing_id = 10_000 + secrets.randbelow(1000)
    with pytest.raises(AssertionError, match=f"lot {missing_id}: lot exists in PostgreSQL"):
        await check_auction_invariants(db, live, lot_ids=[missing_id])


async def test_checker_redis_only_lot(db, live, market):
    """Without a database the checker reads the ledger stream, passes an intact lot and fails a lowered price."""
    lot_id = await market.lot(duration_s=30)
    a, b = await market.member("김가영"), await market.member("이나래")
    outcomes = [await market.accepted_bid(lot_id, a, 12_000), await market.accepted_bid(lot_id, b, 15_000)]
    terms = {lot_id: lot_terms(await db.fetchrow("SELECT * FROM lots WHERE id = $1", lot_id))}
    await check_auction_invariants(None, live, receipts=outcomes, lot_terms_by_id=terms)

    third = await market.accepted_bid(lot_id, a, 20_000)
    stream = live.keys.ledger_stream_for_lot(lot_id)
    entry_id, fields = (await live.redis.xrange(stream))[-1]
    await live.redis.xdel(stream, entry_id)
    await live.redis.xadd(stream, {**fields, b"price": b"9000"})

    with pytest.raises(AssertionError, match="accepted bid lowered the price"):
        await check_auction_invariants(None, live, receipts=[*outcomes, third], lot_terms_by_id=terms)

"""bid.lua against a real Redis through AuctionLive: the rules table, timing, writes, retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import orjson
import pytest
import redis.asyncio

from auction_cases import CASES, SUPPLIER_ID, Case, lot_load, terms_for
from engine.auction.live import AuctionLive, BidOutcome
from engine.auction.rules import LotTerms
from engine.keys import Keys

HOUR_MS = 3_600_000
LOT_ID = 41  # shard 1 of 4
MOMENTS = {"start_ms", "end_ms", "hard_cap_ms"}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def _load_case(live: AuctionLive, case: Case, lot_id: int = LOT_ID) -> LotTerms:
    now = await live.server_time_ms()
    terms = terms_for(case, lot_id=lot_id, start_ms=now - 60_000, end_ms=now + HOUR_MS)
    assert await live.load(lot_load(terms))
    return terms


async def _load_terms(live: AuctionLive, lot_id: int = LOT_ID, **changes: Any) -> LotTerms:
    """Load a lot with start price 1,000 that opened a minute ago.

    `changes` replace terms, and the moments among them (start, end, hard cap) are
    given in ms relative to the server's time.
    """
    now = await live.server_time_ms()
    terms = LotTerms(
        lot_id=lot_id, supplier_id=SUPPLIER_ID, start_price_won=1_000,
        start_ms=now - 60_000, end_ms=now + HOUR_MS,
    )
    for name in MOMENTS.intersection(changes):
        changes[name] += now
    terms = replace(terms, **changes)
    assert await live.load(lot_load(terms))
    return terms


async def _lot_fields(live: AuctionLive, lot_id: int) -> dict[str, str]:
    raw = await live.redis.hgetall(live.keys.lot_state(lot_id))
    return {_text(k): _text(v) for k, v in raw.items()}


async def _stream_entries(live: AuctionLive, lot_id: int) -> list[dict[str, str]]:
    entries = await live.redis.xrange(live.keys.ledger_stream_for_lot(lot_id))
    rows = [{_text(k): _text(v) for k, v in fields.items()} for _, fields in entries]
    return [row for row in rows if row["lot"] == str(lot_id)]


async def _everything(live: AuctionLive, lot_id: int) -> tuple[Any, ...]:
    """Every key a bid may write, for before/after comparisons."""
    keys = live.keys
    return (
        await live.redis.hgetall(keys.lot_state(lot_id)),
        await live.redis.hgetall(keys.lot_bidders(lot_id)),
        await live.redis.hgetall(keys.lot_receipts(lot_id)),
        await live.redis.xrange(keys.ledger_stream_for_lot(lot_id)),
        await live.redis.zrange(keys.ends_for_lot(lot_id), 0, -1, withscores=True),
    )


@asynccontextmanager
async def _published(client: redis.asyncio.Redis, keys: Keys) -> AsyncIterator[list[dict[str, Any]]]:
    """Collect the events published on the channel while the block runs.

    A sentinel published after the block marks the end, so the list holds exactly
    what the block published (pub/sub delivers one server's messages in order).
    """
    events: list[dict[str, Any]] = []
    pubsub = client.pubsub()
    await pubsub.subscribe(keys.events_channel)
    confirmation = await pubsub.get_message(timeout=None)
    assert confirmation is not None and confirmation["type"] == "subscribe"
    try:
        yield events
        await client.publish(keys.events_channel, b"sentinel")
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=None)
            if message is None:
                continue
            if message["data"] == b"sentinel":
                break
            events.append(orjson.loads(message["data"]))
    finally:
        await pubsub.unsubscribe()
        await pubsub.aclose()


async def _bid(live: AuctionLive, user: int, amount: Any, client_id: str, **extra: Any) -> BidOutcome:
    return await live.place_bid(
        LOT_ID, user_id=user, client_id=client_id, amount_won=amount, bidder_masked=f"김*{user}", **extra
    )


# -- the rules table ---------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_rules_table_in_lua(case: Case, live: AuctionLive, redis_client: redis.asyncio.Redis) -> None:
    """Each step returns the table's code and state, a rejection writes nothing, and an acceptance writes one entry and one event."""
    await _load_case(live, case)
    receipts = []
    async with _published(redis_client, live.keys) as events:
        for number, step in enumerate(case.steps, start=1):
            where = f"step {number}: {step}"
            before = await _everything(live, LOT_ID)
            if step.kind == "buy_now":
                outcome = await live.buy_now(
                    LOT_ID, user_id=step.user, client_id=f"c{number}", bidder_masked="김*수",
                    bidder_supplier_id=step.supplier,
                )
            else:
                outcome = await live.place_bid(
                    LOT_ID, user_id=step.user, client_id=f"c{number}", amount_won=step.amount,
                    bidder_masked="김*수", bidder_supplier_id=step.supplier,
                )
            assert outcome.code == step.code, where
            assert outcome.accepted == (step.code == "accepted"), where
            snapshot = outcome.snapshot
            assert snapshot is not None, where
            assert snapshot.price_won == step.price, where
            assert snapshot.leader_id == step.leader, where
            assert snapshot.status == step.status, where
            assert snapshot.reserve_met == step.reserve_met, where
            fields = await _lot_fields(live, LOT_ID)
            assert int(fields["leader_max"]) == step.leader_max, where
            if outcome.accepted:
                assert outcome.receipt is not None
                receipts.append(outcome.receipt)
                assert outcome.receipt.price_won == step.price, where
                assert outcome.receipt.leading == (step.leader == step.user), where
            else:
                assert outcome.receipt is None, where
                assert await _everything(live, LOT_ID) == before, f"{where}: a rejection wrote to Redis"

    assert [receipt.seq for receipt in receipts] == list(range(1, len(receipts) + 1))
    entries = await _stream_entries(live, LOT_ID)
    assert [int(entry["seq"]) for entry in entries] == [receipt.seq for receipt in receipts]
    assert [int(entry["price"]) for entry in entries] == [receipt.price_won for receipt in receipts]
    assert [event["seq"] for event in events] == [receipt.seq for receipt in receipts]


# -- ledger entries, events and receipts --------------------------------------------------


async def test_stream_entry_matches_receipt(live: AuctionLive) -> None:
    """The ledger entry of a bid carries the receipt's lot, seq, kind, user, client, amount, price and times."""
    await _load_terms(live)
    outcome = await _bid(live, 7, 5_000, "first")
    receipt = outcome.receipt
    assert receipt is not None
    assert receipt.receipt_id == f"{LOT_ID}-1"
    (entry,) = await _stream_entries(live, LOT_ID)
    assert entry == {
        "lot": str(LOT_ID), "seq": "1", "kind": "bid", "user": "7", "client": "first",
        "amount": "5000", "price": "1000", "leader": "7", "end_ms": str(receipt.end_ms),
        "server_ms": str(receipt.server_ms),
    }


async def test_event_carries_snapshot(live: AuctionLive, redis_client: redis.asyncio.Redis) -> None:
    """The published event carries the new snapshot, the bidder's masked name and the previous leader."""
    await _load_terms(live)
    await _bid(live, 7, 5_000, "first")
    async with _published(redis_client, live.keys) as events:
        outcome = await _bid(live, 8, 9_000, "second")
    (event,) = events
    assert outcome.snapshot is not None
    assert event["type"] == "lot"
    assert event["event"] == "bid"
    assert event["seq"] == 2
    assert event["price_won"] == outcome.snapshot.price_won == 5_100
    assert event["leader_id"] == 8
    assert event["leader_masked"] == "김*8"
    assert event["bidder_masked"] == "김*8"
    assert event["previous_leader_id"] == 7


async def test_bidders_hash_keeps_each_highest_maximum(live: AuctionLive) -> None:
    """The bidders hash contains each bidder's highest accepted maximum."""
    await _load_terms(live)
    await _bid(live, 1, 5_000, "a")
    await _bid(live, 2, 3_000, "b")
    await _bid(live, 2, 4_000, "c")
    await _bid(live, 1, 9_000, "d")
    assert await live.bidders(LOT_ID) == {1: 9_000, 2: 4_000}


async def test_snapshot_matches_bid_reply(live: AuctionLive) -> None:
    """AuctionLive.snapshot reads what the last bid reply reported."""
    await _load_terms(live, reserve_won=10_000, buy_now_won=50_000)
    outcome = await _bid(live, 1, 5_000, "a")
    read = await live.snapshot(LOT_ID)
    assert outcome.snapshot is not None and read is not None
    assert replace(read, server_ms=0) == replace(outcome.snapshot, server_ms=0)
    assert read.reserve_met is False
    assert read.buy_now_won is None
    assert read.min_next_won == 5_100


async def test_bid_on_unloaded_lot(live: AuctionLive) -> None:
    """A bid on a lot missing from Redis returns lot_not_loaded and writes nothing."""
    outcome = await _bid(live, 1, 5_000, "a")
    assert outcome.code == "lot_not_loaded"
    assert outcome.snapshot is None
    assert await live.redis.exists(live.keys.lot_receipts(LOT_ID)) == 0


async def test_load_keeps_live_lot(live: AuctionLive) -> None:
    """Loading a lot that is already live changes nothing."""
    terms = await _load_terms(live)
    await _bid(live, 1, 5_000, "a")
    assert not await live.load(lot_load(replace(terms, start_price_won=99_000)))
    fields = await _lot_fields(live, LOT_ID)
    assert fields["start_price"] == "1000"
    assert fields["seq"] == "1"


# -- idempotent retries ------------------------------------------------------------------


async def test_retry_returns_first_receipt(live: AuctionLive, redis_client: redis.asyncio.Redis) -> None:
    """The same client id and amount returns the first receipt with retry=True and writes nothing."""
    await _load_terms(live)
    first = await _bid(live, 1, 5_000, "double-click")
    await _bid(live, 2, 3_000, "other")
    before = await _everything(live, LOT_ID)
    async with _published(redis_client, live.keys) as events:
        again = await _bid(live, 1, 5_000, "double-click")
    assert first.receipt is not None and again.receipt is not None
    assert again.accepted
    assert again.receipt.retry is True
    assert first.receipt.retry is False
    assert replace(again.receipt, retry=False) == first.receipt
    assert await _everything(live, LOT_ID) == before
    assert events == []


async def test_retry_after_end_returns_receipt(live: AuctionLive) -> None:
    """A retry returns the stored receipt even after the lot has ended."""
    await _load_terms(live, end_ms=500, window_ms=0, extension_ms=0)
    first = await _bid(live, 1, 5_000, "late-retry")
    assert first.accepted
    while await live.server_time_ms() <= first.receipt.end_ms:  # type: ignore[union-attr]
        await asyncio.sleep(0.05)
    again = await _bid(live, 1, 5_000, "late-retry")
    assert again.accepted
    assert again.receipt is not None
    assert again.receipt.seq == 1
    assert again.receipt.retry


@pytest.mark.parametrize(
    ("amount", "kind"), [(6_000, "bid"), (0, "buy_now")], ids=["other amount", "buy now"]
)
async def test_client_id_reused(live: AuctionLive, amount: int, kind: str) -> None:
    """The same client id with other content is rejected as client_id_reused and writes nothing."""
    await _load_terms(live, buy_now_won=90_000)
    await _bid(live, 1, 5_000, "same")
    before = await _everything(live, LOT_ID)
    if kind == "bid":
        outcome = await _bid(live, 1, amount, "same")
    else:
        outcome = await live.buy_now(LOT_ID, user_id=1, client_id="same", bidder_masked="김*1")
    assert outcome.code == "client_id_reused"
    assert await _everything(live, LOT_ID) == before


async def test_client_id_is_per_user(live: AuctionLive) -> None:
    """Two users may use the same client id without seeing each other's receipt."""
    await _load_terms(live)
    first = await _bid(live, 1, 5_000, "same")
    second = await _bid(live, 2, 6_000, "same")
    assert second.accepted
    assert second.receipt is not None and second.receipt.seq == 2
    assert not second.receipt.retry
    assert first.receipt is not None and first.receipt.seq == 1


async def test_rejected_bid_is_not_a_receipt(live: AuctionLive) -> None:
    """A rejected bid stores no receipt, so a corrected bid may reuse its client id."""
    await _load_terms(live)
    assert (await _bid(live, 1, 500, "fix-me")).code == "bid_too_low"
    assert (await _bid(live, 1, 1_500, "fix-me")).accepted


# -- input checks ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount",
    [0, -1, 1.5, "1e3", "0x10", "1.0", " 100", "", "nan", "１０００", 10_000_000_001, "000000000100"],
    ids=repr,
)
async def test_invalid_amount_rejected_by_script(live: AuctionLive, amount: Any) -> None:
    """The script itself rejects amounts that are not plain digits in bounds, writing nothing."""
    await _load_terms(live, start_price_won=1)
    before = await _everything(live, LOT_ID)
    outcome = await _bid(live, 1, amount, "bad")
    assert outcome.code == "invalid_amount"
    assert await _everything(live, LOT_ID) == before


async def test_leading_zeros_accepted_by_script(live: AuctionLive) -> None:
    """Leading zeros are plain digits in the script as in parse_amount_won."""
    await _load_terms(live)
    outcome = await _bid(live, 1, "05000", "zeros")
    assert outcome.accepted
    assert outcome.receipt is not None and outcome.receipt.amount_won == 5_000


# -- timing ------------------------------------------------------------------------------


async def test_bid_before_start_rejected(live: AuctionLive) -> None:
    """A bid before the start is rejected as lot_not_started."""
    await _load_terms(live, start_ms=60_000)
    before = await _everything(live, LOT_ID)
    assert (await _bid(live, 1, 5_000, "early")).code == "lot_not_started"
    assert await _everything(live, LOT_ID) == before


async def test_bid_after_end_rejected(live: AuctionLive) -> None:
    """A bid after the end is rejected as lot_ended."""
    await _load_terms(live, end_ms=-1)
    before = await _everything(live, LOT_ID)
    assert (await _bid(live, 1, 5_000, "late")).code == "lot_ended"
    assert await _everything(live, LOT_ID) == before


async def test_no_bid_accepted_once_end_passes(live: AuctionLive) -> None:
    """Bids are accepted until the end and rejected once Redis time reaches it."""
    await _load_terms(live, end_ms=400, window_ms=0, extension_ms=0)
    first = await _bid(live, 1, 5_000, "in-time")
    assert first.accepted and first.receipt is not None
    end_ms = first.receipt.end_ms
    outcome = first
    number = 0
    while outcome.accepted:
        number += 1
        assert outcome.snapshot is not None
        outcome = await _bid(live, 1 + number, outcome.snapshot.min_next_won, f"b{number}")
        assert outcome.snapshot is not None
        if outcome.accepted:
            assert outcome.receipt is not None and outcome.receipt.server_ms < end_ms
    assert outcome.code == "lot_ended"
    assert outcome.snapshot is not None and outcome.snapshot.server_ms >= end_ms


async def test_soft_close_extends_inside_window(live: AuctionLive) -> None:
    """An accepted bid inside the window moves the end to its server time plus the extension."""
    await _load_terms(live, end_ms=60_000, window_ms=120_000, extension_ms=120_000)
    outcome = await _bid(live, 1, 5_000, "a")
    receipt = outcome.receipt
    assert receipt is not None
    assert receipt.end_ms == receipt.server_ms + 120_000
    assert outcome.snapshot is not None and outcome.snapshot.end_ms == receipt.end_ms
    score = await live.redis.zscore(live.keys.ends_for_lot(LOT_ID), str(LOT_ID))
    assert score == receipt.end_ms


async def test_soft_close_outside_window_keeps_end(live: AuctionLive) -> None:
    """An accepted bid before the window leaves the end where it was."""
    terms = await _load_terms(live, end_ms=600_000, window_ms=120_000, extension_ms=120_000)
    outcome = await _bid(live, 1, 5_000, "a")
    assert outcome.receipt is not None and outcome.receipt.end_ms == terms.end_ms


async def test_soft_close_capped_at_hard_cap(live: AuctionLive) -> None:
    """An extension past the hard cap stops at the cap."""
    terms = await _load_terms(
        live, end_ms=60_000, hard_cap_ms=90_000, window_ms=120_000, extension_ms=120_000
    )
    outcome = await _bid(live, 1, 5_000, "a")
    assert outcome.receipt is not None and outcome.receipt.end_ms == terms.hard_cap_ms


async def test_hard_cap_before_end_never_shortens(live: AuctionLive) -> None:
    """A hard cap earlier than the end stops extensions without moving the end earlier."""
    terms = await _load_terms(
        live, end_ms=60_000, hard_cap_ms=30_000, window_ms=120_000, extension_ms=120_000
    )
    outcome = await _bid(live, 1, 5_000, "a")
    assert outcome.receipt is not None and outcome.receipt.end_ms == terms.end_ms


async def test_rejected_bid_never_extends(live: AuctionLive) -> None:
    """A rejected bid inside the window leaves the end alone."""
    terms = await _load_terms(live, end_ms=60_000, window_ms=120_000, extension_ms=120_000)
    outcome = await _bid(live, 1, 500, "low")
    assert outcome.code == "bid_too_low"
    assert outcome.snapshot is not None and outcome.snapshot.end_ms == terms.end_ms


async def test_buy_now_ends_lot_at_server_time(live: AuctionLive) -> None:
    """Buy-now closes the lot at the script's server time and queues it for the closer."""
    await _load_terms(live, buy_now_won=30_000)
    outcome = await live.buy_now(LOT_ID, user_id=1, client_id="buy", bidder_masked="김*1")
    receipt = outcome.receipt
    assert receipt is not None
    assert (receipt.kind, receipt.amount_won, receipt.price_won) == ("buy_now", 30_000, 30_000)
    assert receipt.end_ms == receipt.server_ms
    assert outcome.snapshot is not None and outcome.snapshot.status == "closing"
    assert outcome.snapshot.buy_now_won is None
    score = await live.redis.zscore(live.keys.ends_for_lot(LOT_ID), str(LOT_ID))
    assert score == receipt.server_ms
    (entry,) = await _stream_entries(live, LOT_ID)
    assert entry["kind"] == "buy_now"

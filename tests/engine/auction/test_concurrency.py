"""Concurrent bids keep the ordering invariants; ScriptBatcher pipelines calls and recovers from NOSCRIPT.

Each batcher test runs on both transports: redis-py pipelines on the client's pool
(`pool`) and one `PipelinedConnection` with several pipelines in flight (`pipelined`).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio

from auction_cases import SUPPLIER_ID, lot_load
from engine.auction.batching import Script, ScriptBatcher
from engine.auction.live import BID_SCRIPT, AuctionLive, BidOutcome
from engine.auction.pipelined import PipelinedConnection, Waiter
from engine.auction.rules import LotTerms, replay_bids
from engine.keys import Keys
from invariants import check_auction_invariants

BIDDERS = 50
BIDS = 500
LOT_ID = 77


TRANSPORTS = ["pool", "pipelined"]


class CountingConnection(PipelinedConnection):
    def __init__(self, redis: redis.asyncio.Redis, pipelines: list[int]) -> None:
        super().__init__(redis)
        self.pipelines = pipelines

    def send(self, waiters: Sequence[Waiter]) -> None:
        self.pipelines.append(len(waiters))
        super().send(waiters)


class CountingBatcher(ScriptBatcher):
    """A ScriptBatcher that records the size of every pipeline it sends to Redis."""

    def __init__(self, redis: redis.asyncio.Redis, *, transport: str = "pool", **options: Any) -> None:
        self.pipelines: list[int] = []
        self.connection = CountingConnection(redis, self.pipelines) if transport == "pipelined" else None
        super().__init__(redis, connection=self.connection, **options)

    async def _pipeline(self, batch: list[Any]) -> list[Any]:
        self.pipelines.append(len(batch))
        return await super()._pipeline(batch)


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture
async def make_batcher(transport: str) -> AsyncIterator[Any]:
    """Return a factory of CountingBatchers on this test's transport; their connections close afterwards."""
    created: list[CountingBatcher] = []

    def make(client: redis.asyncio.Redis, **options: Any) -> CountingBatcher:
        batcher = CountingBatcher(client, transport=transport, **options)
        created.append(batcher)
        return batcher

    yield make
    for batcher in created:
        if batcher.connection is not None:
            await batcher.connection.close()


@pytest.fixture
def live(redis_client: redis.asyncio.Redis, keys: Keys, make_batcher: Any) -> AuctionLive:
    return AuctionLive(redis_client, keys, batcher=make_batcher(redis_client))


def _requests(seed: int) -> list[tuple[int, int]]:
    """Return (user, amount) for BIDS bids from BIDDERS bidders: rising amounts with noise and repeats."""
    rng = random.Random(seed)
    requests: list[tuple[int, int]] = []
    for number in range(BIDS):
        user = number % BIDDERS + 1
        if requests and rng.random() < 0.1:
            amount = rng.choice(requests)[1]  # ties with an earlier maximum
        else:
            amount = max(1_000, 1_000 + number * 400 + rng.randrange(-5_000, 5_000))
        requests.append((user, amount))
    return requests


async def _load(live: AuctionLive, *, end_in_ms: int = 3_600_000, window_s: int = 120) -> LotTerms:
    now = await live.server_time_ms()
    terms = LotTerms(
        lot_id=LOT_ID, supplier_id=SUPPLIER_ID, start_price_won=1_000, start_ms=now - 1_000,
        end_ms=now + end_in_ms, window_ms=window_s * 1_000, extension_ms=window_s * 1_000,
    )
    assert await live.load(lot_load(terms))
    return terms


async def _stream_entries(live: AuctionLive, lot_id: int) -> list[dict[str, str]]:
    entries = await live.redis.xrange(live.keys.ledger_stream_for_lot(lot_id))
    rows = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]
    return [row for row in rows if row["lot"] == str(lot_id)]


async def _check_invariants(
    live: AuctionLive, terms: LotTerms, requests: Sequence[tuple[int, int]], outcomes: Sequence[BidOutcome]
) -> None:
    """Check the ordering invariants of one lot after concurrent bids."""
    accepted = sorted(
        ((outcome.receipt, user) for outcome, (user, _) in zip(outcomes, requests) if outcome.receipt is not None),
        key=lambda pair: pair[0].seq,
    )
    seqs = [receipt.seq for receipt, _ in accepted]
    count = len(accepted)
    assert count > 1, "too few bids were accepted to exercise the lot"
    assert seqs == list(range(1, count + 1)), "accepted receipts must have the distinct seqs 1..N"
    assert not any(receipt.retry for receipt, _ in accepted)

    entries = await _stream_entries(live, terms.lot_id)
    assert [int(entry["seq"]) for entry in entries] == seqs, "the stream must hold exactly one entry per receipt"
    assert [int(entry["user"]) for entry in entries] == [user for _, user in accepted]

    snapshot = await live.snapshot(terms.lot_id)
    assert snapshot is not None
    assert snapshot.seq == count
    assert snapshot.bid_count == count

    # The final state is what the rules give for the accepted bids in seq order.
    bids = [(user, receipt.amount_won, receipt.server_ms) for receipt, user in accepted]
    replayed = replay_bids(terms, bids)
    assert replayed.bid_count == count, "the rules must accept every bid the script accepted"
    assert snapshot.price_won == replayed.price_won
    assert snapshot.leader_id == replayed.leader_id
    leader_max = int(await live.redis.hget(live.keys.lot_state(terms.lot_id), "leader_max"))
    assert leader_max == replayed.leader_max_won

    # The leader has the highest maximum, the earliest one among equals.
    highest = max(amount for _, amount, _ in bids)
    assert leader_max == highest
    assert snapshot.leader_id == next(user for user, amount, _ in bids if amount == highest)

    # No accepted bid lowered the price; every challenger's bid raised it.
    price, leader = 0, None
    for entry in entries:
        new_price, user = int(entry["price"]), int(entry["user"])
        assert new_price >= price, f"seq {entry['seq']} lowered the price"
        if user != leader:
            assert new_price > price, f"challenger bid seq {entry['seq']} did not raise the price"
        price, leader = new_price, int(entry["leader"])

    for receipt, _ in accepted:
        assert receipt.server_ms < receipt.end_ms, f"seq {receipt.seq} was accepted at or after the end"
        assert receipt.server_ms >= terms.start_ms
    rejected = {outcome.code for outcome in outcomes if not outcome.accepted}
    assert rejected <= {"bid_too_low", "max_not_raised"}
    await check_auction_invariants(None, live, receipts=outcomes, lot_terms_by_id={terms.lot_id: terms})


async def _bid(live: AuctionLive, user: int, amount: int, client_id: str) -> BidOutcome:
    return await live.place_bid(
        LOT_ID, user_id=user, client_id=client_id, amount_won=amount, bidder_masked=f"김*{user}"
    )


async def test_concurrent_bids_one_client(live: AuctionLive) -> None:
    """500 concurrent bids through one AuctionLive keep seq, ledger, price and leader consistent."""
    terms = await _load(live)
    requests = _requests(seed=1)
    outcomes = await asyncio.gather(
        *(_bid(live, user, amount, f"r{number}") for number, (user, amount) in enumerate(requests))
    )
    await _check_invariants(live, terms, requests, outcomes)


@pytest.mark.parametrize("max_batch", [512, 7], ids=["large batches", "small batches"])
async def test_concurrent_bids_two_clients(
    live: AuctionLive, keys: Keys, redis_url: str, max_batch: int, make_batcher: Any
) -> None:
    """500 concurrent bids through two AuctionLive instances on separate connections keep the invariants."""
    terms = await _load(live)
    other_client = redis.asyncio.Redis.from_url(redis_url)
    try:
        first = AuctionLive(live.redis, keys, batcher=make_batcher(live.redis, max_batch=max_batch))
        second = AuctionLive(other_client, keys, batcher=make_batcher(other_client, max_batch=max_batch))
        requests = _requests(seed=2)
        outcomes = await asyncio.gather(
            *(
                _bid(first if number % 2 else second, user, amount, f"r{number}")
                for number, (user, amount) in enumerate(requests)
            )
        )
    finally:
        await other_client.aclose()
    await _check_invariants(live, terms, requests, outcomes)


async def test_concurrent_bids_at_end(live: AuctionLive, keys: Keys, redis_url: str, make_batcher: Any) -> None:
    """Waves of concurrent bids around the end: nothing accepted at or after it, nothing rejected as ended before it."""
    terms = await _load(live, end_in_ms=300, window_s=0)
    other_client = redis.asyncio.Redis.from_url(redis_url)
    second = AuctionLive(other_client, keys, batcher=make_batcher(other_client))
    outcomes: list[BidOutcome] = []
    try:
        wave = 0
        while not any(outcome.code == "lot_ended" for outcome in outcomes):
            outcomes += await asyncio.gather(
                *(
                    _bid(live if user % 2 else second, user, 1_000 + (wave * BIDDERS + user) * 100, f"w{wave}u{user}")
                    for user in range(1, BIDDERS + 1)
                )
            )
            wave += 1
    finally:
        await other_client.aclose()

    accepted = [outcome.receipt for outcome in outcomes if outcome.receipt is not None]
    assert accepted, "no bid was accepted before the end"
    assert all(receipt.end_ms == terms.end_ms for receipt in accepted)
    for receipt in accepted:
        assert receipt.server_ms < terms.end_ms
    for outcome in outcomes:
        assert outcome.snapshot is not None
        if outcome.code == "lot_ended":
            assert outcome.snapshot.server_ms >= terms.end_ms
        elif not outcome.accepted:
            assert outcome.snapshot.server_ms < terms.end_ms
    entries = await _stream_entries(live, LOT_ID)
    assert len(entries) == len(accepted)
    await check_auction_invariants(None, live, receipts=outcomes, lot_terms_by_id={LOT_ID: terms})


# -- ScriptBatcher -----------------------------------------------------------------------


async def test_batcher_sends_concurrent_calls_in_one_pipeline(
    redis_client: redis.asyncio.Redis, keys: Keys, make_batcher: Any
) -> None:
    """Calls issued in one event-loop pass share one pipeline; awaited one by one, each gets its own."""
    batcher = make_batcher(redis_client, max_batch=512)
    live = AuctionLive(redis_client, keys, batcher=batcher)
    terms = await _load(live)
    batcher.pipelines.clear()

    outcomes = await asyncio.gather(*(_bid(live, user, 1_000 * user, f"g{user}") for user in range(1, 101)))
    assert batcher.pipelines == [100]
    assert all(outcome.accepted for outcome in outcomes)

    batcher.pipelines.clear()
    for user in range(1, 4):
        outcomes.append(await _bid(live, user, 200_000 * user, f"s{user}"))
    assert batcher.pipelines == [1, 1, 1]
    await check_auction_invariants(None, live, receipts=outcomes, lot_terms_by_id={LOT_ID: terms})


async def test_batcher_splits_at_max_batch(
    redis_client: redis.asyncio.Redis, keys: Keys, make_batcher: Any
) -> None:
    """More concurrent calls than max_batch go out as several pipelines, each call once."""
    batcher = make_batcher(redis_client, max_batch=32)
    live = AuctionLive(redis_client, keys, batcher=batcher)
    terms = await _load(live)
    batcher.pipelines.clear()
    outcomes = await asyncio.gather(*(_bid(live, user, 1_000 * user, f"g{user}") for user in range(1, 101)))
    assert sum(batcher.pipelines) == 100
    assert max(batcher.pipelines) <= 32
    assert sorted(outcome.receipt.seq for outcome in outcomes if outcome.receipt) == list(range(1, 101))
    await check_auction_invariants(None, live, receipts=outcomes, lot_terms_by_id={LOT_ID: terms})


async def test_batcher_isolates_failing_call(live: AuctionLive, keys: Keys) -> None:
    """A call that fails inside Redis raises for its caller only; its neighbours in the pipeline succeed."""
    terms = await _load(live)
    failing = Script("return redis.error_reply('ERR broken on purpose')")
    results = await asyncio.gather(
        _bid(live, 1, 5_000, "before"),
        live.batcher.run(failing, (keys.lot_state(LOT_ID),), ()),
        _bid(live, 2, 6_000, "after"),
        return_exceptions=True,
    )
    assert isinstance(results[1], redis.ResponseError)
    assert "broken on purpose" in str(results[1])
    assert [result.receipt.seq for result in (results[0], results[2])] == [1, 2]  # type: ignore[union-attr]
    await check_auction_invariants(None, live, receipts=[results[0], results[2]], lot_terms_by_id={LOT_ID: terms})


async def test_batcher_sends_commands_with_scripts(
    redis_client: redis.asyncio.Redis, keys: Keys, make_batcher: Any
) -> None:
    """Plain commands and script calls of one event-loop pass share one pipeline and get their own replies."""
    batcher = make_batcher(redis_client, max_batch=512)
    live = AuctionLive(redis_client, keys, batcher=batcher)
    await _load(live)
    counter = f"{keys.prefix}:counter"
    await redis_client.set(f"{keys.prefix}:greeting", b"hello")
    batcher.pipelines.clear()

    results = await asyncio.gather(
        *(batcher.command("INCR", counter) for _ in range(20)),
        *(_bid(live, user, 1_000 * user, f"c{user}") for user in range(1, 11)),
        batcher.command("GETEX", f"{keys.prefix}:greeting", "EX", 60),
    )
    assert batcher.pipelines == [31]
    assert sorted(results[:20]) == list(range(1, 21))
    assert all(outcome.accepted for outcome in results[20:30])
    assert results[30] == b"hello"
    assert 0 < await redis_client.ttl(f"{keys.prefix}:greeting") <= 60


# -- NOSCRIPT recovery on a private server -------------------------------------------------


@pytest.mark.slow
async def test_noscript_retries_only_missing_calls(private_client: redis.asyncio.Redis, make_batcher: Any) -> None:
    """After SCRIPT FLUSH, calls that hit NOSCRIPT are loaded and sent again; every call applies exactly once."""
    keys = Keys("jtt-private", 4)
    batcher = make_batcher(private_client, max_batch=512)
    live = AuctionLive(private_client, keys, batcher=batcher)

    # A fresh server has no script loaded, so the load fails with NOSCRIPT and is sent again.
    terms = await _load(live)
    assert batcher.pipelines == [1, 1]
    await _bid(live, 1, 1_000, "opening")

    # Only the bid script is known: the loads of lots 2 and 3 hit NOSCRIPT, the bids run at once.
    await private_client.script_flush()
    await private_client.script_load(BID_SCRIPT.source)
    batcher.pipelines.clear()
    other_lots = [lot_load(terms.__class__(**{**terms.__dict__, "lot_id": lot_id})) for lot_id in (2, 3)]
    results = await asyncio.gather(
        *(_bid(live, user, 1_000 + 500 * user, f"mixed{user}") for user in range(2, 22)),
        *(live.load(lot) for lot in other_lots),
    )
    assert batcher.pipelines == [22, 2]
    assert results[-2:] == [True, True], "each load must run exactly once"
    mixed_outcomes: list[BidOutcome] = list(results[:-2])

    # Nothing known: the whole batch is sent again once.
    await private_client.script_flush()
    batcher.pipelines.clear()
    flushed_outcomes = await asyncio.gather(
        *(_bid(live, user, 50_000 + 1_000 * user, f"flushed{user}") for user in range(1, 31))
    )
    assert batcher.pipelines == [30, 30]

    # A plain command in a batch that hits NOSCRIPT ran once and is not sent again.
    await private_client.script_flush()
    batcher.pipelines.clear()
    counter = f"{keys.prefix}:counter"
    mixed = await asyncio.gather(
        *(batcher.command("INCR", counter) for _ in range(5)),
        *(_bid(live, user, 200_000 + 10_000 * user, f"after-flush{user}") for user in range(1, 4)),
    )
    assert batcher.pipelines == [8, 3]
    assert sorted(mixed[:5]) == [1, 2, 3, 4, 5]
    assert await private_client.get(counter) == b"5"
    flushed_outcomes.extend(mixed[5:])

    outcomes = [*mixed_outcomes, *flushed_outcomes]
    assert all(outcome.accepted for outcome in outcomes)
    seqs = sorted(outcome.receipt.seq for outcome in outcomes if outcome.receipt)
    assert seqs == list(range(2, 2 + len(outcomes)))
    assert not any(outcome.receipt.retry for outcome in outcomes if outcome.receipt)
    entries = await _stream_entries(live, LOT_ID)
    assert [int(entry["seq"]) for entry in entries] == list(range(1, 2 + len(outcomes)))
    for lot_id in (2, 3):
        assert await private_client.hget(keys.lot_state(lot_id), "lot_id") == str(lot_id).encode()
    await check_auction_invariants(None, live, receipts=outcomes, lot_terms_by_id={LOT_ID: terms})

"""The worker loops: one bad lot, order or round never stops the others."""

from __future__ import annotations

import asyncio
import logging

from engine.auction.ledger import LedgerConsumer
from workers.loops import Closer, FailureBackoff, UnpaidCanceller, keep_running, run_every
from worker_testkit import FINAL, bid_three, wait_until_due


async def close_rounds(closer: Closer, consumer: LedgerConsumer, lot_ids: list[int], rounds: int = 20) -> dict[int, str]:
    """Run closer rounds, draining the ledger between them, until the lots are final or the rounds run out."""
    statuses: dict[int, str] = {}
    for _ in range(rounds):
        await closer.round()
        await consumer.drain()
        rows = await closer.db.fetch("SELECT id, status FROM lots WHERE id = ANY($1::bigint[])", lot_ids)
        statuses = {row["id"]: row["status"] for row in rows}
        if all(status in FINAL for status in statuses.values()):
            break
    return statuses


async def fail_updates_of(db, table: str, row_id: int) -> None:  # type: ignore[no-untyped-def]
    """Make every UPDATE of one row of `table` raise, as a stand-in for a lot or order that cannot be written."""
    await db.execute(
        f"""CREATE FUNCTION fail_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'test: % % cannot be updated', TG_TABLE_NAME, OLD.id; END $$;
            CREATE TRIGGER fail_{table} BEFORE UPDATE ON {table}
            FOR EACH ROW WHEN (OLD.id = {int(row_id)}) EXECUTE FUNCTION fail_{table}()"""
    )


async def test_close_with_unsendable_bidder_address(db, live, wk_settings, consumer, market):
    """A bidder whose stored address the outbox cannot send to does not stop the lot's close; that mail is skipped."""
    lot_id = await market.lot()
    a, b, c = await bid_three(market, lot_id)
    # An address stored before the CHECK constraint existed.
    await db.execute("ALTER TABLE users DROP CONSTRAINT users_email_plain")
    await db.execute("UPDATE users SET email = 'x\"y@example.com' WHERE id = $1", a.user_id)
    await wait_until_due(live, lot_id)
    closer = Closer(db, live, wk_settings)

    statuses = await close_rounds(closer, consumer, [lot_id])

    assert statuses == {lot_id: "sold"}
    recipients = {row["recipient"] for row in await db.fetch("SELECT recipient FROM outbox")}
    assert recipients == {market.emails[b.user_id], market.emails[c.user_id], await market.supplier_email()}


async def test_closer_goes_on_past_failing_lot(db, live, wk_settings, consumer, market, caplog):
    """A lot whose close raises is logged and backs off, while the other due lot closes in the same rounds."""
    bad_lot, good_lot = await market.lot(), await market.lot()
    await bid_three(market, bad_lot)
    await bid_three(market, good_lot)
    await fail_updates_of(db, "lots", bad_lot)
    await wait_until_due(live, bad_lot)
    await wait_until_due(live, good_lot)
    backoff = FailureBackoff(base_s=3600.0)
    closer = Closer(db, live, wk_settings, backoff=backoff)

    statuses = await close_rounds(closer, consumer, [good_lot], rounds=5)

    assert statuses == {good_lot: "sold"}
    assert await db.fetchval("SELECT status FROM lots WHERE id = $1", bad_lot) == "open"
    assert backoff.failures(bad_lot) == 1
    assert not backoff.ready(bad_lot)
    assert f"lot close failed lot_id={bad_lot} failures=1" in caplog.text

    await db.execute("DROP TRIGGER fail_lots ON lots")
    backoff.succeeded(bad_lot)
    assert await close_rounds(closer, consumer, [bad_lot]) == {bad_lot: "sold"}
    assert backoff.failures(bad_lot) == 0


async def test_canceller_goes_on_past_failing_order(db, live, wk_settings, consumer, market, caplog):
    """An unpaid order whose cancellation raises is logged and backs off; the other lapsed order is cancelled."""
    lots = [await market.lot(), await market.lot()]
    for lot_id in lots:
        await bid_three(market, lot_id)
    for lot_id in lots:
        await wait_until_due(live, lot_id)
    await close_rounds(Closer(db, live, wk_settings), consumer, lots)
    await db.execute("UPDATE orders SET payment_due_at = now() - interval '1 second'")
    bad_order, good_order = [row["id"] for row in await db.fetch("SELECT id FROM orders ORDER BY id")]
    await fail_updates_of(db, "orders", bad_order)
    canceller = UnpaidCanceller(db)

    assert await canceller.round() == 1

    statuses = dict(await db.fetch("SELECT id, status FROM orders"))
    assert statuses == {bad_order: "awaiting_payment", good_order: "cancelled"}
    assert canceller.backoff.failures(bad_order) == 1
    assert f"order cancel failed order_id={bad_order} failures=1" in caplog.text
    assert await canceller.round() == 0
    assert canceller.backoff.failures(bad_order) == 1


async def test_run_every_survives_unexpected_error(caplog):
    """A round that raises an unexpected error is logged with its traceback and the loop runs the next round."""
    stop = asyncio.Event()
    calls = 0

    async def work() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyError("boom")
        stop.set()

    with caplog.at_level(logging.ERROR, logger="jangteo.worker"):
        await run_every("test", 0.01, stop, work)

    assert calls == 2
    assert "loop round failed unexpectedly loop=test failures=1" in caplog.text
    assert "KeyError" in caplog.text


async def test_keep_running_restarts_crashed_loop(caplog):
    """A long-running loop that crashes is logged and started again until it returns."""
    stop = asyncio.Event()
    starts = 0

    async def loop() -> None:
        nonlocal starts
        starts += 1
        if starts < 3:
            raise RuntimeError("crashed")

    with caplog.at_level(logging.ERROR, logger="jangteo.worker"):
        await keep_running("test", stop, loop, max_delay_s=0.01)

    assert starts == 3
    assert caplog.text.count("loop crashed, restarting loop=test") == 2

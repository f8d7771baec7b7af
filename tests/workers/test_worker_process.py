"""`python -m workers` as real processes: two side by side, one killed, lots still close once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from engine.config import PROJECT_ROOT

from worker_testkit import bid_three, counts, wait_until_due

pytestmark = pytest.mark.slow


def start_worker(wk_settings, smtp_url: str) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    env = {
        **os.environ,
        "DATABASE_URL": wk_settings.database_url,
        "REDIS_URL": wk_settings.redis_url,
        "SMTP_URL": smtp_url,
        "REDIS_PREFIX": wk_settings.redis_prefix,
        "LEDGER_GAP_GRACE_S": "3600",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "workers"], cwd=PROJECT_ROOT, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


async def wait_for_status(db, live, lot_id: int, status: str) -> None:  # type: ignore[no-untyped-def]
    while True:
        snapshot = await live.snapshot(lot_id)
        stored = await db.fetchval("SELECT status FROM lots WHERE id = $1", lot_id)
        if stored == status and snapshot is not None and snapshot.status == status:
            return
        await asyncio.sleep(0.05)


async def test_workers_close_lots_once_despite_kill(db, live, wk_settings, market, smtp_sink):
    """Two workers close lots once each; after one is killed the other closes the next lot and stops on SIGTERM."""
    first_lot = await market.lot(duration_s=2)
    await bid_three(market, first_lot)
    first = start_worker(wk_settings, smtp_sink.url)
    second = start_worker(wk_settings, smtp_sink.url)
    try:
        await wait_until_due(live, first_lot)
        await wait_for_status(db, live, first_lot, "sold")
        await smtp_sink.wait_for(4)
        # A row whose sender is killed between the SMTP server's acceptance and the commit
        # is sent again by another sender (at least once), so the kill waits for every commit.
        while await db.fetchval("SELECT count(*) FROM outbox WHERE status <> 'sent'"):
            await asyncio.sleep(0.05)

        first.send_signal(signal.SIGKILL)
        first.wait()
        second_lot = await market.lot(duration_s=1)
        await bid_three(market, second_lot)
        await wait_until_due(live, second_lot)
        await wait_for_status(db, live, second_lot, "sold")
        await smtp_sink.wait_for(8)
        while await db.fetchval("SELECT count(*) FROM outbox WHERE status <> 'sent'"):
            await asyncio.sleep(0.05)
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.to_thread(second.wait)
        first.wait()
        log_text = second.stderr.read().decode() if second.stderr else ""
        for process in (first, second):
            if process.stderr:
                process.stderr.close()

    assert exit_code == 0, log_text
    assert "worker stopped" in log_text
    for lot_id in (first_lot, second_lot):
        assert await counts(db, lot_id) == {"sales": 1, "orders": 1, "commissions": 1, "mails": 4}
    # One message per outbox row: the Message-ID names the row.
    message_ids = [m.message["Message-ID"] for m in smtp_sink.messages]
    assert len(message_ids) == 8
    assert len(set(message_ids)) == 8

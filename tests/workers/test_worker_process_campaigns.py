"""`python -m workers` as real processes: one is killed inside a campaign's close, and each close counts once.

The kill lands before the close writes anything. A closer that dies between its
commit and the Redis settle is covered in-process by
`test_groupbuy_closing.test_close_finishes_after_closer_died`.
"""

from __future__ import annotations

import asyncio
import email.policy
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import cast

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from embedded.common import LOOPBACK, find_free_port
from engine.actors import Actor
from engine.config import PROJECT_ROOT, Settings
from engine.groupbuy.live import PledgeReceipt
from engine.groupbuy.payments import confirm_pledge_deposit, record_up_front_payment
from engine.outbox import OutboxSender
from groupbuy_testkit import FINAL, campaign_counts, campaigns, make_campaign, pledge
from invariants import MESSAGE_ID, check_campaign_invariants

__all__ = ["campaigns"]  # fixture

pytestmark = pytest.mark.slow

AT_MOST_WON = 9_000  # the price at the minimum total of 5 units (groupbuy_testkit.TIERS)
CLOSE_LOG_LINE = "campaign closed campaign_id="


# -- an SMTP sink that can defer mail --------------------------------------------------


@dataclass
class GatedSmtpSink:
    """An SMTP server on 127.0.0.1 that keeps accepted messages, or replies 451 while `accepting` is False.

    A sender killed after the server accepted a message but before it marked the
    outbox row sent sends that row again (at least once, by design of
    `engine.outbox`). The test defers mail around the kill so that every message in
    `messages` counts one delivery the outbox recorded.
    """

    url: str
    accepting: bool = True
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not self.accepting:
            return "451 4.3.0 Delivery deferred by the test, try again later"
        content = envelope.original_content or b""
        self.messages.append(cast(EmailMessage, BytesParser(policy=email.policy.default).parsebytes(content)))
        return "250 Message accepted for delivery"


@pytest.fixture
def gated_sink() -> Iterator[GatedSmtpSink]:
    port = find_free_port()
    sink = GatedSmtpSink(url=f"smtp://{LOOPBACK}:{port}")
    controller = Controller(sink, hostname=LOOPBACK, port=port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


# -- worker processes ------------------------------------------------------------------


@dataclass
class Worker:
    """One `python -m workers` process whose log (stderr) goes to `log_path`."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def logged_close(self, campaign_id: int) -> bool:
        """Return whether this worker logged the campaign's close, which it logs inside the close's transaction."""
        return f"{CLOSE_LOG_LINE}{campaign_id} " in self.log_text()

    def stop(self) -> int:
        """Send SIGTERM and return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait()


def start_worker(settings: Settings, smtp_url: str, log_dir: Path, name: str) -> Worker:
    """Start a worker whose PostgreSQL sessions carry `application_name` `worker-NAME`."""
    assert settings.database_url is not None
    env = {
        **os.environ,
        # asyncpg passes query parameters it does not know on as server settings.
        "DATABASE_URL": f"{settings.database_url}?application_name=worker-{name}",
        "REDIS_URL": settings.redis_url,
        "SMTP_URL": smtp_url,
        "REDIS_PREFIX": settings.redis_prefix,
        "LEDGER_GAP_GRACE_S": "3600",
    }
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers"], cwd=PROJECT_ROOT, env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log_file,
        )
    return Worker(name, process, log_path)


async def poll_until(condition: Callable[[], Awaitable[bool]], running: list[Worker], waiting_for: str) -> None:
    """Poll `condition` until it is true, and fail at once if a worker in `running` exits.

    Only pytest's timeout bounds the wait.
    """
    while not await condition():
        for worker in running:
            if worker.process.poll() is not None:
                raise AssertionError(
                    f"worker {worker.name} exited with {worker.process.returncode} while waiting for {waiting_for}:\n"
                    f"{worker.log_text()[-4000:]}"
                )
        await asyncio.sleep(0.02)


# -- the market ------------------------------------------------------------------------


@dataclass
class Participant:
    member: Actor
    units: int
    receipt: PledgeReceipt
    pay: str | None = None  # the up-front bank transfer: None, "confirmed" or "unconfirmed"
    payment_id: int | None = None


async def join(  # type: ignore[no-untyped-def]
    market, campaigns, campaign_id: int, units: int, *, pay: str | None = None
) -> Participant:
    """Pledge `units` as a new member, with the up-front bank transfer `pay` ("confirmed" or "unconfirmed")."""
    member = await market.member()
    receipt = await pledge(market, campaigns, campaign_id, member, units)
    participant = Participant(member, units, receipt, pay)
    if pay is not None:
        participant.payment_id = await record_up_front_payment(
            market.db, campaign_id, member.user_id, units, units * AT_MOST_WON
        )
        if pay == "confirmed":
            await confirm_pledge_deposit(market.db, participant.payment_id, market.staff)
    return participant


async def campaign_settled(db, campaigns, campaign_id: int) -> bool:  # type: ignore[no-untyped-def]
    """Return whether the campaign is final in PostgreSQL and Redis has the same status."""
    status = await db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id)
    snapshot = await campaigns.snapshot(campaign_id)
    return status in FINAL and snapshot is not None and snapshot.status == status


async def outbox_sent(db) -> bool:  # type: ignore[no-untyped-def]
    return await db.fetchval("SELECT count(*) FROM outbox WHERE status <> 'sent'") == 0


async def kill_worker_mid_close(  # type: ignore[no-untyped-def]
    db, settings: Settings, sink: GatedSmtpSink, log_dir: Path, started: list[Worker], campaign_id: int
) -> tuple[Worker, str]:
    """Start two workers and SIGKILL the one inside the campaign's close; return it and the campaign's status then.

    The test holds a lock on the campaign's payments, so the worker that takes the
    campaign row lock first stops inside its close transaction, after reading the
    pledges and before writing any order. Its PostgreSQL session rolls back once the
    lock is released and it finds its client gone.
    """
    async with db.acquire() as blocker:
        async with blocker.transaction():
            await blocker.execute("SELECT id FROM pledge_payments WHERE campaign_id = $1 FOR UPDATE", campaign_id)
            blocker_pid = await blocker.fetchval("SELECT pg_backend_pid()")
            started.extend(start_worker(settings, sink.url, log_dir, name) for name in ("first", "second"))
            blocked: list[str] = []

            async def worker_blocked() -> bool:
                blocked[:] = [row["application_name"] for row in await db.fetch(
                    "SELECT application_name FROM pg_stat_activity"
                    " WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE '%FROM pledge_payments%'",
                    blocker_pid,
                )]
                return bool(blocked)

            await poll_until(worker_blocked, started, f"a worker to stop inside the close of campaign {campaign_id}")
            killed = next(worker for worker in started if f"worker-{worker.name}" in blocked)
            killed.process.send_signal(signal.SIGKILL)
            killed.process.wait()
            status = await db.fetchval("SELECT status FROM campaigns WHERE id = $1", campaign_id)
    return killed, status


# -- the test --------------------------------------------------------------------------


async def test_workers_close_campaigns_once_despite_kill(db, campaigns, wk_settings, market, gated_sink, tmp_path):
    """Two workers close four campaigns, one is killed inside a close, and every result is recorded once."""
    # Two after-success campaigns: 12 units reach the 8,000 won tier, 6 units only the minimum's 9,000.
    tier = await make_campaign(market, campaigns, duration_s=5)
    tier_people = [await join(market, campaigns, tier, units) for units in (4, 3, 5)]
    minimum = await make_campaign(market, campaigns, duration_s=5)
    minimum_people = [await join(market, campaigns, minimum, units) for units in (3, 3)]
    # Up front at 9,000 won a unit, closing at 8,000: the two confirmed deposits get 1,000 won a
    # unit back, the unconfirmed one gets an order to pay by bank transfer.
    up_front = await make_campaign(market, campaigns, duration_s=5.5, payment_timing="up_front")
    up_front_people = [
        await join(market, campaigns, up_front, 4, pay="confirmed"),
        await join(market, campaigns, up_front, 6, pay="confirmed"),
        await join(market, campaigns, up_front, 2, pay="unconfirmed"),
    ]
    # 3 units miss the minimum of 5: the confirmed deposit is refunded in full, the other expires.
    failing = await make_campaign(market, campaigns, duration_s=6, payment_timing="up_front")
    failing_people = [
        await join(market, campaigns, failing, 2, pay="confirmed"),
        await join(market, campaigns, failing, 1, pay="unconfirmed"),
    ]
    first_round = (tier, minimum, up_front, failing)

    # The payment mails go out now, and then the sink defers mail until the kill is over.
    test_sender = OutboxSender(db, smtp_url=gated_sink.url, mail_from=wk_settings.mail_from)
    # Five payments requested, three of them confirmed.
    assert await test_sender.send_due() == 8
    gated_sink.accepting = False

    started: list[Worker] = []
    try:
        killed, status_at_kill = await kill_worker_mid_close(db, wk_settings, gated_sink, tmp_path, started, up_front)
        survivor = next(worker for worker in started if worker is not killed)
        gated_sink.accepting = True

        async def first_round_done() -> bool:
            for campaign_id in first_round:
                if not await campaign_settled(db, campaigns, campaign_id):
                    return False
            return await outbox_sent(db)

        await poll_until(first_round_done, [survivor], "the survivor to close every campaign and send every mail")
        survivor_exit = survivor.stop()

        # A restarted worker closes a new campaign and leaves the closed ones as they are.
        late = await make_campaign(market, campaigns, duration_s=2)
        late_people = [await join(market, campaigns, late, 5)]
        restarted = start_worker(wk_settings, gated_sink.url, tmp_path, "restarted")
        started.append(restarted)

        async def late_round_done() -> bool:
            return await campaign_settled(db, campaigns, late) and await outbox_sent(db)

        await poll_until(late_round_done, [restarted], "the restarted worker to close the new campaign")
        restarted_exit = restarted.stop()
    finally:
        for worker in started:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGKILL)
                worker.process.wait()

    assert killed.process.returncode == -signal.SIGKILL
    # The killed close never committed: the survivor closed the campaign.
    assert status_at_kill == "open"
    assert not killed.logged_close(up_front)
    assert survivor.logged_close(up_front)
    assert survivor_exit == 0, survivor.log_text()
    assert "worker stopped" in survivor.log_text()
    assert restarted_exit == 0, restarted.log_text()
    assert "worker stopped" in restarted.log_text()

    statuses = dict(await db.fetch("SELECT id, status FROM campaigns"))
    assert statuses == {tier: "succeeded", minimum: "succeeded", up_front: "succeeded", failing: "failed",
                        late: "succeeded"}
    everyone = [*tier_people, *minimum_people, *up_front_people, *failing_people, *late_people]
    await check_campaign_invariants(db, campaigns, receipts=[p.receipt for p in everyone],
                                    sink_messages=gated_sink.messages)

    # The pledge ledger contains every seq up to the close, which is also Redis's last seq.
    for campaign_id in (*first_round, late):
        events = await db.fetch("SELECT seq, kind FROM pledge_events WHERE campaign_id = $1 ORDER BY seq",
                                campaign_id)
        final_seq = await db.fetchval("SELECT final_seq FROM campaigns WHERE id = $1", campaign_id)
        snapshot = await campaigns.snapshot(campaign_id)
        assert snapshot is not None
        assert [e["seq"] for e in events] == list(range(1, final_seq + 1))
        assert events[-1]["kind"] == "close"
        assert snapshot.seq == final_seq

    # One order per pledge at the final tier price, with one sale and one commission each.
    orders = {
        (row["campaign_id"], row["buyer_id"]): (row["units"], row["unit_price_won"], row["amount_won"], row["status"])
        for row in await db.fetch("SELECT * FROM orders")
    }
    expected_orders = {}
    for campaign_id, people, price_won in (
        (tier, tier_people, 8_000), (minimum, minimum_people, 9_000), (up_front, up_front_people, 8_000),
        (late, late_people, 9_000),
    ):
        for person in people:
            # A confirmed deposit at the "at most" price covers the order.
            status = "paid" if person.pay == "confirmed" else "awaiting_payment"
            expected_orders[(campaign_id, person.member.user_id)] = (
                person.units, price_won, person.units * price_won, status,
            )
    assert orders == expected_orders
    assert await db.fetchval("SELECT count(*) FROM orders WHERE campaign_id = $1", failing) == 0
    for campaign_id, people in ((tier, tier_people), (minimum, minimum_people), (up_front, up_front_people),
                                (late, late_people)):
        counted = await campaign_counts(db, campaign_id)
        assert counted["orders"] == len(people)
        assert counted["commissions"] == len(people)

    # Refunds: the failed campaign's confirmed deposit in full, the up-front differences, nothing else.
    refunds = sorted(
        (row["source_key"], row["user_id"], row["amount_won"], row["reason"])
        for row in await db.fetch("SELECT * FROM refunds")
    )
    assert refunds == sorted([
        (f"pledge_payment:{failing_people[0].payment_id}:refund", failing_people[0].member.user_id,
         2 * AT_MOST_WON, "campaign_failed"),
        (f"campaign:{up_front}:user:{up_front_people[0].member.user_id}:difference",
         up_front_people[0].member.user_id, 4 * 1_000, "price_difference"),
        (f"campaign:{up_front}:user:{up_front_people[1].member.user_id}:difference",
         up_front_people[1].member.user_id, 6 * 1_000, "price_difference"),
    ])
    payments = dict(await db.fetch("SELECT id, status FROM pledge_payments"))
    assert payments == {
        up_front_people[0].payment_id: "settled",
        up_front_people[1].payment_id: "settled",
        up_front_people[2].payment_id: "awaiting_deposit",
        failing_people[0].payment_id: "refunded",
        failing_people[1].payment_id: "expired",
    }
    # Each difference is in the money ledger once as received beyond the sale and once as paid back.
    for person in up_front_people[:2]:
        entries = dict(await db.fetch(
            "SELECT m.entry, count(*) FROM money_ledger m JOIN orders o ON o.id = m.order_id"
            " WHERE o.campaign_id = $1 AND o.buyer_id = $2 GROUP BY m.entry",
            up_front, person.member.user_id,
        ))
        assert entries == {"sale": 1, "commission": 1, "overpayment": 1, "refund": 1}

    # Exactly one mail per participant per outcome, and one per campaign to the supplier.
    outbox = {row["id"]: row for row in await db.fetch("SELECT id, event_key, recipient FROM outbox")}
    delivered_ids = [int(MESSAGE_ID.search(str(message["Message-ID"])).group(1))  # type: ignore[union-attr]
                     for message in gated_sink.messages]
    assert len(delivered_ids) == len(set(delivered_ids))
    delivered = Counter((outbox[i]["event_key"], outbox[i]["recipient"]) for i in delivered_ids)
    supplier_email = await market.supplier_email()
    expected_mail: Counter[tuple[str, str]] = Counter()
    for campaign_id, people, outcome in (
        (tier, tier_people, "succeeded"), (minimum, minimum_people, "succeeded"),
        (up_front, up_front_people, "succeeded"), (failing, failing_people, "failed"), (late, late_people, "succeeded"),
    ):
        expected_mail[(f"campaign:{campaign_id}:supplier", supplier_email)] += 1
        for person in people:
            expected_mail[(f"campaign:{campaign_id}:{outcome}", market.emails[person.member.user_id])] += 1
    for person in (*up_front_people, *failing_people):
        expected_mail[(f"pledge_payment:{person.payment_id}:requested", market.emails[person.member.user_id])] += 1
    for person in (up_front_people[0], up_front_people[1], failing_people[0]):
        expected_mail[(f"pledge_payment:{person.payment_id}:paid", market.emails[person.member.user_id])] += 1
    assert delivered == expected_mail

    # The mails state each refund once, as recorded.
    bodies = {
        (outbox[i]["event_key"], outbox[i]["recipient"]): message.get_content()
        for i, message in zip(delivered_ids, gated_sink.messages)
    }
    assert "18,000원은 전액 환불됩니다" in bodies[
        (f"campaign:{failing}:failed", market.emails[failing_people[0].member.user_id])
    ]
    assert "환불" not in bodies[(f"campaign:{failing}:failed", market.emails[failing_people[1].member.user_id])]
    for person, refund in ((up_front_people[0], "4,000원"), (up_front_people[1], "6,000원")):
        assert f"차액 {refund}" in bodies[(f"campaign:{up_front}:succeeded", market.emails[person.member.user_id])]

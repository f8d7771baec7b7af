"""Fan-out: one lot, N watchers in one server process, one bid at a time or back to back.

For each target (the bare `websockets` broadcast, python-socketio, Jangteo's hub)
the same watcher clients connect through a real server, then:

- latency: `triggers` bids, spaced `spacing_s` apart; for each, the time from just
  before the bid script is called to the moment the last reading watcher has the
  message. p50 and p99 are over triggers.
- throughput: `burst` bids back to back; deliveries/s is burst x watchers divided by
  the time from the first bid to the last arrival (a watcher of the hub that is
  behind may get several states in one message, as designed; it counts as having
  them all once the last message arrives).
- stall (optional): one watcher stops reading, then the latency phase runs again.

The bid is a real `AuctionLive.place_bid` on the benchmark's Redis, so the message
leaves Redis pub/sub exactly as in production. For python-socketio the benchmark
process then emits the bid's snapshot to the room through a write-only
`AsyncRedisManager`, as a bid handler in another process would.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from bench.bidload import BASE_AMOUNT_WON, STEP_AMOUNT_WON, bench_keys
from bench.services import ClientProcess, ServerProcess, start_client
from bench.stats import percentile
from engine.auction.live import AuctionLive

CLIENT_PROCESSES = 2


@dataclass
class FanoutPlan:
    watchers: int
    triggers: int
    spacing_s: float
    burst: int
    stall: bool = False


class BidTrigger:
    """Places real bids on one lot; optionally emits each accepted snapshot to a socket.io room."""

    def __init__(self, redis_url: str, lot_id: int, emit: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> None:
        self.redis = Redis.from_url(redis_url)
        self.live = AuctionLive(self.redis, bench_keys())
        self.lot_id = lot_id
        self.emit = emit
        self._counter = itertools.count(1)

    async def fire(self) -> int:
        """Place one bid; return the monotonic time (ns) taken just before the script call."""
        n = next(self._counter)
        started_ns = time.monotonic_ns()
        outcome = await self.live.place_bid(
            self.lot_id, user_id=1000 + n % 2, client_id=f"f{started_ns}", amount_won=BASE_AMOUNT_WON + n * STEP_AMOUNT_WON,
            bidder_masked="관*자",
        )
        if not outcome.accepted:
            raise RuntimeError(f"fan-out trigger bid on lot {self.lot_id} was rejected: {outcome.code}")
        if self.emit is not None and outcome.snapshot is not None:
            await self.emit({"lot_id": self.lot_id, "seq": outcome.snapshot.seq, "price_won": outcome.snapshot.price_won})
        return started_ns

    async def close(self) -> None:
        await self.redis.aclose()


def _ask(clients: list[ClientProcess], command: str) -> list[dict[str, Any]]:
    for client in clients:
        client.send(command)
    return [client.read_message() for client in clients]


async def run_fanout(
    name: str,
    server: ServerProcess,
    plan: FanoutPlan,
    trigger: BidTrigger,
    *,
    path: str,
    protocol: str,
    origin: str,
) -> dict[str, Any]:
    per_process = [plan.watchers // CLIENT_PROCESSES] * CLIENT_PROCESSES
    per_process[0] += plan.watchers - sum(per_process)
    clients = [
        start_client("bench.clients.watchers", [
            "--port", str(server.port), "--path", path, "--count", str(count),
            "--protocol", protocol, "--origin", origin,
        ])
        for count in per_process
    ]
    try:
        ready = [client.read_message() for client in clients]
        if sum(message.get("ready", 0) for message in ready) != plan.watchers:
            raise RuntimeError(f"{name}: watchers did not all connect: {ready}")
        result: dict[str, Any] = {"target": name, "watchers": plan.watchers}
        await asyncio.sleep(0.5)
        result["latency"] = await _latency_phase(clients, plan, trigger)
        result["throughput"] = await _throughput_phase(clients, plan, trigger, server)
        if plan.stall:
            _ask(clients[:1], "stall 1")
            result["stalled_latency"] = await _latency_phase(clients, plan, trigger)
        for client in clients:
            client.quit(timeout_s=30)
        return result
    finally:
        for client in clients:
            client.kill()


async def _latency_phase(clients: list[ClientProcess], plan: FanoutPlan, trigger: BidTrigger) -> dict[str, Any]:
    _ask(clients, "arm")
    triggers_ns = []
    for _ in range(plan.triggers):
        triggers_ns.append(await trigger.fire())
        await asyncio.sleep(plan.spacing_s)
    reports = _ask(clients, "latency " + ",".join(str(t) for t in triggers_ns))
    last_watcher_ms = [max(values) / 1e6 for values in zip(*(report["per_trigger_max_ns"] for report in reports))]
    delivered = [sum(values) for values in zip(*(report["delivered"] for report in reports))]
    reading = sum(report["reading"] for report in reports)
    return {
        "triggers": plan.triggers,
        "last_watcher_p50_ms": round(percentile(last_watcher_ms, 0.50), 3),
        "last_watcher_p99_ms": round(percentile(last_watcher_ms, 0.99), 3),
        "delivery_p50_ms_per_process": [report["delivery"]["p50_ms"] for report in reports],
        "missed_deliveries": reading * plan.triggers - sum(delivered),
    }


async def _throughput_phase(
    clients: list[ClientProcess], plan: FanoutPlan, trigger: BidTrigger, server: ServerProcess
) -> dict[str, Any]:
    _ask(clients, "arm")
    cpu_before = server.cpu_s()
    first_ns = None
    for _ in range(plan.burst):
        started = await trigger.fire()
        first_ns = first_ns or started
    assert first_ns is not None
    # Wait until no message arrived for a whole poll interval.
    previous = -1
    counts: list[dict[str, Any]] = []
    while True:
        await asyncio.sleep(0.5)
        counts = _ask(clients, f"count {first_ns}")
        total = sum(count["count"] for count in counts)
        if total == previous:
            break
        previous = total
    last_ns = max(count["last_ns"] for count in counts)
    elapsed_s = (last_ns - first_ns) / 1e9
    return {
        "burst": plan.burst,
        "messages": previous,
        "drain_s": round(elapsed_s, 3),
        "deliveries_per_s": round(plan.burst * plan.watchers / elapsed_s, 1) if elapsed_s > 0 else None,
        "server_cpu_s": round(server.cpu_s() - cpu_before, 3),
    }

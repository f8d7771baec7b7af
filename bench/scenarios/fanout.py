"""Fan-out: one lot, N watchers in one server process, one bid at a time or back to back.

For each target (the bare `websockets` broadcast, python-socketio, Jangteo's hub)
the same watcher clients connect through a real server, then:

- latency: `triggers` bids, spaced `spacing_s` apart; for each, the time from just
  before the bid script is called to the moment the last reading watcher has the
  message. p50 and p99 are over triggers.
- throughput: `burst` bids back to back; deliveries/s is burst x (watchers that got
  the last bid) divided by the time from the first bid to the moment the last of them
  had it. A watcher of the hub that is behind may get several bids in one message,
  as designed; it counts as having them all once a message carries the last bid's
  sequence number. Watchers that were disconnected are reported, not counted.
- stall (optional, before the throughput phase): the latency phase runs once more as
  a reference, then one watcher stops reading and it runs again; the others'
  per-delivery p99 is compared. The stalled watcher stays stalled afterwards.

The bid is a real `AuctionLive.place_bid` on the benchmark's Redis, so the message
leaves Redis pub/sub exactly as in production. For python-socketio the benchmark
process then emits the bid's snapshot to the room through a write-only
`AsyncRedisManager`, as a bid handler in another process would.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.profiling import start_py_spy, summarize
from bench.bidload import BASE_AMOUNT_WON, STEP_AMOUNT_WON, bench_keys
from bench.services import ClientProcess, ServerProcess, start_client
from bench.stats import percentile
from engine.auction.live import AuctionLive

CLIENT_PROCESSES = 2
# The throughput phase gives up when no message arrived for this long (s).
DRAIN_QUIET_S = 5.0


@dataclass
class FanoutPlan:
    watchers: int
    triggers: int
    spacing_s: float
    burst: int
    stall: bool = False
    # Rounds of the stall comparison, each on a fresh server and fresh watchers. The
    # goal takes the median ratio, because identical rounds of the hub gave ratios
    # from 0.88 to 1.42 on this machine, with no garbage collection in either phase.
    stall_rounds: int = 1
    # Also run Jangteo on uvicorn's own websocket protocol (target "jangteo-asgi"),
    # which sends every message through ASGI, for the shared-frames speed-up.
    asgi_comparison: bool = False


class BidTrigger:
    """Places real bids on one lot; optionally emits each accepted snapshot to a socket.io room."""

    def __init__(self, redis_url: str, lot_id: int, emit: Callable[[dict[str, Any]], Awaitable[None]] | None = None) -> None:
        self.redis = Redis.from_url(redis_url)
        self.live = AuctionLive(self.redis, bench_keys())
        self.lot_id = lot_id
        self.emit = emit
        self._counter = itertools.count(1)

    async def fire(self) -> tuple[int, int]:
        """Place one bid; return the monotonic time (ns) taken just before the script call, and the bid's seq."""
        n = next(self._counter)
        started_ns = time.monotonic_ns()
        outcome = await self.live.place_bid(
            self.lot_id, user_id=1000 + n % 2, client_id=f"f{started_ns}", amount_won=BASE_AMOUNT_WON + n * STEP_AMOUNT_WON,
            bidder_masked="관*자",
        )
        if not outcome.accepted:
            raise RuntimeError(f"fan-out trigger bid on lot {self.lot_id} was rejected: {outcome.code}")
        assert outcome.receipt is not None
        if self.emit is not None and outcome.snapshot is not None:
            await self.emit({"lot_id": self.lot_id, "seq": outcome.snapshot.seq, "price_won": outcome.snapshot.price_won})
        return started_ns, outcome.receipt.seq

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
    profile: bool = False,
) -> dict[str, Any]:
    """Run the phases against `server`; with `profile`, sample it with py-spy during the latency phase."""
    clients = _start_watchers(server, plan, path=path, protocol=protocol, origin=origin)
    try:
        await _wait_ready(name, clients, plan)
        result: dict[str, Any] = {"target": name, "watchers": plan.watchers}
        sampler = None
        raw_profile = Path(tempfile.gettempdir()) / f"jangteo-bench-fanout-profile-{server.port}.txt"
        if profile:
            sampler = start_py_spy(server.process.pid, plan.triggers * plan.spacing_s, raw_profile)
        result["latency"] = await _latency_phase(clients, plan, trigger)
        if sampler is not None:
            sampler.wait(timeout=60)
            result["profile"] = summarize(raw_profile) if raw_profile.exists() else {"error": "py-spy wrote no output"}
        if plan.stall:
            # A reference right before the stall, so both phases see the same machine load.
            # Both run before the burst, which may make a server close its sockets.
            result.update(await _stall_phases(clients, plan, trigger))
        result["throughput"] = await _throughput_phase(clients, plan, trigger, server)
        for client in clients:
            client.quit(timeout_s=30)
        return result
    finally:
        for client in clients:
            client.kill()


async def run_stall_round(
    name: str, server: ServerProcess, plan: FanoutPlan, trigger: BidTrigger, *, path: str, protocol: str, origin: str,
) -> dict[str, Any]:
    """Run only the stall comparison (reference, then one watcher stalled) against `server`."""
    clients = _start_watchers(server, plan, path=path, protocol=protocol, origin=origin)
    try:
        await _wait_ready(name, clients, plan)
        result = await _stall_phases(clients, plan, trigger)
        for client in clients:
            client.quit(timeout_s=30)
        return result
    finally:
        for client in clients:
            client.kill()


def stall_ratio(result: dict[str, Any]) -> dict[str, float]:
    """Return one stall round's per-delivery p99 without and with the stalled watcher, and their ratio."""
    reference = result["reference_latency"]["delivery_p99_ms"]
    stalled = result["stalled_latency"]["delivery_p99_ms"]
    return {"reference_p99_ms": reference, "stalled_p99_ms": stalled, "ratio": round(stalled / reference, 3)}


def _start_watchers(server: ServerProcess, plan: FanoutPlan, *, path: str, protocol: str, origin: str) -> list[ClientProcess]:
    per_process = [plan.watchers // CLIENT_PROCESSES] * CLIENT_PROCESSES
    per_process[0] += plan.watchers - sum(per_process)
    return [
        start_client("bench.clients.watchers", [
            "--port", str(server.port), "--path", path, "--count", str(count),
            "--protocol", protocol, "--origin", origin,
        ])
        for count in per_process
    ]


async def _wait_ready(name: str, clients: list[ClientProcess], plan: FanoutPlan) -> None:
    ready = [client.read_message() for client in clients]
    if sum(message.get("ready", 0) for message in ready) != plan.watchers:
        raise RuntimeError(f"{name}: watchers did not all connect: {ready}")
    await asyncio.sleep(0.5)


async def _stall_phases(clients: list[ClientProcess], plan: FanoutPlan, trigger: BidTrigger) -> dict[str, Any]:
    reference = await _latency_phase(clients, plan, trigger)
    _ask(clients[:1], "stall 1")
    return {"reference_latency": reference, "stalled_latency": await _latency_phase(clients, plan, trigger)}


async def _latency_phase(clients: list[ClientProcess], plan: FanoutPlan, trigger: BidTrigger) -> dict[str, Any]:
    _ask(clients, "arm")
    triggers: list[tuple[int, int]] = []
    for _ in range(plan.triggers):
        triggers.append(await trigger.fire())
        await asyncio.sleep(plan.spacing_s)
    reports = _ask(clients, "latency " + ",".join(f"{time_ns}:{seq}" for time_ns, seq in triggers))
    last_watcher_ms = [max(values) / 1e6 for values in zip(*(report["per_trigger_max_ns"] for report in reports))]
    delivered = [sum(values) for values in zip(*(report["delivered"] for report in reports))]
    reading = sum(report["reading"] for report in reports)
    return {
        "triggers": plan.triggers,
        "last_watcher_p50_ms": round(percentile(last_watcher_ms, 0.50), 3),
        "last_watcher_p99_ms": round(percentile(last_watcher_ms, 0.99), 3),
        "delivery_p50_ms_per_process": [report["delivery"]["p50_ms"] for report in reports],
        # Per-delivery p99 over every reading watcher: the larger of the two processes' values.
        "delivery_p99_ms": max(report["delivery"]["p99_ms"] for report in reports),
        "missed_deliveries": reading * plan.triggers - sum(delivered),
        "closed_sockets": _merge_counts(report["closed"] for report in reports),
    }


def _merge_counts(counts: Any) -> dict[str, int]:
    merged: dict[str, int] = {}
    for count in counts:
        for key, value in count.items():
            merged[key] = merged.get(key, 0) + value
    return merged


async def _throughput_phase(
    clients: list[ClientProcess], plan: FanoutPlan, trigger: BidTrigger, server: ServerProcess
) -> dict[str, Any]:
    _ask(clients, "arm")
    cpu_before = server.cpu_s()
    fired = [await trigger.fire() for _ in range(plan.burst)]
    first_ns, last_seq = fired[0][0], fired[-1][1]
    # Poll until every reading socket has the last bid, or nothing arrived for DRAIN_QUIET_S.
    previous: tuple[int, int] | None = None
    quiet_since = time.monotonic()
    reports: list[dict[str, Any]] = []
    while time.monotonic() - quiet_since < DRAIN_QUIET_S:
        await asyncio.sleep(0.5)
        reports = _ask(clients, f"drain {first_ns} {last_seq}")
        got = sum(report["got"] for report in reports)
        messages = sum(report["messages"] for report in reports)
        if got == sum(report["reading"] for report in reports):
            break
        if (got, messages) != previous:
            quiet_since = time.monotonic()
        previous = (got, messages)
    last_ns = max(report["last_ns"] for report in reports)
    elapsed_s = (last_ns - first_ns) / 1e9
    return {
        "burst": plan.burst,
        "watchers_with_last_bid": got,
        "messages": messages,
        "drain_s": round(elapsed_s, 3),
        "deliveries_per_s": round(plan.burst * got / elapsed_s, 1) if elapsed_s > 0 else None,
        "server_cpu_s": round(server.cpu_s() - cpu_before, 3),
        "closed_sockets": _merge_counts(report["closed"] for report in reports),
    }

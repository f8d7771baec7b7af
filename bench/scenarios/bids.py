"""The bid path: 100 closed-loop websocket bidders against one server process.

Targets:
- `bare`: baseline (b), `bench/baselines/starlette_evalsha.py` (one EVALSHA per message);
- `jangteo`: the web app (`bench/jangteo_server.py`) with `/ws/bids`, which runs the
  HTTP bid route's code per message: session user, rate limit, the engine's checks,
  the bid script through `ScriptBatcher`, the receipt and an ack;
- variants of `jangteo` for the speed-up ratios: batching off, the asyncio event
  loop instead of uvloop, redis-py without hiredis.

Every run bids on lots of its own, loaded fresh, because each bidder process starts
its amount counters from the same base. CPU seconds of the server, the client
process and Redis are recorded, because the two cores are shared by all three.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from redis.asyncio import Redis

from bench.bidload import bench_keys, load_lots
from bench.profiling import start_py_spy, summarize
from bench.services import BenchRedis, ServerProcess, jangteo_argv, start_client, start_server, uvicorn_argv
from embedded.common import find_free_port

FIRST_BID_LOT_ID = 100_001


@dataclass
class BidEnvironment:
    redis: BenchRedis
    database_url: str
    identities_path: Path
    _next_lot: itertools.count = field(default_factory=lambda: itertools.count(FIRST_BID_LOT_ID))

    def allocate_lots(self, count: int) -> int:
        first = next(self._next_lot)
        for _ in range(count - 1):
            next(self._next_lot)
        return first


@dataclass(frozen=True)
class BidRun:
    target: str  # "bare" or "jangteo"
    lots: int
    bidders: int = 100
    loop: str = "uvloop"
    batching: bool = True
    hiredis: bool = True

    @property
    def label(self) -> str:
        parts = [self.target, f"{self.lots} lot{'' if self.lots == 1 else 's'}"]
        if not self.batching:
            parts.append("batching off")
        if self.loop != "uvloop":
            parts.append(f"{self.loop} loop")
        if not self.hiredis:
            parts.append("no hiredis")
        return ", ".join(parts)


def start_bid_server(environment: BidEnvironment, run: BidRun) -> ServerProcess:
    port = find_free_port()
    if run.target == "bare":
        argv = uvicorn_argv("bench.baselines.starlette_evalsha:create_app", port, factory=True, loop=run.loop)
        env = {"BENCH_REDIS_URL": environment.redis.url}
    else:
        argv = jangteo_argv(port, loop=run.loop)
        env = {
            "BENCH_REDIS_URL": environment.redis.url,
            "BENCH_DATABASE_URL": environment.database_url,
            "BENCH_PORT": str(port),
            "BENCH_BATCHING": "on" if run.batching else "off",
            "BENCH_NO_HIREDIS": "0" if run.hiredis else "1",
        }
    return start_server(run.label.replace(", ", "-").replace(" ", "_"), argv, port, env)


def run_bids(
    environment: BidEnvironment, run: BidRun, *, warmup_s: float, duration_s: float, profile: bool = False
) -> dict[str, Any]:
    """Run one bid measurement; with `profile`, sample the server with py-spy during the window."""
    first_lot = environment.allocate_lots(run.lots)

    async def prepare() -> None:
        redis = Redis.from_url(environment.redis.url)
        try:
            await load_lots(redis, bench_keys(), first_lot, run.lots)
        finally:
            await redis.aclose()

    asyncio.run(prepare())
    server = start_bid_server(environment, run)
    redis_process = psutil.Process(environment.redis.process.pid)
    try:
        server_cpu = server.cpu_s()
        redis_times = redis_process.cpu_times()
        client = start_client("bench.clients.bidders", [
            "--port", str(server.port), "--protocol", run.target, "--path", "/ws/bids" if run.target == "jangteo" else "/ws/bid",
            "--identities", str(environment.identities_path), "--bidders", str(run.bidders),
            "--lots", f"{first_lot}:{run.lots}", "--warmup", str(warmup_s), "--duration", str(duration_s),
            "--origin", f"http://127.0.0.1:{server.port}",
        ])
        sampler = None
        raw_profile = Path(tempfile.gettempdir()) / f"jangteo-bench-profile-{server.port}.txt"
        if profile:
            time.sleep(warmup_s + 1.0)  # connections and warm-up first; sample the steady state
            sampler = start_py_spy(server.process.pid, duration_s - 1.0, raw_profile)
        result = client.finish()
        if sampler is not None:
            sampler.wait(timeout=60)
            result["profile"] = summarize(raw_profile) if raw_profile.exists() else {"error": "py-spy wrote no output"}
        wall_s = warmup_s + duration_s
        redis_after = redis_process.cpu_times()
        result.update({
            "label": run.label,
            "target": run.target,
            "loop": run.loop,
            "batching": run.batching,
            "hiredis": run.hiredis,
            # Average cores used over the bidding time (connect time included for the server).
            "server_cores": round((server.cpu_s() - server_cpu) / wall_s, 2),
            "redis_cores": round((redis_after.user + redis_after.system - redis_times.user - redis_times.system) / wall_s, 2),
            "load_average_1m": round(os.getloadavg()[0], 2),
        })
        return result
    finally:
        server.stop()

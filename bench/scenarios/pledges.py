"""The pledge path: 100 closed-loop websocket pledgers against one server process.

Targets:
- `bare`: baseline (b), `bench/baselines/starlette_pledge.py` (one EVALSHA of
  pledge.lua per message on `/ws/pledge`);
- `jangteo`: the web app (`bench/jangteo_server.py`) with `/ws/pledges`, which runs
  the HTTP pledge route's code per message: session still alive, rate limit, the
  engine's checks, pledge.lua through `ScriptBatcher`, the up-front payment lookup
  for pledges that add units, and the receipt in a JSON ack.

Both targets get the same pledgers and messages (`bench/clients/pledgers.py`).
Every run pledges on campaigns of its own, created fresh in PostgreSQL and Redis.
CPU seconds of the server, the client and Redis are recorded as for bids, because
the two cores are shared by all three.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from redis.asyncio import Redis

from bench.bidload import bench_keys
from bench.campaignload import create_campaigns
from bench.profiling import start_py_spy, summarize
from bench.services import BenchRedis, ServerProcess, jangteo_argv, start_client, start_server, uvicorn_argv
from embedded.common import find_free_port
from engine.db.pool import create_pool


@dataclass
class PledgeEnvironment:
    redis: BenchRedis
    database_url: str
    identities_path: Path


@dataclass(frozen=True)
class PledgeRun:
    target: str  # "bare" or "jangteo"
    campaigns: int
    pledgers: int = 100

    @property
    def label(self) -> str:
        return f"{self.target}, {self.campaigns} campaign{'' if self.campaigns == 1 else 's'}"


async def prepare_campaigns(environment: PledgeEnvironment, count: int) -> int:
    """Create `count` fresh campaigns with consecutive ids; return the first id."""
    db = await create_pool(environment.database_url)
    redis = Redis.from_url(environment.redis.url)
    try:
        ids = await create_campaigns(db, redis, bench_keys(), count)
    finally:
        await redis.aclose()
        await db.close()
    if ids != list(range(ids[0], ids[0] + count)):
        raise RuntimeError(f"benchmark campaigns got non-consecutive ids {ids[0]}..{ids[-1]}; rerun")
    return ids[0]


def start_pledge_server(environment: PledgeEnvironment, run: PledgeRun) -> ServerProcess:
    port = find_free_port()
    if run.target == "bare":
        argv = uvicorn_argv("bench.baselines.starlette_pledge:create_app", port, factory=True)
        env = {"BENCH_REDIS_URL": environment.redis.url}
    else:
        argv = jangteo_argv(port)
        env = {
            "BENCH_REDIS_URL": environment.redis.url,
            "BENCH_DATABASE_URL": environment.database_url,
            "BENCH_PORT": str(port),
        }
    return start_server("pledges-" + run.label.replace(", ", "-").replace(" ", "_"), argv, port, env)


def run_pledges(
    environment: PledgeEnvironment, run: PledgeRun, *, warmup_s: float, duration_s: float, profile: bool = False
) -> dict[str, Any]:
    """Run one pledge measurement; with `profile`, sample the server with py-spy during the window."""
    first_campaign = asyncio.run(prepare_campaigns(environment, run.campaigns))
    server = start_pledge_server(environment, run)
    redis_process = psutil.Process(environment.redis.process.pid)
    try:
        server_cpu = server.cpu_s()
        redis_times = redis_process.cpu_times()
        client = start_client("bench.clients.pledgers", [
            "--port", str(server.port), "--protocol", run.target,
            "--path", "/ws/pledges" if run.target == "jangteo" else "/ws/pledge",
            "--identities", str(environment.identities_path), "--pledgers", str(run.pledgers),
            "--campaigns", f"{first_campaign}:{run.campaigns}", "--warmup", str(warmup_s), "--duration", str(duration_s),
            "--origin", f"http://127.0.0.1:{server.port}",
        ])
        sampler = None
        raw_profile = Path(tempfile.gettempdir()) / f"jangteo-bench-pledge-profile-{server.port}.txt"
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
            # Average cores used over the pledging time (connect time included for the server).
            "server_cores": round((server.cpu_s() - server_cpu) / wall_s, 2),
            "redis_cores": round((redis_after.user + redis_after.system - redis_times.user - redis_times.system) / wall_s, 2),
            "load_average_1m": round(os.getloadavg()[0], 2),
        })
        return result
    finally:
        server.stop()

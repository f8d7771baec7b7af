"""Baseline (a) for pledges: `redis-benchmark` running pledge.lua by EVALSHA, 50 clients, no pipelining.

The ceiling a single Redis process sets on pledges: no Python, no HTTP, only the
script. Every call pledges 1 unit as a new random member on a campaign with a stock
cap of 10^12 units, so every call takes the accepting path with all its writes.
Run against the benchmark's private Redis.
"""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.baselines.redis_bench import ID_RANGE
from bench.bidload import bench_keys
from bench.campaignload import load_redis_only_campaign, redis_benchmark_pledge_command
from bench.services import DEBIAN_REDIS_BENCHMARK
from engine.groupbuy.live import PLEDGE_SCRIPT


def run_redis_benchmark_pledges(port: int, campaign_id: int, *, requests: int, clients: int = 50) -> dict[str, Any]:
    """Run redis-benchmark against a fresh campaign; return calls/s, latency and the accepted share."""
    if not DEBIAN_REDIS_BENCHMARK.exists():
        return {"skipped": f"{DEBIAN_REDIS_BENCHMARK} not found (apt-get install redis-tools)"}
    keys = bench_keys()

    async def prepare() -> None:
        redis = Redis(port=port)
        try:
            await redis.script_load(PLEDGE_SCRIPT.source)
            await load_redis_only_campaign(redis, keys, campaign_id)
        finally:
            await redis.aclose()

    async def accepted_count() -> int:
        redis = Redis(port=port)
        try:
            return int(await redis.hget(keys.campaign_state(campaign_id), "seq") or 0)
        finally:
            await redis.aclose()

    asyncio.run(prepare())
    command = [
        str(DEBIAN_REDIS_BENCHMARK), "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
        "-n", str(requests), "-r", str(ID_RANGE), "-P", "1", "--csv",
        *redis_benchmark_pledge_command(keys, campaign_id),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    row = list(csv.DictReader(io.StringIO(result.stdout)))[-1]
    accepted = asyncio.run(accepted_count())
    shown = " ".join(Path(part).name if index == 0 else part for index, part in enumerate(command[:13]))
    return {
        "command": shown + " EVALSHA <pledge.lua> 5 <keys> <args>",
        "clients": clients,
        "requests": requests,
        "calls_per_s": float(row["rps"]),
        "p50_ms": float(row["p50_latency_ms"]),
        "p99_ms": float(row["p99_latency_ms"]),
        # Two calls that draw the same random member id (rare in 10^10) change nothing the second time.
        "accepted_share": round(accepted / requests, 4),
    }

"""Baseline (a): `redis-benchmark` running bid.lua by EVALSHA, 50 clients, no pipelining.

This is the ceiling a single Redis process sets on bids: no Python, no HTTP or
websocket, only the script. Run against the benchmark's private Redis.
"""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench.bidload import bench_keys, load_lots, redis_benchmark_command
from bench.services import DEBIAN_REDIS_BENCHMARK

ID_RANGE = 10_000_000_000  # random user and client ids in 0 .. 10^10 - 1


def run_redis_benchmark(port: int, lot_id: int, *, requests: int, clients: int = 50) -> dict[str, Any]:
    """Run redis-benchmark against a fresh lot `lot_id`; return calls/s, latency and accepted share."""
    if not DEBIAN_REDIS_BENCHMARK.exists():
        return {"skipped": f"{DEBIAN_REDIS_BENCHMARK} not found (apt-get install redis-tools)"}
    keys = bench_keys()

    async def prepare() -> None:
        from engine.auction.live import BID_SCRIPT

        redis = Redis(port=port)
        try:
            await redis.script_load(BID_SCRIPT.source)
            await load_lots(redis, keys, lot_id, 1)
        finally:
            await redis.aclose()

    async def bid_count() -> int:
        redis = Redis(port=port)
        try:
            return int(await redis.hget(keys.lot_state(lot_id), "bid_count") or 0)
        finally:
            await redis.aclose()

    asyncio.run(prepare())
    command = [
        str(DEBIAN_REDIS_BENCHMARK), "-h", "127.0.0.1", "-p", str(port), "-c", str(clients),
        "-n", str(requests), "-r", str(ID_RANGE), "-P", "1", "--csv",
        *redis_benchmark_command(keys, lot_id),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    row = rows[-1]
    accepted = asyncio.run(bid_count())
    return {
        "command": " ".join(Path(command[0]).name if i == 0 else part for i, part in enumerate(command[:13])) + " EVALSHA <bid.lua> 5 <keys> <args>",
        "clients": clients,
        "requests": requests,
        "calls_per_s": float(row["rps"]),
        "p50_ms": float(row["p50_latency_ms"]),
        "p99_ms": float(row["p99_latency_ms"]),
        "accepted_share": round(accepted / requests, 4),
    }

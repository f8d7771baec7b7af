"""Run every benchmark, print the results as ratios to their baselines, record them.

    .venv/bin/python -m bench.run            # the full run (about 20 minutes)
    .venv/bin/python -m bench.run --quick    # a short smoke run (about 1 minute)

Starts its own Redis (a private redis-server on a free port) and a PostgreSQL
database of its own, runs the scenarios one after another, prints a table, writes
`bench/results/latest.json` and rewrites the generated part of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from bench import report
from bench.baselines.redis_bench import run_redis_benchmark
from bench.baselines.redis_bench_pledge import run_redis_benchmark_pledges
from bench.baselines.socketio_server import create_emitter
from bench.bidload import bench_keys, create_bidders, load_lots
from bench.scenarios.bids import BidEnvironment, BidRun, run_bids
from bench.scenarios.campaign_fanout import run_campaign_fanout
from bench.scenarios.fanout import BidTrigger, FanoutPlan, run_fanout, run_stall_round, stall_ratio
from bench.scenarios.memory import measure_idle_memory
from bench.scenarios.micro import measure_json
from bench.scenarios.pledges import PledgeEnvironment, PledgeRun, run_pledges
from bench.services import (
    PROJECT_ROOT,
    BenchRedis,
    ServerProcess,
    jangteo_argv,
    postgres_database,
    raise_open_file_limit,
    start_redis,
    start_server,
    uvicorn_argv,
)
from embedded.common import find_free_port
from engine.db.migrate import apply_migrations
from engine.db.pool import create_pool

log = logging.getLogger("jangteo.bench")

RESULTS_PATH = PROJECT_ROOT / "bench" / "results" / "latest.json"
DOCS_PATH = PROJECT_ROOT / "docs" / "benchmarks.md"
FANOUT_FIRST_LOT_ID = 900_001
# The redis-benchmark campaign lives in Redis only, under an id far above PostgreSQL's serial ids.
REDIS_BENCHMARK_CAMPAIGN_ID = 990_000_001
SECTIONS = ("redis", "bids", "fanout", "memory", "micro", "pledges", "campaign-fanout")
BIDDERS = 100


@dataclass(frozen=True)
class Plan:
    """How long and how large each scenario runs."""

    redis_benchmark_requests: int
    bid_warmup_s: float
    bid_duration_s: float
    bid_repeats: int
    bid_runs: tuple[BidRun, ...]
    fanout_plans: tuple[FanoutPlan, ...]
    idle_sockets: int
    pledge_runs: tuple[PledgeRun, ...]
    campaign_fanout_plans: tuple[FanoutPlan, ...]
    campaign_fanout_repeats: int


FULL = Plan(
    redis_benchmark_requests=200_000,
    bid_warmup_s=2.0,
    bid_duration_s=10.0,
    bid_repeats=3,
    bid_runs=(
        BidRun("bare", 1), BidRun("bare", 100), BidRun("bare", 100, loop="asyncio"),
        BidRun("jangteo", 1), BidRun("jangteo", 100),
        BidRun("jangteo", 10), BidRun("jangteo", 10_000),
        BidRun("jangteo", 100, batching=False), BidRun("jangteo", 100, loop="asyncio"),
        BidRun("jangteo", 100, hiredis=False),
    ),
    fanout_plans=(
        FanoutPlan(watchers=1000, triggers=60, spacing_s=0.2, burst=50, stall=True, stall_rounds=5),
        FanoutPlan(watchers=5000, triggers=30, spacing_s=0.6, burst=20, asgi_comparison=True),
    ),
    idle_sockets=1000,
    pledge_runs=(PledgeRun("bare", 1), PledgeRun("bare", 100), PledgeRun("jangteo", 1), PledgeRun("jangteo", 100)),
    campaign_fanout_plans=(FanoutPlan(watchers=1000, triggers=60, spacing_s=0.2, burst=50),),
    campaign_fanout_repeats=3,
)
QUICK = Plan(
    redis_benchmark_requests=20_000,
    bid_warmup_s=0.5,
    bid_duration_s=2.0,
    bid_repeats=1,
    bid_runs=(BidRun("bare", 1), BidRun("jangteo", 1), BidRun("jangteo", 1, batching=False)),
    fanout_plans=(FanoutPlan(watchers=100, triggers=5, spacing_s=0.2, burst=5, stall=True),),
    idle_sockets=100,
    pledge_runs=(PledgeRun("bare", 1), PledgeRun("jangteo", 1)),
    campaign_fanout_plans=(FanoutPlan(watchers=100, triggers=5, spacing_s=0.2, burst=5),),
    campaign_fanout_repeats=1,
)


# -- environment ----------------------------------------------------------------------


def versions(redis: BenchRedis) -> dict[str, str]:
    packages = ("uvicorn", "starlette", "redis", "hiredis", "websockets", "python-socketio", "uvloop", "httptools", "orjson")
    found = {name: version(name) for name in packages}
    found["python"] = platform.python_version()
    found["redis-server"] = redis.version()
    benchmark = subprocess.run(["redis-benchmark", "--version"], capture_output=True, text=True, check=False)
    found["redis-benchmark"] = benchmark.stdout.strip() or "not installed"
    return found


def source_commit() -> str:
    """The benchmarked commit: JANGTEO_BENCH_COMMIT (for a `git archive` copy), else HEAD, marked when dirty."""
    if os.environ.get("JANGTEO_BENCH_COMMIT"):
        return os.environ["JANGTEO_BENCH_COMMIT"]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    if head.returncode != 0:
        return "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
    return head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")


def machine() -> dict[str, Any]:
    model = "unknown"
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    for line in lscpu.splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    return {"nproc": os.cpu_count(), "cpu_model": model, "kernel": platform.release(), "load_average_start": os.getloadavg()}


async def prepare_database(database_url: str, redis_url: str) -> list[dict[str, Any]]:
    db = await create_pool(database_url)
    redis = Redis.from_url(redis_url)
    try:
        await apply_migrations(db)
        return await create_bidders(db, redis, bench_keys(), BIDDERS)
    finally:
        await redis.aclose()
        await db.close()


# -- scenarios ------------------------------------------------------------------------


def bid_scenarios(environment: BidEnvironment, plan: Plan) -> list[dict[str, Any]]:
    """Run every bid run `plan.bid_repeats` times, round-robin, and keep the median of each.

    Interleaving the rounds spreads changes in the machine's load over all runs, so a
    baseline and the run divided by it see about the same load.
    """
    rounds: dict[str, list[dict[str, Any]]] = {run.label: [] for run in plan.bid_runs}
    for round_number in range(plan.bid_repeats):
        for run in plan.bid_runs:
            result = run_bids(environment, run, warmup_s=plan.bid_warmup_s, duration_s=plan.bid_duration_s)
            rounds[run.label].append(result)
            log.info(
                "bids: %s, round %d -> %s accepted/s, p99 %s ms", run.label, round_number + 1,
                result["accepted_per_s"], result["ack_p99_ms"],
            )
    return [_median_round(results) for results in rounds.values()]


def _median_round(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median accepted/s, with the median p50 and p99 over all rounds."""
    by_rate = sorted(results, key=lambda result: result["accepted_per_s"])
    median = dict(by_rate[len(by_rate) // 2])
    for name in ("ack_p50_ms", "ack_p99_ms"):
        median[name] = statistics.median(result[name] for result in results)
    median["rounds_accepted_per_s"] = [result["accepted_per_s"] for result in results]
    median["rounds_ack_p99_ms"] = [result["ack_p99_ms"] for result in results]
    return median


def bid_profile(environment: BidEnvironment, plan: Plan) -> dict[str, Any]:
    """Run Jangteo on 100 lots once more, sampled by py-spy; the figures are not used for the goals."""
    log.info("bids: profiling jangteo, 100 lots")
    result = run_bids(
        environment, BidRun("jangteo", 100), warmup_s=plan.bid_warmup_s, duration_s=plan.bid_duration_s, profile=True,
    )
    return {"label": result["label"], "accepted_per_s": result["accepted_per_s"], **result.get("profile", {})}


def pledge_scenarios(environment: PledgeEnvironment, plan: Plan) -> list[dict[str, Any]]:
    """Run every pledge run `plan.bid_repeats` times, round-robin, and keep the median of each (as for bids)."""
    rounds: dict[str, list[dict[str, Any]]] = {run.label: [] for run in plan.pledge_runs}
    for round_number in range(plan.bid_repeats):
        for run in plan.pledge_runs:
            result = run_pledges(environment, run, warmup_s=plan.bid_warmup_s, duration_s=plan.bid_duration_s)
            rounds[run.label].append(result)
            log.info(
                "pledges: %s, round %d -> %s accepted/s, p99 %s ms", run.label, round_number + 1,
                result["accepted_per_s"], result["ack_p99_ms"],
            )
    return [_median_round(results) for results in rounds.values()]


def pledge_profile(environment: PledgeEnvironment, plan: Plan) -> dict[str, Any]:
    """Run Jangteo on 100 campaigns once more, sampled by py-spy; the figures are not used for the goals."""
    log.info("pledges: profiling jangteo, 100 campaigns")
    result = run_pledges(
        environment, PledgeRun("jangteo", 100), warmup_s=plan.bid_warmup_s, duration_s=plan.bid_duration_s, profile=True,
    )
    return {"label": result["label"], "accepted_per_s": result["accepted_per_s"], **result.get("profile", {})}


def campaign_fanout_scenarios(environment: PledgeEnvironment, plan: Plan) -> list[dict[str, Any]]:
    """Run the campaign fan-out of every plan and target `campaign_fanout_repeats` times, round-robin.

    Each (plan, target) keeps the round with the median deliveries/s, with the median
    last-watcher p50 and p99 over its rounds.
    """
    keys = [(fanout_plan, target) for fanout_plan in plan.campaign_fanout_plans for target in ("bare", "jangteo")]
    rounds: dict[int, list[dict[str, Any]]] = {index: [] for index in range(len(keys))}
    for round_number in range(plan.campaign_fanout_repeats):
        for index, (fanout_plan, target) in enumerate(keys):
            result = asyncio.run(run_campaign_fanout(environment, target, fanout_plan))
            rounds[index].append(result)
            log.info(
                "campaign fan-out: %s, %d watchers, round %d -> %s deliveries/s, last watcher p99 %s ms", target,
                fanout_plan.watchers, round_number + 1, result["throughput"]["deliveries_per_s"],
                result["latency"]["last_watcher_p99_ms"],
            )
    return [_median_fanout_round(results) for results in rounds.values()]


def _median_fanout_round(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the round with the median deliveries/s, with the median last-watcher p50 and p99 over all rounds."""
    by_rate = sorted(results, key=lambda result: result["throughput"]["deliveries_per_s"] or 0.0)
    median = dict(by_rate[len(by_rate) // 2])
    median["latency"] = dict(median["latency"])
    for name in ("last_watcher_p50_ms", "last_watcher_p99_ms"):
        median["latency"][name] = statistics.median(result["latency"][name] for result in results)
    median["rounds_deliveries_per_s"] = [result["throughput"]["deliveries_per_s"] for result in results]
    median["rounds_last_watcher_p99_ms"] = [result["latency"]["last_watcher_p99_ms"] for result in results]
    return median


def campaign_fanout_profile(environment: PledgeEnvironment, plan: Plan) -> dict[str, Any]:
    """Run the campaign hub once more, sampled by py-spy in the latency phase; the figures are not used for the goals."""
    fanout_plan = plan.campaign_fanout_plans[0]
    result = asyncio.run(run_campaign_fanout(environment, "jangteo", fanout_plan, profile=True))
    label = f"jangteo campaign hub, {fanout_plan.watchers} watchers, latency phase"
    return {"label": label, "last_watcher_p99_ms": result["latency"]["last_watcher_p99_ms"], **result.get("profile", {})}


def _fanout_server(target: str, redis: BenchRedis, database_url: str) -> tuple[ServerProcess, str, str]:
    """Start one fan-out target; return it with the watchers' path prefix and protocol."""
    port = find_free_port()
    if target == "bare":
        argv = ["-m", "bench.baselines.ws_broadcast", "--port", str(port), "--redis-url", redis.url]
        return start_server("fanout-bare", argv, port), "/", "plain"
    if target == "socketio":
        argv = uvicorn_argv("bench.baselines.socketio_server:create_app", port, factory=True)
        server = start_server("fanout-socketio", argv, port, {"BENCH_REDIS_URL": redis.url})
        return server, "/socket.io/?EIO=4&transport=websocket&lot=", "socketio"
    argv = jangteo_argv(port, shared_frames=target != "jangteo-asgi")
    env = {"BENCH_REDIS_URL": redis.url, "BENCH_DATABASE_URL": database_url, "BENCH_PORT": str(port)}
    return start_server(f"fanout-{target}", argv, port, env), "/ws/lots/", "jangteo"


async def fanout_scenarios(
    redis: BenchRedis, database_url: str, plans: tuple[FanoutPlan, ...], *,
    targets: tuple[str, ...] = ("bare", "socketio", "jangteo"), profile: bool = False, first_lot_id: int = FANOUT_FIRST_LOT_ID,
) -> list[dict[str, Any]]:
    results = []
    lot_ids = itertools.count(first_lot_id + 1)
    for fanout_plan in plans:
        plan_targets = targets
        if fanout_plan.asgi_comparison and "jangteo" in targets:
            plan_targets = (*targets, "jangteo-asgi")
        for target in plan_targets:
            log.info("fan-out: %s, %d watchers", target, fanout_plan.watchers)
            result = await _on_fanout_target(
                redis, database_url, target, next(lot_ids),
                lambda server, trigger, path, protocol, origin: run_fanout(
                    target, server, fanout_plan, trigger, path=path, protocol=protocol, origin=origin, profile=profile,
                ),
            )
            if fanout_plan.stall and target != "socketio":
                rounds = [stall_ratio(result)]
                for round_number in range(2, fanout_plan.stall_rounds + 1):
                    extra = await _on_fanout_target(
                        redis, database_url, target, next(lot_ids),
                        lambda server, trigger, path, protocol, origin: run_stall_round(
                            target, server, fanout_plan, trigger, path=path, protocol=protocol, origin=origin,
                        ),
                    )
                    rounds.append(stall_ratio(extra))
                    log.info("fan-out: %s, stall round %d -> ratio %s", target, round_number, rounds[-1]["ratio"])
                result["stall_rounds"] = rounds
            results.append(result)
            log.info(
                "fan-out: %s, %d watchers -> %s deliveries/s, last watcher p99 %s ms", target, fanout_plan.watchers,
                result["throughput"]["deliveries_per_s"], result["latency"]["last_watcher_p99_ms"],
            )
    return results


async def _on_fanout_target(
    redis: BenchRedis, database_url: str, target: str, lot_id: int,
    run: Callable[[ServerProcess, BidTrigger, str, str, str], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """Load a fresh lot, start `target` and a bid trigger for it, run `run`, then stop them."""
    connection = Redis.from_url(redis.url)
    await load_lots(connection, bench_keys(), lot_id, 1)
    await connection.aclose()
    server, path_prefix, protocol = _fanout_server(target, redis, database_url)
    emitter = create_emitter(redis.url) if target == "socketio" else None

    async def emit(data: dict[str, Any], room: str = f"lot:{lot_id}") -> None:
        assert emitter is not None
        await emitter.emit("lot", data, room=room)

    trigger = BidTrigger(redis.url, lot_id, emit if emitter is not None else None)
    try:
        result = await run(server, trigger, f"{path_prefix}{lot_id}", protocol, f"http://127.0.0.1:{server.port}")
        result["server_rss_mib"] = round(server.rss_bytes() / 2**20, 1)
    finally:
        await trigger.close()
        server.stop()
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    return result


def fanout_profile(redis: BenchRedis, database_url: str, plan: Plan) -> dict[str, Any]:
    """Run Jangteo's hub once more with 1,000 watchers, sampled by py-spy; the figures are not used for the goals."""
    profiled_plan = plan.fanout_plans[0]
    profiled_plan = FanoutPlan(profiled_plan.watchers, profiled_plan.triggers, profiled_plan.spacing_s, profiled_plan.burst)
    (result,) = asyncio.run(fanout_scenarios(
        redis, database_url, (profiled_plan,), targets=("jangteo",), profile=True, first_lot_id=FANOUT_FIRST_LOT_ID + 500,
    ))
    label = f"jangteo hub, {profiled_plan.watchers} watchers, latency phase"
    return {"label": label, "last_watcher_p99_ms": result["latency"]["last_watcher_p99_ms"], **result.get("profile", {})}


def memory_scenarios(redis: BenchRedis, database_url: str, plan: Plan) -> list[dict[str, Any]]:
    results = []
    port = find_free_port()
    bare = start_server(
        "idle-bare", uvicorn_argv("bench.baselines.starlette_evalsha:create_app", port, factory=True), port,
        {"BENCH_REDIS_URL": redis.url},
    )
    try:
        results.append(measure_idle_memory(bare, "/ws/idle", plan.idle_sockets, f"http://127.0.0.1:{port}"))
    finally:
        bare.stop()

    lot_id = FANOUT_FIRST_LOT_ID + 1000

    async def load() -> None:
        connection = Redis.from_url(redis.url)
        await load_lots(connection, bench_keys(), lot_id, 1)
        await connection.aclose()

    asyncio.run(load())
    port = find_free_port()
    jangteo = start_server(
        "idle-jangteo", jangteo_argv(port), port,
        {"BENCH_REDIS_URL": redis.url, "BENCH_DATABASE_URL": database_url, "BENCH_PORT": str(port)},
    )
    try:
        results.append(measure_idle_memory(jangteo, f"/ws/lots/{lot_id}", plan.idle_sockets, f"http://127.0.0.1:{port}"))
    finally:
        jangteo.stop()
    return results


def _save(results: dict[str, Any]) -> None:
    """Write the results so far, so a failure in a later scenario keeps the earlier ones."""
    RESULTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_PATH.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _timed(name: str, function: Callable[[], Any]) -> Any:
    started = time.monotonic()
    try:
        return function()
    finally:
        log.info("%s took %.0f s", name, time.monotonic() - started)


# -- entry point ----------------------------------------------------------------------


def run(plan: Plan, *, quick: bool, only: set[str] | None = None) -> dict[str, Any]:
    open_files = raise_open_file_limit()
    redis = start_redis()
    try:
        with postgres_database() as database_url:
            identities = asyncio.run(prepare_database(database_url, redis.url))
            with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="jangteo-bench-ids-", delete=False) as file:
                json.dump(identities, file)
                identities_path = Path(file.name)
            try:
                results: dict[str, Any] = {
                    "mode": "quick" if quick else "full",
                    "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "commit": source_commit(),
                    "open_file_limit": open_files,
                    "machine": machine(),
                    "versions": versions(redis),
                }
                wanted = only or set(SECTIONS)
                unknown = wanted - set(SECTIONS)
                if unknown:
                    raise ValueError(f"unknown --only sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
                if "micro" in wanted:
                    results["json"] = _timed("json", measure_json)
                _save(results)
                if "redis" in wanted:
                    results["redis_benchmark"] = _timed(
                        "redis-benchmark", lambda: run_redis_benchmark(redis.port, 1, requests=plan.redis_benchmark_requests)
                    )
                _save(results)
                if "bids" in wanted:
                    environment = BidEnvironment(redis, database_url, identities_path)
                    results["bids"] = _timed("bids", lambda: bid_scenarios(environment, plan))
                    if not quick:
                        results["bid_profile"] = _timed("bid profile", lambda: bid_profile(environment, plan))
                _save(results)
                if "fanout" in wanted:
                    results["fanout"] = _timed(
                        "fan-out", lambda: asyncio.run(fanout_scenarios(redis, database_url, plan.fanout_plans))
                    )
                    if not quick:
                        results["fanout_profile"] = _timed("fan-out profile", lambda: fanout_profile(redis, database_url, plan))
                _save(results)
                if "memory" in wanted:
                    results["memory"] = _timed("memory", lambda: memory_scenarios(redis, database_url, plan))
                _save(results)
                pledge_environment = PledgeEnvironment(redis, database_url, identities_path)
                if "pledges" in wanted:
                    results["redis_benchmark_pledges"] = _timed("redis-benchmark pledges", lambda: run_redis_benchmark_pledges(
                        redis.port, REDIS_BENCHMARK_CAMPAIGN_ID, requests=plan.redis_benchmark_requests,
                    ))
                    results["pledges"] = _timed("pledges", lambda: pledge_scenarios(pledge_environment, plan))
                    if not quick:
                        results["pledge_profile"] = _timed("pledge profile", lambda: pledge_profile(pledge_environment, plan))
                _save(results)
                if "campaign-fanout" in wanted:
                    results["campaign_fanout"] = _timed(
                        "campaign fan-out", lambda: campaign_fanout_scenarios(pledge_environment, plan)
                    )
                    if not quick:
                        results["campaign_fanout_profile"] = _timed(
                            "campaign fan-out profile", lambda: campaign_fanout_profile(pledge_environment, plan)
                        )
                results["machine"]["load_average_end"] = os.getloadavg()
                return results
            finally:
                identities_path.unlink(missing_ok=True)
    finally:
        redis.stop()


MEASURED_KEYS = (
    "json", "redis_benchmark", "bids", "bid_profile", "fanout", "fanout_profile", "memory",
    "redis_benchmark_pledges", "pledges", "pledge_profile", "campaign_fanout", "campaign_fanout_profile",
)


def _merge(earlier: dict[str, Any], later: dict[str, Any]) -> dict[str, Any]:
    """Replace the sections of `earlier` that `later` measured; note both start times."""
    merged = dict(earlier)
    for key, value in later.items():
        if key in MEASURED_KEYS:
            merged[key] = value
    sections = sorted(key for key in later if key in MEASURED_KEYS and not key.endswith("_profile") and key != "json")
    merged["started_at"] = f"{earlier['started_at']} ({', '.join(sections)} rerun at {later['started_at']})"
    if later.get("commit") != earlier.get("commit"):
        merged["commit"] = f"{earlier.get('commit')} ({', '.join(sections)}: {later.get('commit')})"
    merged["machine"]["load_average_end"] = later["machine"]["load_average_end"]
    merged.pop("goals", None)
    return merged


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run Jangteo's benchmarks against their baselines.")
    parser.add_argument("--quick", action="store_true", help="short smoke run with small sizes (numbers are not meaningful)")
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of: {', '.join(SECTIONS)} (default: all)",
    )
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite the tables in docs/benchmarks.md")
    parser.add_argument(
        "--merge", type=Path, help="results JSON of an earlier full run; the sections run now replace its sections",
    )
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    only = {part.strip() for part in arguments.only.split(",") if part.strip()} or None
    results = run(QUICK if arguments.quick else FULL, quick=arguments.quick, only=only)
    if arguments.merge:
        results = _merge(json.loads(arguments.merge.read_text(encoding="utf-8")), results)
    _save(results)
    results["goals"] = report.evaluate_goals(results)
    _save(results)
    tables = report.render_tables(results)
    print(tables)
    if not arguments.no_docs and not arguments.quick:
        report.update_docs(DOCS_PATH, tables)
    log.info("results written to %s", RESULTS_PATH)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Smoke tests of the benchmark harness: it imports, one tiny scenario runs, reports render.

No timing is asserted: these only show that `python -m bench.run` can work on this machine.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bench import report
from bench.bidload import bench_keys, load_lots
from bench.run import FULL, QUICK
from bench.scenarios.bids import BidEnvironment, BidRun, run_bids
from bench.services import raise_open_file_limit, start_redis

pytestmark = pytest.mark.slow


def test_plans_cover_every_goal_size() -> None:
    """The full plan measures 1, 100, 10 and 10,000 lots and 1,000 and 5,000 watchers."""
    lots = {run.lots for run in FULL.bid_runs if run.target == "jangteo"}
    assert {1, 10, 100, 10_000} <= lots
    assert {plan.watchers for plan in FULL.fanout_plans} == {1000, 5000}
    assert QUICK.bid_duration_s < FULL.bid_duration_s


def test_bare_bid_scenario_runs(tmp_path: Path) -> None:
    """Five bidders against the bare EVALSHA baseline get answers, and accepted bids among them."""
    raise_open_file_limit()
    redis = start_redis()
    try:
        identities = tmp_path / "identities.json"
        identities.write_text(json.dumps([{"user_id": 10 + n} for n in range(5)]), encoding="utf-8")
        environment = BidEnvironment(redis, "postgresql://unused", identities)
        result = run_bids(environment, BidRun("bare", 1, bidders=5), warmup_s=0.2, duration_s=0.5)
    finally:
        redis.stop()
    assert result["answered"] > 0
    assert result["accepted"] > 0
    assert result["label"] == "bare, 1 lot"


def test_lots_load_into_redis() -> None:
    """Benchmark lots are loaded open, with the default increments, under the benchmark prefix."""
    redis_server = start_redis()

    async def load_and_read() -> dict[bytes, bytes]:
        redis = Redis.from_url(redis_server.url)
        try:
            await load_lots(redis, bench_keys(), 7, 3)
            return await redis.hgetall(bench_keys().lot_state(9))
        finally:
            await redis.aclose()

    try:
        state = asyncio.run(load_and_read())
    finally:
        redis_server.stop()
    assert state[b"status"] == b"open"
    assert state[b"lot_id"] == b"9"


def test_report_replaces_only_the_generated_block(tmp_path: Path) -> None:
    """update_docs rewrites the text between the markers and keeps the rest of the page."""
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Title\n\nhand-written\n\n{report.BEGIN_MARKER}\nold\n{report.END_MARKER}\n\nafter\n", encoding="utf-8")
    report.update_docs(page, "new table\n")
    text = page.read_text(encoding="utf-8")
    assert "old" not in text
    assert "new table" in text
    assert text.startswith("# Title\n\nhand-written\n")
    assert text.endswith(f"{report.END_MARKER}\n\nafter\n")


def test_goals_report_missing_measurements() -> None:
    """A results dict without bid runs yields goals marked as not measured, never as met."""
    goals = report.evaluate_goals({"redis_benchmark": {"calls_per_s": 1000.0}})
    assert goals
    assert all(goal["met"] is None for goal in goals)


def _fanout_run(target: str, rounds: list[tuple[float, float]]) -> dict:
    """A fan-out result as `fanout_scenarios` returns it, with stall rounds of (stalled, reference) p99s."""
    first_stalled, first_reference = rounds[0]
    return {
        "target": target,
        "watchers": 1000,
        "latency": {"last_watcher_p50_ms": 20.0, "last_watcher_p99_ms": 30.0},
        "throughput": {"deliveries_per_s": 50_000.0},
        "reference_latency": {"delivery_p99_ms": first_reference},
        "stalled_latency": {"delivery_p99_ms": first_stalled},
        "stall_rounds": [
            {"reference_p99_ms": reference, "stalled_p99_ms": stalled, "ratio": round(stalled / reference, 3)}
            for stalled, reference in rounds
        ],
    }


def test_stall_goal_takes_median_round() -> None:
    """One noisy stall round does not decide the goal: the median of the rounds does."""
    results = {"fanout": [
        _fanout_run("bare", [(24.0, 24.0), (25.0, 24.0), (23.0, 24.0)]),
        _fanout_run("jangteo", [(36.0, 30.0), (30.0, 30.0), (31.0, 30.0)]),
    ]}
    (goal,) = [goal for goal in report.evaluate_goals(results) if goal["name"].startswith("one stalled watcher")]

    assert goal["value"] == pytest.approx(1.033)
    assert goal["met"] is True
    assert "median of 3 rounds" in goal["detail"]
    assert "36.0 ÷ 30.0 ms" in goal["detail"]


def test_speedups_compare_shared_frames() -> None:
    """A fan-out run on uvicorn's own protocol yields the shared-frames row, as ASGI time ÷ shared time."""
    shared = {**_fanout_run("jangteo", [(30.0, 30.0)]), "watchers": 5000}
    asgi = {**_fanout_run("jangteo-asgi", [(30.0, 30.0)]), "watchers": 5000}
    shared["throughput"] = {"deliveries_per_s": 200_000.0, "server_cpu_s": 0.4}
    asgi["throughput"] = {"deliveries_per_s": 150_000.0, "server_cpu_s": 0.9}
    asgi["latency"] = {"last_watcher_p50_ms": 30.0, "last_watcher_p99_ms": 45.0}

    rows = {name: (value, detail) for name, value, detail in report.speedups({"fanout": [shared, asgi]})}

    (name,) = [name for name in rows if name.startswith("shared frames")]
    value, detail = rows[name]
    assert "5000 watchers" in name
    assert value == pytest.approx(1.5)
    assert "p50 20.0 vs 30.0 ms" in detail
    assert "0.4 vs 0.9 s" in detail


def test_speedups_omit_shared_frames_alone() -> None:
    rows = report.speedups({"fanout": [_fanout_run("jangteo", [(30.0, 30.0)])]})

    assert not [name for name, _, _ in rows if name.startswith("shared frames")]

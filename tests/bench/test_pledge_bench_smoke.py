"""Smoke tests of the pledge and campaign fan-out benchmarks: tiny sizes, no timing asserted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import report
from bench.baselines.redis_bench_pledge import run_redis_benchmark_pledges
from bench.campaignload import next_units
from bench.run import FULL, QUICK, REDIS_BENCHMARK_CAMPAIGN_ID, prepare_database
from bench.scenarios.campaign_fanout import run_campaign_fanout
from bench.scenarios.fanout import FanoutPlan
from bench.scenarios.pledges import PledgeEnvironment, PledgeRun, run_pledges
from bench.services import DEBIAN_REDIS_BENCHMARK, postgres_database, raise_open_file_limit, start_redis

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PledgeEnvironment]:
    """A private Redis, a benchmark database with signed-in members, and their identities file."""
    raise_open_file_limit()
    redis = start_redis()
    try:
        with postgres_database() as database_url:
            identities = asyncio.run(prepare_database(database_url, redis.url))
            path = tmp_path_factory.mktemp("pledges") / "identities.json"
            path.write_text(json.dumps(identities), encoding="utf-8")
            yield PledgeEnvironment(redis, database_url, path)
    finally:
        redis.stop()


def test_next_units_alternates() -> None:
    """A pledger's totals go 1, 2, 1, 2, so every pledge changes its total."""
    assert next_units(0) == 1
    assert next_units(1) == 2
    assert next_units(2) == 1


def test_plans_cover_pledge_sizes() -> None:
    """The full plan pledges on 1 and 100 campaigns for both targets and fans out to 1,000 watchers."""
    assert {(run.target, run.campaigns) for run in FULL.pledge_runs} == {
        ("bare", 1), ("bare", 100), ("jangteo", 1), ("jangteo", 100),
    }
    assert all(run.pledgers == 100 for run in FULL.pledge_runs)
    assert {plan.watchers for plan in FULL.campaign_fanout_plans} == {1000}
    assert QUICK.campaign_fanout_repeats == 1


@pytest.mark.parametrize("target", ["bare", "jangteo"])
def test_pledge_scenario_runs(environment: PledgeEnvironment, target: str) -> None:
    """Five pledgers on two campaigns get every pledge accepted, through the bare endpoint and the web route."""
    result = run_pledges(environment, PledgeRun(target, 2, pledgers=5), warmup_s=0.2, duration_s=0.5)
    assert result["answered"] > 0
    assert result["accepted"] == result["answered"]
    assert result["rejection_codes"] == {}
    assert result["label"] == f"{target}, 2 campaigns"


@pytest.mark.skipif(not DEBIAN_REDIS_BENCHMARK.exists(), reason="redis-benchmark is not installed")
def test_redis_benchmark_pledges_accept(environment: PledgeEnvironment) -> None:
    """Every redis-benchmark call of pledge.lua takes the accepting path."""
    result = run_redis_benchmark_pledges(environment.redis.port, REDIS_BENCHMARK_CAMPAIGN_ID, requests=200, clients=5)
    assert result["accepted_share"] == 1.0
    assert result["calls_per_s"] > 0


@pytest.mark.parametrize("target", ["bare", "jangteo"])
def test_campaign_fanout_runs(environment: PledgeEnvironment, target: str) -> None:
    """Four watchers of one campaign all get the last of a burst of pledges, via the broadcast and the hub."""
    plan = FanoutPlan(watchers=4, triggers=2, spacing_s=0.05, burst=3)
    result = asyncio.run(run_campaign_fanout(environment, target, plan))
    assert result["throughput"]["watchers_with_last_bid"] == 4
    assert result["latency"]["missed_deliveries"] == 0
    assert result["latency"]["closed_sockets"] == {}


def test_pledge_goals_rendered() -> None:
    """Pledge results become goal rows and table rows, and goals without a measurement are not judged."""
    run = {
        "label": "jangteo, 1 campaign", "target": "jangteo", "campaigns": 1, "accepted_per_s": 500.0,
        "answered_per_s": 500.0, "ack_p50_ms": 10.0, "ack_p99_ms": 30.0, "server_cores": 1.0,
        "client_cores": 0.1, "redis_cores": 0.2, "load_average_1m": 1.0,
    }
    baseline = {"command": "redis-benchmark", "calls_per_s": 1000.0, "p50_ms": 1.0, "p99_ms": 2.0, "accepted_share": 1.0}
    results = {"pledges": [run], "redis_benchmark_pledges": baseline}
    goals = {goal["name"]: goal for goal in report.evaluate_goals(results)}
    assert goals["pledges/s, 1 campaign, ÷ redis-benchmark (a)"]["value"] == 0.5
    assert goals["pledges/s, 1 campaign, ÷ redis-benchmark (a)"]["met"] is True
    assert goals["pledge ack p99, 1 campaign, ÷ bare endpoint (b)"]["met"] is None
    assert goals["pledges/s, 100 campaigns, ÷ redis-benchmark (a)"]["met"] is None
    tables = "\n".join(report._pledge_tables(results))
    assert "| jangteo, 1 campaign | 500 |" in tables

"""Campaign counter fan-out: one campaign, N watchers in one server process.

The phases, the watcher clients and the figures are those of the lot fan-out
(`bench/scenarios/fanout.py`, `run_fanout`); only the trigger and the targets
differ:

- the trigger is a real pledge, `CampaignLive.pledge` on the benchmark's Redis, by
  one member whose total alternates between 1 and 2 units, so every pledge is
  accepted and pledge.lua publishes the campaign's snapshot on the events channel;
- `bare`: the same `websockets.broadcast` baseline as for lots
  (`bench/baselines/ws_broadcast.py`), which broadcasts the campaign hub's message
  to an anonymous watcher, rendered once per event (the campaign's title and tiers
  read once from PostgreSQL);
- `jangteo`: the web app's campaign hub on `/ws/campaigns/{id}`, which renders the
  counter fragments once per event and locale for anonymous watchers.

The time of each delivery runs from just before the pledge script is called to the
moment the last watcher has a message with that pledge's sequence number.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any

from redis.asyncio import Redis

from bench.bidload import bench_keys
from bench.campaignload import next_units
from bench.scenarios.fanout import FanoutPlan, run_fanout
from bench.scenarios.pledges import PledgeEnvironment, prepare_campaigns
from bench.services import ServerProcess, jangteo_argv, start_server
from embedded.common import find_free_port
from engine.groupbuy.live import CampaignLive

TRIGGER_USER_ID = 1  # pledges by the trigger never reach PostgreSQL, so any member id will do


class PledgeTrigger:
    """Places real pledges on one campaign, alternating one member's total between 1 and 2 units."""

    def __init__(self, redis_url: str, campaign_id: int) -> None:
        self.redis = Redis.from_url(redis_url)
        self.live = CampaignLive(self.redis, bench_keys())
        self.campaign_id = campaign_id
        self._units = 0
        self._counter = itertools.count(1)

    async def fire(self) -> tuple[int, int]:
        """Place one pledge; return the monotonic time (ns) taken just before the script call, and its seq."""
        units = next_units(self._units)
        started_ns = time.monotonic_ns()
        outcome = await self.live.pledge(
            self.campaign_id, user_id=TRIGGER_USER_ID, client_id=f"f{next(self._counter)}x{started_ns}", units=units,
        )
        if not outcome.accepted or outcome.receipt is None:
            raise RuntimeError(f"fan-out trigger pledge on campaign {self.campaign_id} was rejected: {outcome.code}")
        self._units = units
        return started_ns, outcome.receipt.seq

    async def close(self) -> None:
        await self.redis.aclose()


def start_campaign_fanout_server(target: str, environment: PledgeEnvironment) -> tuple[ServerProcess, str, str]:
    """Start one fan-out target; return it with the watchers' path prefix and protocol."""
    port = find_free_port()
    if target == "bare":
        argv = [
            "-m", "bench.baselines.ws_broadcast", "--port", str(port), "--redis-url", environment.redis.url,
            "--database-url", environment.database_url,
        ]
        return start_server("campaign-fanout-bare", argv, port), "/", "plain"
    argv = jangteo_argv(port)
    env = {"BENCH_REDIS_URL": environment.redis.url, "BENCH_DATABASE_URL": environment.database_url, "BENCH_PORT": str(port)}
    return start_server("campaign-fanout-jangteo", argv, port, env), "/ws/campaigns/", "jangteo"


async def run_campaign_fanout(
    environment: PledgeEnvironment, target: str, plan: FanoutPlan, *, profile: bool = False
) -> dict[str, Any]:
    """Run the fan-out phases for one target on a fresh campaign."""
    campaign_id = await prepare_campaigns(environment, 1)
    server, path_prefix, protocol = start_campaign_fanout_server(target, environment)
    trigger = PledgeTrigger(environment.redis.url, campaign_id)
    try:
        result = await run_fanout(
            target, server, plan, trigger, path=f"{path_prefix}{campaign_id}", protocol=protocol,  # type: ignore[arg-type]
            origin=f"http://127.0.0.1:{server.port}", profile=profile,
        )
        result["server_rss_mib"] = round(server.rss_bytes() / 2**20, 1)
    finally:
        await trigger.close()
        server.stop()
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    return result

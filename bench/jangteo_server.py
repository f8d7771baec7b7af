"""The Jangteo web app as the benchmarks run it: `create_app` with benchmark settings.

Environment: BENCH_DATABASE_URL, BENCH_REDIS_URL, BENCH_PORT (for the allowed
Origin), and the switches of the speed-up comparisons:
- BENCH_BATCHING=off: every script call is sent on its own (max_batch=1), as a
  redis-py call on a pooled connection, instead of in pipelines on the web app's
  `PipelinedConnection`;
- BENCH_NO_HIREDIS=1: redis-py parses replies in Python (hiredis hidden from import).
  The app's `PipelinedConnection` needs hiredis, so without it the batcher sends
  redis-py pipelines on pooled connections.

The bid benchmark bids through `/ws/bids` (`web/api/ws_bids.py`) and the pledge
benchmark pledges through `/ws/pledges` (`web/api/ws_pledges.py`), which
`create_app` registers like any other route.

Run: `uvicorn --factory bench.jangteo_server:create_bench_app`.
"""

from __future__ import annotations

import os
import sys

if os.environ.get("BENCH_NO_HIREDIS") == "1":
    # Must run before redis is imported: redis-py checks for hiredis at import time.
    sys.modules["hiredis"] = None  # type: ignore[assignment]

from starlette.applications import Starlette  # noqa: E402

from bench.bidload import BENCH_PREFIX  # noqa: E402
from engine.auction import batching  # noqa: E402
from engine.config import Settings  # noqa: E402
from web.gc_tuning import tune_garbage_collector  # noqa: E402

# Generous per-user limit: each benchmark bidder sends up to a few hundred bids per
# 10 s; the limiter still runs (one Redis call per bid), as on the HTTP route.
BENCH_BID_RATE = "100000/10seconds"


def _disable_batching() -> None:
    original_init = batching.ScriptBatcher.__init__

    def init_unbatched(self: batching.ScriptBatcher, redis, *, max_batch: int = 1, connection=None) -> None:  # type: ignore[no-untyped-def]
        original_init(self, redis, max_batch=1, connection=None)

    batching.ScriptBatcher.__init__ = init_unbatched  # type: ignore[method-assign]


def create_bench_app() -> Starlette:
    if os.environ.get("BENCH_BATCHING", "on") == "off":
        _disable_batching()
    from web.app import create_app

    settings = Settings(
        database_url=os.environ["BENCH_DATABASE_URL"],
        redis_url=os.environ["BENCH_REDIS_URL"],
        redis_prefix=BENCH_PREFIX,
        port=int(os.environ["BENCH_PORT"]),
        bid_rate=BENCH_BID_RATE,
        demo_data=False,
        secret_key="bench-only-secret",
    )
    # What `python -m web` does for the process before it starts the app.
    tune_garbage_collector(settings.gc_thresholds)
    return create_app(settings)

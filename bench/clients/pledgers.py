"""Closed-loop HTTP pledgers: each sends a pledge, waits for the response, sends the next.

Every pledger keeps one keep-alive connection (`httplite`). Protocols:
- `jangteo`: `POST /api/v1/campaigns/{id}/pledges` of the web app with the member's
  session cookie and CSRF token; an accepted pledge is answered with 201;
- `bare`: `POST /pledge/{id}?user=U` of `bench/baselines/starlette_pledge.py`, which
  answers with pledge.lua's raw reply (`"ok":true` when accepted).

Each pledger alternates its total on each campaign between 1 and 2 units, so every
pledge changes the total. A pledge counts when its response arrives inside the
measuring window. Prints one JSON line: accepted and answered counts, accepted
pledges/s and the acknowledgement latency.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import sys
import time

import orjson
import uvloop

from bench.campaignload import next_units
from bench.clients.bidders import Measurement
from bench.clients.httplite import open_connection, request_head
from bench.stats import latency_summary_ms

# Client ids must differ between runs on the same campaigns, or the script rejects them as `client_id_reused`.
RUN_TAG = secrets.token_hex(4)


async def run_pledger(
    args: argparse.Namespace, index: int, identity: dict, campaign_ids: list[int],
    measurement: Measurement, ready: asyncio.Event, go: asyncio.Event,
) -> None:
    connection = await open_connection(args.host, args.port)
    host = f"{args.host}:{args.port}"
    headers = {"Content-Type": "application/json", "Origin": args.origin}
    if args.protocol == "jangteo":
        headers["Cookie"] = f"jt_session={identity['session_id']}"
        headers["X-CSRF-Token"] = identity["csrf_token"]
    ready.set()
    await go.wait()
    rng = random.Random(index)
    totals = dict.fromkeys(campaign_ids, 0)
    sequence = 0
    while time.monotonic_ns() < measurement.stop_ns:
        campaign_id = campaign_ids[0] if len(campaign_ids) == 1 else rng.choice(campaign_ids)
        units = next_units(totals[campaign_id])
        sequence += 1
        body = orjson.dumps({"units": units, "client_id": f"{RUN_TAG}u{identity['user_id']}x{sequence}"})
        if args.protocol == "jangteo":
            path = f"/api/v1/campaigns/{campaign_id}/pledges"
        else:
            path = f"/pledge/{campaign_id}?user={identity['user_id']}"
        head = request_head("POST", path, host, headers, len(body))
        sent_ns = time.monotonic_ns()
        status, reply, arrival_ns = await asyncio.wait_for(connection.request(head, body), 30)
        accepted = status == 201 if args.protocol == "jangteo" else b'"ok":true' in reply
        if accepted:
            totals[campaign_id] = units
        # Measurement.record looks for an accepted marker in the reply.
        measurement.record(sent_ns, arrival_ns, b'"ok":true' if accepted else reply)
    assert connection.transport is not None
    connection.transport.close()


async def main(args: argparse.Namespace) -> dict:
    with open(args.identities, encoding="utf-8") as file:
        identities = json.load(file)
    first, count = (int(part) for part in args.campaigns.split(":"))
    campaign_ids = list(range(first, first + count))
    readies = [asyncio.Event() for _ in range(args.pledgers)]
    go = asyncio.Event()
    measurement = Measurement()
    tasks = [
        asyncio.create_task(run_pledger(
            args, index, identities[index % len(identities)], campaign_ids, measurement, readies[index], go,
        ))
        for index in range(args.pledgers)
    ]
    waiting = asyncio.gather(*(ready.wait() for ready in readies))
    done, _ = await asyncio.wait([waiting, *tasks], timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if waiting not in done:
        for task in done:
            task.result()  # raises the connection error that ended a pledger early
        raise TimeoutError("pledgers did not all connect within 120 s")
    start_ns = time.monotonic_ns()
    measurement.window_start_ns = start_ns + int(args.warmup * 1e9)
    measurement.window_end_ns = measurement.window_start_ns + int(args.duration * 1e9)
    measurement.stop_ns = measurement.window_end_ns
    cpu_start_s = time.process_time()
    go.set()
    await asyncio.gather(*tasks)
    wall_s = (time.monotonic_ns() - start_ns) / 1e9
    return {
        "client_cores": round((time.process_time() - cpu_start_s) / wall_s, 2),
        "pledgers": args.pledgers,
        "campaigns": count,
        "window_s": args.duration,
        "answered": measurement.answered,
        "accepted": measurement.accepted,
        "accepted_per_s": round(measurement.accepted / args.duration, 1),
        "answered_per_s": round(measurement.answered / args.duration, 1),
        "rejection_codes": measurement.codes,
        **{f"ack_{name}": value for name, value in latency_summary_ms(measurement.latencies_ns).items()},
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--protocol", choices=("jangteo", "bare"), required=True)
    parser.add_argument("--identities", required=True, help="JSON file: list of {user_id, session_id, csrf_token}")
    parser.add_argument("--pledgers", type=int, default=100, help="concurrent pledgers, one connection each")
    parser.add_argument("--campaigns", default="1:1", help="FIRST_ID:COUNT of the campaigns pledged on, chosen at random per pledge")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of pledging before the window (s)")
    parser.add_argument("--duration", type=float, default=10.0, help="length of the measuring window (s)")
    parser.add_argument("--origin", required=True, help="Origin header sent with every request")
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(uvloop.run(main(parse_args(sys.argv[1:])))), flush=True)

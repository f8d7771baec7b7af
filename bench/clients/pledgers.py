"""Closed-loop websocket pledgers: each sends a pledge, waits for its ack, sends the next.

Every pledger keeps one websocket (`wslite`). Both targets get the same messages
`{"type": "pledge", "campaign_id", "units", "client_id"}`. Protocols:
- `jangteo`: `/ws/pledges` of the web app (`web/api/ws_pledges.py`) with the
  member's session cookie and Origin, a hello message with the CSRF token, then
  pledges, each acknowledged by `{"type": "ack", "accepted": ...}`;
- `bare`: `/ws/pledge?user=U` of `bench/baselines/starlette_pledge.py`, which
  answers each message with pledge.lua's raw reply (`"ok":true` when accepted).

Each pledger alternates its total on each campaign between 1 and 2 units, so every
pledge changes the total. A pledge counts when its ack arrives inside the
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
from bench.clients.bidders import ACCEPTED_MARKERS, Measurement
from bench.clients.wslite import connect
from bench.stats import latency_summary_ms

# Client ids must differ between runs on the same campaigns, or the script rejects them as `client_id_reused`.
RUN_TAG = secrets.token_hex(4)


async def run_pledger(
    args: argparse.Namespace, index: int, identity: dict, campaign_ids: list[int],
    measurement: Measurement, ready: asyncio.Event, go: asyncio.Event,
) -> None:
    loop = asyncio.get_running_loop()
    reply_future: asyncio.Future[tuple[bytes, int]] | None = None

    def on_message(payload: bytes, arrival_ns: int) -> None:
        if reply_future is not None and not reply_future.done():
            reply_future.set_result((payload, arrival_ns))

    def on_closed(closed: asyncio.Future[None]) -> None:
        # Fails the pledge in flight at once instead of after the 30 s timeout.
        if reply_future is not None and not reply_future.done():
            reply_future.set_exception(closed_error())

    def closed_error() -> ConnectionError:
        return ConnectionError(f"server closed the socket of pledger {index} with code {socket.close_code}")

    headers = {"Origin": args.origin}
    path = args.path
    if args.protocol == "jangteo":
        headers["Cookie"] = f"jt_session={identity['session_id']}"
    else:
        path = f"{path}?user={identity['user_id']}"
    socket = await connect(args.host, args.port, path, headers=headers, on_message=on_message)
    socket.closed.add_done_callback(on_closed)
    if args.protocol == "jangteo":
        reply_future = loop.create_future()
        socket.send_text(orjson.dumps({"type": "hello", "csrf_token": identity["csrf_token"]}))
        payload, _ = await asyncio.wait_for(reply_future, 30)
        if b'"ready"' not in payload:
            raise RuntimeError(f"pledge socket of pledger {index} was not accepted: {payload!r}")
    ready.set()
    await go.wait()
    rng = random.Random(index)
    totals = dict.fromkeys(campaign_ids, 0)
    sequence = 0
    while time.monotonic_ns() < measurement.stop_ns:
        campaign_id = campaign_ids[0] if len(campaign_ids) == 1 else rng.choice(campaign_ids)
        units = next_units(totals[campaign_id])
        sequence += 1
        message = orjson.dumps({
            "type": "pledge", "campaign_id": campaign_id, "units": units,
            "client_id": f"{RUN_TAG}u{identity['user_id']}x{sequence}",
        })
        if socket.closed.done():
            raise closed_error()
        reply_future = loop.create_future()
        sent_ns = time.monotonic_ns()
        socket.send_text(message)
        payload, arrival_ns = await asyncio.wait_for(reply_future, 30)
        if any(marker in payload for marker in ACCEPTED_MARKERS):
            totals[campaign_id] = units
        measurement.record(sent_ns, arrival_ns, payload)
    socket.close()


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
    parser.add_argument("--path", default="/ws/pledge", help="websocket path: /ws/pledges for jangteo, /ws/pledge for bare")
    parser.add_argument("--protocol", choices=("jangteo", "bare"), required=True)
    parser.add_argument("--identities", required=True, help="JSON file: list of {user_id, session_id, csrf_token}")
    parser.add_argument("--pledgers", type=int, default=100, help="concurrent pledgers, one websocket each")
    parser.add_argument("--campaigns", default="1:1", help="FIRST_ID:COUNT of the campaigns pledged on, chosen at random per pledge")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of pledging before the window (s)")
    parser.add_argument("--duration", type=float, default=10.0, help="length of the measuring window (s)")
    parser.add_argument("--origin", required=True, help="Origin header sent on the handshake")
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(uvloop.run(main(parse_args(sys.argv[1:])))), flush=True)

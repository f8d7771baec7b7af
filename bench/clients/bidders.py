"""Closed-loop websocket bidders: each sends a bid, waits for its ack, sends the next.

Protocols:
- `jangteo`: `web/api/ws_bids.py` (session cookie, Origin, a hello message with the
  CSRF token, then `{"type": "bid", ...}` messages, each acknowledged by `{"type": "ack", ...}`);
- `bare`: the baseline endpoint of `bench/baselines/starlette_evalsha.py`, which
  answers each message with the bid script's raw reply.

A bid counts when its ack arrives inside the measuring window (after the warm-up).
Prints one JSON line: accepted and answered counts, accepted bids/s, ack latency.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import secrets
import sys
import time

import orjson
import uvloop

from bench.bidload import BASE_AMOUNT_WON, STEP_AMOUNT_WON
from bench.clients.wslite import connect
from bench.stats import latency_summary_ms

# Client ids must differ between runs on the same lots, or the script rejects them as `client_id_reused`.
RUN_TAG = secrets.token_hex(4)
ACCEPTED_MARKERS = (b'"accepted":true', b'"ok":true')


class Measurement:
    def __init__(self) -> None:
        # Set once every bidder is connected; bids stop at stop_ns.
        self.window_start_ns = 0
        self.window_end_ns = 0
        self.stop_ns = 0
        self.accepted = 0
        self.answered = 0
        self.latencies_ns: list[int] = []
        self.codes: dict[str, int] = {}

    def record(self, sent_ns: int, arrival_ns: int, reply: bytes) -> None:
        if sent_ns < self.window_start_ns or arrival_ns > self.window_end_ns:
            return
        self.answered += 1
        self.latencies_ns.append(arrival_ns - sent_ns)
        if any(marker in reply for marker in ACCEPTED_MARKERS):
            self.accepted += 1
        else:
            data = orjson.loads(reply)
            code = str(data.get("code") or (data.get("error") or {}).get("code", "?"))
            self.codes[code] = self.codes.get(code, 0) + 1


async def run_bidder(
    args: argparse.Namespace, index: int, identity: dict, counters: dict[int, itertools.count],
    lot_ids: list[int], measurement: Measurement, ready: asyncio.Event, go: asyncio.Event,
) -> None:
    reply_future: asyncio.Future[tuple[bytes, int]] | None = None

    def on_message(payload: bytes, arrival_ns: int) -> None:
        if reply_future is not None and not reply_future.done():
            reply_future.set_result((payload, arrival_ns))

    headers = {"Origin": args.origin}
    path = args.path
    if args.protocol == "jangteo":
        headers["Cookie"] = f"jt_session={identity['session_id']}"
    else:
        path = f"{path}?user={identity['user_id']}"
    loop = asyncio.get_running_loop()
    socket = await connect(args.host, args.port, path, headers=headers, on_message=on_message)
    if args.protocol == "jangteo":
        reply_future = loop.create_future()
        socket.send_text(orjson.dumps({"type": "hello", "csrf_token": identity["csrf_token"]}))
        payload, _ = await asyncio.wait_for(reply_future, 30)
        if b'"ready"' not in payload:
            raise RuntimeError(f"bid socket of bidder {index} was not accepted: {payload!r}")
    ready.set()
    await go.wait()
    rng = random.Random(index)
    sequence = 0
    while time.monotonic_ns() < measurement.stop_ns:
        lot_id = lot_ids[0] if len(lot_ids) == 1 else rng.choice(lot_ids)
        amount = BASE_AMOUNT_WON + next(counters[lot_id]) * STEP_AMOUNT_WON
        sequence += 1
        message = orjson.dumps({
            "type": "bid", "lot_id": lot_id, "amount_won": amount,
            "client_id": f"{RUN_TAG}u{identity['user_id']}x{sequence}",
        })
        reply_future = loop.create_future()
        sent_ns = time.monotonic_ns()
        socket.send_text(message)
        payload, arrival_ns = await asyncio.wait_for(reply_future, 30)
        measurement.record(sent_ns, arrival_ns, payload)
    socket.close()


async def main(args: argparse.Namespace) -> dict:
    with open(args.identities, encoding="utf-8") as file:
        identities = json.load(file)
    first, count = (int(part) for part in args.lots.split(":"))
    lot_ids = list(range(first, first + count))
    counters = {lot_id: itertools.count() for lot_id in lot_ids}
    readies = [asyncio.Event() for _ in range(args.bidders)]
    go = asyncio.Event()
    measurement = Measurement()
    tasks = [
        asyncio.create_task(run_bidder(
            args, index, identities[index % len(identities)], counters, lot_ids, measurement, readies[index], go,
        ))
        for index in range(args.bidders)
    ]
    waiting = asyncio.gather(*(ready.wait() for ready in readies))
    done, _ = await asyncio.wait([waiting, *tasks], timeout=120, return_when=asyncio.FIRST_COMPLETED)
    if waiting not in done:
        for task in done:
            task.result()  # raises the connection error that ended a bidder early
        raise TimeoutError("bidders did not all connect within 120 s")
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
        "bidders": args.bidders,
        "lots": count,
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
    parser.add_argument("--path", default="/ws/bid")
    parser.add_argument("--protocol", choices=("jangteo", "bare"), required=True)
    parser.add_argument("--identities", required=True, help="JSON file: list of {user_id, session_id, csrf_token}")
    parser.add_argument("--bidders", type=int, default=100, help="concurrent websocket bidders")
    parser.add_argument("--lots", default="1:1", help="FIRST_ID:COUNT of the lots bid on, chosen at random per bid")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of bidding before the window (s)")
    parser.add_argument("--duration", type=float, default=10.0, help="length of the measuring window (s)")
    parser.add_argument("--origin", required=True, help="Origin header sent on the handshake")
    return parser.parse_args(argv)


if __name__ == "__main__":
    print(json.dumps(uvloop.run(main(parse_args(sys.argv[1:])))), flush=True)

"""Websocket watchers of one lot: connect N sockets, then record when each message arrives.

Driven by commands on stdin; each command gets one JSON line on stdout:
- (start)            -> {"ready": N} once every socket is open (and joined, for socket.io,
                        or has its snapshot, for Jangteo)
- `stall K`          -> stop reading on the first K sockets (they stay open, unread)
- `arm`              -> forget earlier arrivals (connection snapshots, pings)
- `latency T1:S1,..` -> for each trigger time Tk (monotonic ns) and the sequence number Sk
                        its bid produced: the latest time at which a reading socket first
                        had a message with sequence number >= Sk, and how many had one
- `drain SINCE SEQ`  -> how many reading sockets got a message with sequence number >= SEQ,
                        the latest first such arrival, and the messages since SINCE
- `quit`             -> close everything and exit

A message's sequence number is the largest `"seq":N` (JSON events) or `data-seq="N"`
(Jangteo's HTML fragments) in it, so a message that carries several coalesced
events counts for all of them.

Protocols: `plain` (every frame is an event), `jangteo` (the hub's lot socket; the
first frame is the snapshot, before `arm`), `socketio` (Engine.IO 4: answers the
open packet with a namespace connect, pings "2" with "3", counts only "42" events).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections import Counter

import uvloop

from bench.clients.wslite import LiteWebSocket, connect
from bench.stats import latency_summary_ms

CONNECT_CONCURRENCY = 100
_SEQ = re.compile(rb'(?:"seq":\s*|data-seq=")(\d+)')


class WatcherSocket:
    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.arrivals: list[int] = []
        self.seqs: list[int] = []
        self.socket: LiteWebSocket | None = None
        self.joined = asyncio.get_running_loop().create_future()
        self.stalled = False
        # Frames to send that arrived before `connect` returned the socket (the
        # Engine.IO open packet can come in the same read as the 101 response).
        self._unsent: list[bytes] = []
        if protocol == "plain":
            self.joined.set_result(None)

    def attach(self, socket: LiteWebSocket) -> None:
        self.socket = socket
        for frame in self._unsent:
            socket.send_text(frame)
        self._unsent.clear()

    def send(self, frame: bytes) -> None:
        if self.socket is None:
            self._unsent.append(frame)
        else:
            self.socket.send_text(frame)

    def on_message(self, payload: bytes, arrival_ns: int) -> None:
        if self.protocol == "socketio":
            if payload.startswith(b"42"):
                self._record(payload, arrival_ns)
            elif payload == b"2":
                self.send(b"3")
            elif payload.startswith(b"0{"):
                self.send(b"40")
            elif payload.startswith(b"40") and not self.joined.done():
                self.joined.set_result(None)
            return
        if self.protocol == "jangteo" and not self.joined.done():
            # The hub's first frame is the lot's snapshot; ready only once it is here, so
            # snapshot rendering does not overlap the measured bids.
            self.joined.set_result(None)
            return
        self._record(payload, arrival_ns)

    def _record(self, payload: bytes, arrival_ns: int) -> None:
        self.arrivals.append(arrival_ns)
        self.seqs.append(max((int(found) for found in _SEQ.findall(payload)), default=-1))

    def first_arrival_at_or_after(self, seq: int) -> int | None:
        for arrival, seen in zip(self.arrivals, self.seqs):
            if seen >= seq:
                return arrival
        return None

    @property
    def closed(self) -> bool:
        return self.socket is not None and self.socket.close_code is not None


async def open_watchers(args: argparse.Namespace) -> list[WatcherSocket]:
    watchers = [WatcherSocket(args.protocol) for _ in range(args.count)]
    limit = asyncio.Semaphore(CONNECT_CONCURRENCY)
    headers = {"Origin": args.origin}

    async def open_one(watcher: WatcherSocket) -> None:
        async with limit:
            watcher.attach(
                await connect(args.host, args.port, args.path, headers=headers, on_message=watcher.on_message)
            )
            await asyncio.wait_for(watcher.joined, 60)

    await asyncio.gather(*(open_one(watcher) for watcher in watchers))
    return watchers


def _reading(watchers: list[WatcherSocket]) -> list[WatcherSocket]:
    return [watcher for watcher in watchers if not watcher.stalled]


def _close_codes(watchers: list[WatcherSocket]) -> dict[str, int]:
    return dict(Counter(str(watcher.socket.close_code) for watcher in watchers if watcher.closed and watcher.socket))


def latency_report(watchers: list[WatcherSocket], triggers: list[tuple[int, int]]) -> dict:
    reading = _reading(watchers)
    per_trigger_max = [0] * len(triggers)
    delivered = [0] * len(triggers)
    all_latencies: list[int] = []
    for watcher in reading:
        for index, (trigger_ns, seq) in enumerate(triggers):
            arrival_ns = watcher.first_arrival_at_or_after(seq)
            if arrival_ns is None:
                continue
            latency = arrival_ns - trigger_ns
            delivered[index] += 1
            all_latencies.append(latency)
            per_trigger_max[index] = max(per_trigger_max[index], latency)
    return {
        "per_trigger_max_ns": per_trigger_max,
        "delivered": delivered,
        "reading": len(reading),
        "closed": _close_codes(watchers),
        "delivery": latency_summary_ms(all_latencies),
    }


def drain_report(watchers: list[WatcherSocket], since_ns: int, seq: int) -> dict:
    reading = _reading(watchers)
    got = 0
    last_ns = 0
    messages = 0
    for watcher in reading:
        messages += sum(1 for arrival in watcher.arrivals if arrival >= since_ns)
        arrival_ns = watcher.first_arrival_at_or_after(seq)
        if arrival_ns is not None:
            got += 1
            last_ns = max(last_ns, arrival_ns)
    return {"got": got, "last_ns": last_ns, "messages": messages, "reading": len(reading), "closed": _close_codes(watchers)}


async def main(args: argparse.Namespace) -> None:
    watchers = await open_watchers(args)
    emit({"ready": len(watchers)})
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if not line or line == "quit":
            break
        command, _, argument = line.partition(" ")
        if command == "stall":
            for watcher in watchers[: int(argument)]:
                watcher.stalled = True
                assert watcher.socket is not None
                watcher.socket.pause_reading()
            emit({"stalled": int(argument)})
        elif command == "arm":
            for watcher in watchers:
                watcher.arrivals.clear()
                watcher.seqs.clear()
            emit({"armed": time.monotonic_ns()})
        elif command == "latency":
            pairs = [pair.split(":") for pair in argument.split(",")]
            emit(latency_report(watchers, [(int(time_ns), int(seq)) for time_ns, seq in pairs]))
        elif command == "drain":
            since_ns, seq = argument.split()
            emit(drain_report(watchers, int(since_ns), int(seq)))
        else:
            emit({"error": f"unknown command {command!r}"})
    for watcher in watchers:
        if watcher.socket is not None:
            watcher.socket.close()
    await asyncio.sleep(0.2)


def emit(result: dict) -> None:
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Websocket watchers for the fan-out benchmark.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", required=True, help="websocket path with its query string")
    parser.add_argument("--count", type=int, required=True, help="sockets this process opens")
    parser.add_argument("--protocol", choices=("plain", "jangteo", "socketio"), required=True)
    parser.add_argument("--origin", required=True, help="Origin header sent on the handshake")
    return parser.parse_args(argv)


if __name__ == "__main__":
    uvloop.run(main(parse_args(sys.argv[1:])))

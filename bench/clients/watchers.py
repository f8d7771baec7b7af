"""Websocket watchers of one lot: connect N sockets, then record when each message arrives.

Driven by commands on stdin, answered by one JSON line each on stdout:
- (start)            -> {"ready": N} once every socket is open (and joined, for socket.io)
- `stall K`          -> stop reading on the first K sockets (they stay open, unread)
- `arm`              -> forget earlier arrivals (connection snapshots, pings)
- `latency T1,T2,..` -> for trigger times Tk (monotonic ns), per trigger: the latest
                        arrival of the k-th message over the reading sockets, and how many got it
- `count SINCE`      -> messages that arrived at or after SINCE on reading sockets, and the last arrival
- `quit`             -> close everything and exit

Protocols: `plain` (every frame is an event), `jangteo` (the hub's lot socket; the
first frame is the snapshot, before `arm`), `socketio` (Engine.IO 4: answers the
open packet with a namespace connect, pings "2" with "3", counts only "42" events).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import uvloop

from bench.clients.wslite import LiteWebSocket, connect
from bench.stats import latency_summary_ms

CONNECT_CONCURRENCY = 100


class WatcherSocket:
    def __init__(self, protocol: str) -> None:
        self.protocol = protocol
        self.arrivals: list[int] = []
        self.socket: LiteWebSocket | None = None
        self.joined = asyncio.get_running_loop().create_future()
        self.stalled = False
        # Frames to send that arrived before `connect` returned the socket (the
        # Engine.IO open packet can come in the same read as the 101 answer).
        self._unsent: list[bytes] = []
        if protocol != "socketio":
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
                self.arrivals.append(arrival_ns)
            elif payload == b"2":
                self.send(b"3")
            elif payload.startswith(b"0{"):
                self.send(b"40")
            elif payload.startswith(b"40") and not self.joined.done():
                self.joined.set_result(None)
            return
        self.arrivals.append(arrival_ns)


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


def latency_report(watchers: list[WatcherSocket], triggers_ns: list[int]) -> dict:
    """Match the k-th message after `arm` to the k-th trigger (each socket receives in order)."""
    reading = [watcher for watcher in watchers if not watcher.stalled]
    per_trigger_max = [0] * len(triggers_ns)
    delivered = [0] * len(triggers_ns)
    all_latencies: list[int] = []
    for watcher in reading:
        for index, (trigger_ns, arrival_ns) in enumerate(zip(triggers_ns, watcher.arrivals)):
            latency = arrival_ns - trigger_ns
            delivered[index] += 1
            all_latencies.append(latency)
            per_trigger_max[index] = max(per_trigger_max[index], latency)
    return {
        "per_trigger_max_ns": per_trigger_max,
        "delivered": delivered,
        "reading": len(reading),
        "delivery": latency_summary_ms(all_latencies),
    }


def count_report(watchers: list[WatcherSocket], since_ns: int) -> dict:
    count = 0
    last = 0
    for watcher in watchers:
        if watcher.stalled:
            continue
        for arrival in watcher.arrivals:
            if arrival >= since_ns:
                count += 1
                last = max(last, arrival)
    return {"count": count, "last_ns": last}


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
            emit({"armed": time.monotonic_ns()})
        elif command == "latency":
            emit(latency_report(watchers, [int(value) for value in argument.split(",")]))
        elif command == "count":
            emit(count_report(watchers, int(argument)))
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

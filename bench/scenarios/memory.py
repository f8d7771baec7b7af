"""Memory per idle websocket: the server process's RSS growth over N idle connections.

RSS is read with psutil after a warm-up of `WARMUP_SOCKETS` connections (so code
paths and pools are already paid for), then again after N more connections have
been open for `SETTLE_S` seconds; the difference divided by N is the figure.
"""

from __future__ import annotations

import time
from typing import Any

from bench.services import ServerProcess, start_client

WARMUP_SOCKETS = 20
SETTLE_S = 2.0


def _open(server: ServerProcess, path: str, count: int, origin: str):  # type: ignore[no-untyped-def]
    client = start_client("bench.clients.watchers", [
        "--port", str(server.port), "--path", path, "--count", str(count), "--protocol", "plain", "--origin", origin,
    ])
    message = client.read_message()
    if message.get("ready") != count:
        client.kill()
        raise RuntimeError(f"idle sockets did not all connect to {server.name}: {message}")
    return client


def measure_idle_memory(server: ServerProcess, path: str, count: int, origin: str) -> dict[str, Any]:
    warmup = _open(server, path, WARMUP_SOCKETS, origin)
    try:
        time.sleep(SETTLE_S)
        before = server.rss_bytes()
        idle = _open(server, path, count, origin)
        try:
            time.sleep(SETTLE_S)
            after = server.rss_bytes()
        finally:
            idle.quit()
    finally:
        warmup.quit()
    return {
        "target": server.name,
        "sockets": count,
        "rss_before_mib": round(before / 2**20, 1),
        "rss_after_mib": round(after / 2**20, 1),
        "bytes_per_socket": round((after - before) / count),
    }

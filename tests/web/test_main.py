"""`python -m web` as a real uvicorn process."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import httpx
import pytest

from embedded.common import LOOPBACK, find_free_port
from engine.config import Settings

pytestmark = pytest.mark.slow


async def _wait_until_ready(url: str, process: asyncio.subprocess.Process) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        while True:
            if process.returncode is not None:
                raise AssertionError(f"python -m web exited with {process.returncode} before it was ready")
            try:
                return await client.get(url)
            except httpx.TransportError:
                await asyncio.sleep(0.05)


async def test_main_serves_and_stops_on_sigterm(settings: Settings) -> None:
    """The server serves /readyz and the home page, logs key=value lines and shuts down cleanly on SIGTERM."""
    port = find_free_port()
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url or "",
        "REDIS_URL": settings.redis_url or "",
        "REDIS_PREFIX": settings.redis_prefix,
        "HOST": LOOPBACK,
        "PORT": str(port),
        "GC_THRESHOLDS": "[40000, 15, 15]",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "web", env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        ready = await _wait_until_ready(f"http://{LOOPBACK}:{port}/readyz", process)
        assert ready.status_code == 200
        async with httpx.AsyncClient() as client:
            home = await client.get(f"http://{LOOPBACK}:{port}/")
        assert home.status_code == 200
        assert "광산구 장터" in home.text
        async with httpx.AsyncClient() as client:
            metrics = await client.get(f"http://{LOOPBACK}:{port}/metrics")
        assert "jangteo_gc_pause_seconds_bucket" in metrics.text
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        _stdout, stderr = await process.communicate()

    # uvicorn (0.29 and later) re-raises the captured SIGTERM after its shutdown finished.
    assert process.returncode in (0, -signal.SIGTERM)
    log_lines = stderr.decode().splitlines()
    assert any("logger=jangteo.web " in line and 'msg="web started' in line for line in log_lines)
    assert any("route=/readyz status=200" in line for line in log_lines)
    assert any('msg="web stopped"' in line for line in log_lines)
    assert any("logger=jangteo.web.gc" in line and "gc thresholds=40000,15,15" in line for line in log_lines)
    assert all(line.startswith("ts=") for line in log_lines), log_lines

"""Run the web process: `python -m web` (host and port from the settings, PORT env)."""

from __future__ import annotations

import logging
import os
import sys
import time

import uvicorn

from engine.config import get_settings
from web.gc_tuning import tune_garbage_collector
from web.live.ws_protocol import uvicorn_websocket_options

GRACEFUL_SHUTDOWN_S = 10


class KeyValueFormatter(logging.Formatter):
    """One line per record: `ts=... level=... logger=... msg="..."`, plus the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        timestamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        message = record.getMessage().replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        line = (
            f'ts={timestamp}.{int(record.msecs):03d}Z level={record.levelname.lower()}'
            f' logger={record.name} msg="{message}"'
        )
        if record.exc_info:
            line += ' exc="' + self.formatException(record.exc_info).replace("\n", "\\n").replace('"', '\\"') + '"'
        return line


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True


def main() -> None:
    settings = get_settings()
    configure_logging(os.environ.get("LOG_LEVEL", "INFO").upper())
    tune_garbage_collector(settings.gc_thresholds)
    uvicorn.run(
        "web.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,  # PORT in the environment
        loop="uvloop",
        http="httptools",
        # Not behind a trusted proxy by default: the peer address is the client, so a
        # forged X-Forwarded-For cannot dodge the per-address login limit.
        proxy_headers=False,
        # The request log middleware writes one line per request instead.
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        **uvicorn_websocket_options(settings),
    )


if __name__ == "__main__":
    main()

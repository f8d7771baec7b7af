"""uvicorn's websocket protocol with one addition: shared, pre-encoded text frames.

It reads private attributes of uvicorn 0.55's `WebSocketsSansIOProtocol`, so
pyproject.toml pins uvicorn to 0.55.x, and tests/web/live/test_shared_frames.py
checks the writer against a real server.

A bid's update goes to every watcher of the lot as the same text. Through ASGI each
send is a `websocket.send` message that uvicorn encodes to UTF-8 and frames for
that one connection, so a fan-out to 5,000 watchers encoded the same text 5,000
times. `websockets.broadcast` encodes the text once, and this protocol lets the app
go further. Without negotiated extensions, a server's frame of a text is the same
bytes on every connection. So `web.live.connection` encodes each message
once per event-loop pass (`text_frame`) and hands the bytes to each connection's
writer, which the ASGI scope contains under `SHARED_FRAMES`.

The writer is synchronous and only writes when an ordinary send would go through
at once: the handshake is complete, no close was sent or received, and the
transport is not paused by backpressure. Otherwise it returns False and the
caller sends the text the ASGI way, which waits, raises and closes as usual.
Connections that negotiated permessage-deflate get no writer, because their
frames are compressed per connection. The web process turns compression off
(`Settings.ws_compression`) by default, because the fragments are small and a
compressor costs every connection memory and every message CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State

from engine.config import Settings

# The ASGI scope extension with a connection's writer, called as `writer(frame) -> bool`.
SHARED_FRAMES = "jangteo.websocket.shared_frames"

FrameWriter = Callable[[bytes], bool]


def uvicorn_websocket_options(settings: Settings) -> dict[str, Any]:
    """Return uvicorn's websocket options for the web app: this protocol, compression and frame limit.

    uvicorn rejects larger frames (close 1009) before they reach the app.
    """
    return {
        "ws": SharedFrameProtocol,
        "ws_per_message_deflate": settings.ws_compression,
        "ws_max_size": settings.max_ws_frame_bytes,
    }


def text_frame(text: str) -> bytes:
    """Encode `text` as one final, unmasked text frame with no extension, as a server sends it."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False, extensions=[])


def frame_writer(scope: dict[str, Any]) -> FrameWriter | None:
    """Return the shared-frame writer of a websocket connection, or None when its server offers none."""
    extensions = scope.get("extensions") or {}
    return extensions.get(SHARED_FRAMES)  # type: ignore[no-any-return]


class SharedFrameProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O websocket protocol that also accepts frames encoded by the app."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The app's task was created above but has not run yet, so the scope can
        # still gain an extension. A refused handshake has no scope.
        if self.response.status_code == 101 and not self.conn.extensions:
            self.scope["extensions"][SHARED_FRAMES] = self.write_frame

    def write_frame(self, frame: bytes) -> bool:
        """Write a frame from `text_frame` now, or return False when a send would have to wait or fail."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or self.initial_response is not None
            or self.conn.state is not State.OPEN
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        self.transport.write(frame)
        return True

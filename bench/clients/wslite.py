"""A minimal websocket client on an asyncio Protocol, cheap enough for 5,000 sockets per process.

It speaks only what the benchmarks need: the HTTP upgrade, unfragmented text and
binary frames from the server, ping -> pong, and close. Outgoing frames use an
all-zero masking key, which servers accept (RFC 6455 asks for an unpredictable key
to protect proxies, which a loopback benchmark does not have). Each received message
is handed to `on_message(payload, arrival_ns)` with `time.monotonic_ns()` taken when
the bytes arrived, before any parsing by the caller.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable, Mapping

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_ZERO_MASK = b"\x00\x00\x00\x00"


class HandshakeError(Exception):
    pass


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """Encode one final, masked client frame (all-zero key, so the payload goes out unchanged)."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + _ZERO_MASK + payload


class LiteWebSocket(asyncio.Protocol):
    def __init__(self, on_message: Callable[[bytes, int], None] | None = None) -> None:
        self.on_message = on_message or (lambda payload, arrival_ns: None)
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._handshake_done = False
        # The close code the server sent, or 1006 when the connection ended without one.
        self.close_code: int | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol ---------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.close_code is None:
            self.close_code = 1006
        if not self.opened.done():
            self.opened.set_exception(exc or HandshakeError("connection closed during the handshake"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        arrival_ns = time.monotonic_ns()
        self._buffer += data
        if not self._handshake_done:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end])
            del self._buffer[: end + 4]
            status_line = head.split(b"\r\n", 1)[0]
            if b" 101 " not in status_line + b" ":
                self.opened.set_exception(HandshakeError(status_line.decode("latin-1")))
                assert self.transport is not None
                self.transport.close()
                return
            self._handshake_done = True
            self.opened.set_result(None)
        self._parse_frames(arrival_ns)

    # -- frames -------------------------------------------------------------------
    def _parse_frames(self, arrival_ns: int) -> None:
        buffer = self._buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length = second & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length = struct.unpack_from("!H", buffer, 2)[0]
                offset = 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length = struct.unpack_from("!Q", buffer, 2)[0]
                offset = 10
            if len(buffer) < offset + length:
                return
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            opcode = first & 0x0F
            if opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
                self.on_message(payload, arrival_ns)
            elif opcode == OP_PING:
                self._write(encode_frame(OP_PONG, payload))
            elif opcode == OP_CLOSE:
                self.close_code = struct.unpack_from("!H", payload)[0] if len(payload) >= 2 else 1005
                self._write(encode_frame(OP_CLOSE, payload[:2]))
                assert self.transport is not None
                self.transport.close()
                return

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def send_text(self, text: str | bytes) -> None:
        self._write(encode_frame(OP_TEXT, text.encode() if isinstance(text, str) else text))

    def pause_reading(self) -> None:
        """Stop reading the socket, as a stalled browser tab would (the server's sends back up)."""
        assert self.transport is not None
        self.transport.pause_reading()

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self._write(encode_frame(OP_CLOSE, struct.pack("!H", 1000)))
            self.transport.close()


async def connect(
    host: str,
    port: int,
    path: str,
    *,
    headers: Mapping[str, str] | None = None,
    on_message: Callable[[bytes, int], None] | None = None,
    timeout_s: float = 30.0,
) -> LiteWebSocket:
    """Open a websocket to ws://host:port/path and wait for the 101 response."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(lambda: LiteWebSocket(on_message), host, port)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    assert protocol.transport is not None
    protocol.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    await asyncio.wait_for(asyncio.shield(protocol.opened), timeout_s)
    return protocol

"""A small keep-alive HTTP/1.1 client for benchmark load: one request in flight per connection.

Like `wslite`, it costs little CPU per request, so the client process does not
compete much with the server for the machine's cores. It reads responses framed by
`Content-Length` only (uvicorn sets it on every JSON response); chunked bodies are
not supported and raise `ValueError`.
"""

from __future__ import annotations

import asyncio
import time


class KeepAliveConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._reply: asyncio.Future[tuple[int, bytes, int]] | None = None
        self._lost: BaseException | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: BaseException | None) -> None:
        self._lost = exc or ConnectionResetError("server closed the connection")
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(self._lost)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0 or self._reply is None or self._reply.done():
            return
        head = bytes(self._buffer[:end]).split(b"\r\n")
        length = None
        for line in head[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"transfer-encoding":
                self._reply.set_exception(ValueError(f"unsupported response framing: {line!r}"))
                return
        if length is None:
            self._reply.set_exception(ValueError(f"response without Content-Length: {head[0]!r}"))
            return
        if len(self._buffer) < end + 4 + length:
            return
        body = bytes(self._buffer[end + 4:end + 4 + length])
        del self._buffer[:end + 4 + length]
        status = int(head[0].split(b" ", 2)[1])
        self._reply.set_result((status, body, time.monotonic_ns()))

    async def request(self, head: bytes, body: bytes) -> tuple[int, bytes, int]:
        """Send one request (`head` ends with the blank line); return status, body and arrival time (ns)."""
        if self._lost is not None:
            raise self._lost
        assert self.transport is not None
        self._reply = asyncio.get_running_loop().create_future()
        self.transport.write(head + body)
        return await self._reply


async def open_connection(host: str, port: int) -> KeepAliveConnection:
    _, protocol = await asyncio.get_running_loop().create_connection(KeepAliveConnection, host, port)
    return protocol


def request_head(method: str, path: str, host: str, headers: dict[str, str], body_length: int) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {body_length}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()

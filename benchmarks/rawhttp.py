"""A minimal HTTP/1.1 client for the sustained load: one keep-alive connection per worker.

httpx costs a Python client far more per request than either server spends answering a
get, and reading a list of a thousand agents through it costs more still: with 64 clients
in one process the driver, not the server, set the pace, and both sides measured alike. This
client writes a prepared request and reads the answer with asyncio streams: the status line,
the headers, and the body by ``Content-Length`` or chunk by chunk, without parsing it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

__all__ = ["RawConnection", "RawTarget"]


@dataclass(frozen=True, slots=True)
class RawTarget:
    """Where to connect (a unix socket path, or host and port) and the headers to send."""

    host: str = "127.0.0.1"
    port: int = 0
    unix_socket: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


class RawConnection:
    """One kept-alive connection; ``get`` returns the status of one GET, body read whole."""

    def __init__(self, target: RawTarget) -> None:
        self._target = target
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        extra = "".join(f"{name}: {value}\r\n" for name, value in target.headers)
        self._head = f"Host: {target.host}\r\n{extra}\r\n".encode("latin-1")

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._streams is None:
            if self._target.unix_socket is not None:
                self._streams = await asyncio.open_unix_connection(
                    self._target.unix_socket, limit=1 << 20
                )
            else:
                self._streams = await asyncio.open_connection(
                    self._target.host, self._target.port, limit=1 << 20
                )
        return self._streams

    async def get(self, path: str) -> int:
        reader, writer = await self._open()
        try:
            writer.write(b"GET " + path.encode("latin-1") + b" HTTP/1.1\r\n" + self._head)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lines = head.lower().split(b"\r\n")[1:]
            fields = dict(line.split(b":", 1) for line in lines if b":" in line)
            if b"content-length" in fields:
                await reader.readexactly(int(fields[b"content-length"]))
            elif b"chunked" in fields.get(b"transfer-encoding", b""):
                while size := int((await reader.readuntil(b"\r\n"))[:-2].split(b";")[0], 16):
                    await reader.readexactly(size + 2)
                await reader.readuntil(b"\r\n")
            if b"close" in fields.get(b"connection", b""):
                self.close()
            return status
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None

"""Slow and surplus connections, handled in the HTTP protocol before the app sees them.

uvicorn closes an idle keep-alive connection, but nothing bounds how long a client may
take to send a request's headers or its body: one byte a minute would hold a connection
(and, for a body, a task) forever. ``guarded_protocol`` makes uvicorn's httptools protocol
(llhttp, a C parser) with

- a header deadline: from a new connection, or the first byte of the next request on a
  kept-alive one, the headers must be complete within ``header_timeout`` seconds;
- a body deadline: from the end of the headers, the body must be complete within
  ``body_timeout`` seconds;
- a connection cap: past ``max_connections`` open connections, a new one is answered
  503 ``too_many_connections`` (problem+json, ``Retry-After``) and closed at once.

A connection past a deadline is closed; an app waiting for its body sees a disconnect.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from loguru import logger
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["guarded_protocol"]


def _busy_response(retry_after: int) -> bytes:
    body = json.dumps(
        {
            "type": "urn:agent-platform:problem:too_many_connections",
            "title": "Service Unavailable",
            "status": 503,
            "detail": "the service has too many open connections; retry later",
            "instance": "/",
            "code": "too_many_connections",
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "content-type: application/problem+json\r\n"
        f"content-length: {len(body)}\r\n"
        f"retry-after: {retry_after}\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


class _GuardedProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 500
    busy_response: bytes = _busy_response(5)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: str | None = None  # "headers" or "body"

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            logger.warning("refused a connection: {} are open", len(self.connections) - 1)
            transport.write(self.busy_response)
            transport.close()
            return
        self._arm("headers", self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # The parser's callbacks: a request's first byte, its headers' end, its body's end.
    def on_message_begin(self) -> None:
        if self._waiting_for != "headers":  # the next request on a kept-alive connection
            self._arm("headers", self.header_timeout)
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        if _announces_body(self.headers):
            self._arm("body", self.body_timeout)
        else:
            self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self, what: str, seconds: float) -> None:
        self._disarm()
        self._waiting_for = what
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline, self._waiting_for = None, None

    def _expired(self) -> None:
        what = self._waiting_for
        self._deadline, self._waiting_for = None, None
        if self.transport is not None and not self.transport.is_closing():
            seconds = self.header_timeout if what == "headers" else self.body_timeout
            logger.warning("closed a connection: the request's {} took over {} s", what, seconds)
            self.transport.close()


def _announces_body(headers: list[tuple[bytes, bytes]]) -> bool:
    """A body follows the headers (names arrive lower-cased)."""
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def guarded_protocol(
    *, header_timeout: float, body_timeout: float, max_connections: int, retry_after: int
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with these deadlines and this cap (pass it as ``http=``)."""
    return type(
        "GuardedHttpToolsProtocol",
        (_GuardedProtocol,),
        {
            "header_timeout": header_timeout,
            "body_timeout": body_timeout,
            "max_connections": max_connections,
            "busy_response": _busy_response(retry_after),
        },
    )

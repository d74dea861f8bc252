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
  503 ``too_many_connections`` (problem+json, ``Retry-After``) and closed at once;
- problem+json for what the parser refuses: 405 for a method it does not know (the API's
  methods are all standard ones), 400 for bytes that are not HTTP/1.1.

A connection past a deadline is closed; an app waiting for its body sees a disconnect.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

import httptools
from loguru import logger
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .metrics import METHODS
from .problems import PROBLEM_JSON, problem_body

__all__ = ["guarded_protocol"]


def _raw_problem(status: int, code: str, detail: str, headers: dict[str, str]) -> bytes:
    """A whole problem+json response that closes the connection, as bytes to write."""
    body = json.dumps(problem_body("/", status, code, detail)).encode()
    head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    head += [f"content-type: {PROBLEM_JSON}", f"content-length: {len(body)}"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    head += ["connection: close", "", ""]
    return "\r\n".join(head).encode("latin-1") + body


def _busy_response(retry_after: int) -> bytes:
    detail = "the service has too many open connections; retry later"
    return _raw_problem(503, "too_many_connections", detail, {"retry-after": str(retry_after)})


# What the parser refuses before a request exists: a method it does not know (the API's
# are all standard), or bytes that are not HTTP/1.1.
_UNKNOWN_METHOD = _raw_problem(
    405, "method_not_allowed", "the API has no such method", {"allow": ", ".join(sorted(METHODS))}
)
_MALFORMED = _raw_problem(400, "bad_request", "the request is not valid HTTP/1.1", {})


class _GuardedProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_connections: int = 500
    busy_response: bytes = _busy_response(5)
    # Counts an answer given here (its status), where no middleware sees it.
    refused: Callable[[int], None] = staticmethod(lambda status: None)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: str | None = None  # "headers" or "body"

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            logger.warning("refused a connection: {} are open", len(self.connections) - 1)
            self._refuse(503, self.busy_response)
            return
        self._arm("headers", self.header_timeout)

    def data_received(self, data: bytes) -> None:
        # uvicorn answers what llhttp refuses in plain text; the API answers problem+json.
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserInvalidMethodError:
            self._refuse(405, _UNKNOWN_METHOD)
        except httptools.HttpParserUpgrade:  # as uvicorn does
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError:
            self._refuse(400, _MALFORMED)

    def _refuse(self, status: int, response: bytes) -> None:
        self._disarm()
        self.refused(status)
        if not self.transport.is_closing():
            self.transport.write(response)
            self.transport.close()

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
    *,
    header_timeout: float,
    body_timeout: float,
    max_connections: int,
    retry_after: int,
    refused: Callable[[int], None] = lambda status: None,
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with these deadlines and this cap (pass it as ``http=``);
    ``refused`` is told the status of each answer the protocol gives itself."""
    return type(
        "GuardedHttpToolsProtocol",
        (_GuardedProtocol,),
        {
            "header_timeout": header_timeout,
            "body_timeout": body_timeout,
            "max_connections": max_connections,
            "busy_response": _busy_response(retry_after),
            "refused": staticmethod(refused),
        },
    )

"""Faults at the outermost boundary: transports that forward to the real server, and lose answers.

``LoseAnswer`` forwards a request to the real server, lets it act, then raises the
connection error a dropped connection would, instead of returning the answer. It is the
one fake the client tests use against a live server: nothing else can lose an answer on
demand. ``Background`` runs a step (a server start) while the client is retrying.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

__all__ = ["AsyncLoseAnswer", "Background", "LoseAnswer", "Recording"]


def _matches(request: httpx.Request, method: str, suffix: str) -> bool:
    return request.method == method and request.url.path.endswith(suffix)


class Recording(httpx.BaseTransport):
    """Forwards every request to the real server and keeps the requests sent."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.inner.handle_request(request)

    def sent(self, method: str, suffix: str) -> list[httpx.Request]:
        return [r for r in self.requests if _matches(r, method, suffix)]

    def close(self) -> None:
        self.inner.close()


class LoseAnswer(Recording):
    """Drops the answer to the first ``method`` request whose path ends with ``suffix``."""

    def __init__(self, method: str, suffix: str) -> None:
        super().__init__()
        self.method, self.suffix, self.lost = method, suffix, False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if not self.lost and _matches(request, self.method, self.suffix):
            self.lost = True
            response.read()
            response.close()
            raise httpx.ReadError("connection reset before the answer arrived", request=request)
        return response


class AsyncLoseAnswer(httpx.AsyncBaseTransport):
    """``LoseAnswer`` for the async client."""

    def __init__(self, method: str, suffix: str) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.method, self.suffix, self.lost = method, suffix, False
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        response = await self.inner.handle_async_request(request)
        if not self.lost and _matches(request, self.method, self.suffix):
            self.lost = True
            await response.aread()
            await response.aclose()
            raise httpx.ReadError("connection reset before the answer arrived", request=request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class Background:
    """Run ``step`` after ``delay`` seconds in a thread; ``join`` re-raises its error."""

    def __init__(self, step: Callable[[], None], *, delay: float) -> None:
        self._error: BaseException | None = None

        def run() -> None:
            time.sleep(delay)
            try:
                step()
            except BaseException as exc:  # handed to the test thread by join()
                self._error = exc

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join(timeout=120)
        if self._error is not None:
            raise self._error

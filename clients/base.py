"""What the sync and async clients share: settings, headers, timeouts, answer checking."""

from __future__ import annotations

from typing import Any

import httpx

from .calls import Call
from .config import DEFAULT_TIMEOUT, resolve_key, resolve_url
from .errors import error_from_response
from .retry import RetryPolicy

__all__ = ["ClientBase"]

_CONNECT_TIMEOUT = 10.0
_ONCE = RetryPolicy(attempts=1)


class ClientBase:
    """Resolved settings; the key lives only in the ``Authorization`` header."""

    def __init__(
        self,
        url: str | None,
        key: str | None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.url = resolve_url(url)
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self._key = resolve_key(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r})"

    def _client_options(self) -> dict[str, Any]:
        headers = {"Accept": "application/json", "User-Agent": "agent-platform-client"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        return {"base_url": self.url, "headers": headers, "timeout": self.timeout}

    def _timeout_for(self, call: Call) -> httpx.Timeout:
        read = None if call.wait_forever else self.timeout + call.extra_timeout
        return httpx.Timeout(self.timeout, connect=min(self.timeout, _CONNECT_TIMEOUT), read=read)

    def _policy_for(self, call: Call) -> RetryPolicy:
        return self.retry if call.repeatable else _ONCE

    @staticmethod
    def _accept(response: httpx.Response, call: Call, *, retried: bool) -> httpx.Response:
        """The response if it is a success (or a 404 on a retried delete); else raise."""
        if response.is_success:
            return response
        if call.gone_is_done and retried and response.status_code == 404:
            return response
        raise error_from_response(response)

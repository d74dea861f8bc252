"""When and how long to retry: bounded, exponential with jitter, honouring ``Retry-After``.

Only calls that are safe to repeat are retried (the clients decide which); only on a
failed or broken connection and on 429, 502, 503 and 504. A wait asked for by the server
(``Retry-After``) replaces the backoff; no retry starts once the budget would be spent,
so a call gives up within ``budget`` seconds plus its own request time.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import tenacity

from .errors import APIStatusError, TransportError

__all__ = ["RETRY_STATUSES", "RetryPolicy", "is_retryable"]

RETRY_STATUSES = frozenset({429, 502, 503, 504})


def is_retryable(exc: BaseException) -> bool:
    """A failed connection or an answer that says "try again later"."""
    if isinstance(exc, TransportError):
        return exc.connection_failed
    return isinstance(exc, APIStatusError) and exc.status in RETRY_STATUSES


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a safe call is retried. ``RetryPolicy(attempts=1)`` never retries.

    attempts: tries in all, the first included.
    budget: seconds after the first try past which no retry starts.
    initial, max_wait, jitter: the exponential backoff (seconds), used when the server
        gave no ``Retry-After``.
    """

    attempts: int = 5
    budget: float = 30.0
    initial: float = 0.5
    max_wait: float = 8.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if min(self.budget, self.initial, self.max_wait, self.jitter) < 0:
            raise ValueError("budget and waits must not be negative")

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, APIStatusError) and exc.retry_after is not None:
            return exc.retry_after
        backoff = tenacity.wait_exponential(
            multiplier=self.initial, max=self.max_wait
        ) + tenacity.wait_random(0, self.jitter)
        return float(backoff(state))

    def _stop(self, state: tenacity.RetryCallState) -> bool:
        if state.attempt_number >= self.attempts:
            return True
        # tenacity computes the coming wait before it asks whether to stop.
        return (state.seconds_since_start or 0.0) + state.upcoming_sleep > self.budget

    def retrying(self) -> tenacity.Retrying:
        """A tenacity controller for the sync client."""
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_retryable),
            wait=self._wait,
            stop=self._stop,
            reraise=True,
        )

    def async_retrying(self) -> tenacity.AsyncRetrying:
        """A tenacity controller for the async client (it sleeps with anyio)."""
        return tenacity.AsyncRetrying(
            sleep=anyio.sleep,
            retry=tenacity.retry_if_exception(is_retryable),
            wait=self._wait,
            stop=self._stop,
            reraise=True,
        )

"""How many slow calls (stop, restart: they last up to their grace period) one key and one
owner may have in flight; past either cap, 429 with ``Retry-After``.

A pending stop holds no thread (the backends wait on the event loop), but each still polls
the engine and holds a connection: the caps keep one caller from piling them up. Counted per
replica, like the rate limit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from .problems import ProblemError

__all__ = ["SlowCalls"]


class SlowCalls:
    """Counts of slow calls in flight per key and per owner (the event loop's thread only)."""

    def __init__(self, *, per_key: int, per_owner: int, retry_after: int) -> None:
        self._per_key, self._per_owner, self._retry_after = per_key, per_owner, retry_after
        self._keys: dict[str, int] = {}
        self._owners: dict[str, int] = {}

    def in_flight(self, key: str) -> int:
        return self._keys.get(key, 0)

    @contextlib.contextmanager
    def hold(self, key: str, owner: str) -> Iterator[None]:
        """One slow call of ``key`` on ``owner``'s agents, for the duration of the block."""
        if self._keys.get(key, 0) >= self._per_key:
            self._refuse(f"this key already has {self._per_key} stops or restarts in flight")
        if self._owners.get(owner, 0) >= self._per_owner:
            self._refuse(f"this owner already has {self._per_owner} stops or restarts in flight")
        self._keys[key] = self._keys.get(key, 0) + 1
        self._owners[owner] = self._owners.get(owner, 0) + 1
        try:
            yield
        finally:
            _release(self._keys, key)
            _release(self._owners, owner)

    def _refuse(self, detail: str) -> None:
        raise ProblemError(
            429, "rate_limited", detail, headers={"Retry-After": str(self._retry_after)}
        )


def _release(counts: dict[str, int], name: str) -> None:
    counts[name] -= 1
    if counts[name] <= 0:
        del counts[name]

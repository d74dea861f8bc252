"""Followed log streams (and event streams, with their own counts): how many one key, one
owner and the whole service hold at once, and how long one may last.

A follow holds an engine stream and a thread of the follow pool for as long as it lasts,
so without bounds one viewer key could take all of them. ``FollowSlots.take`` refuses past
a cap with 429 ``too_many_log_streams`` (``Retry-After``); ``bounded`` ends a stream
cleanly at ``follow_max_seconds`` (clients reconnect with ``since=``) and gives the slot
back however the stream ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from .auth import Principal
from .problems import ProblemError

__all__ = ["FollowSlots", "Slot", "bounded"]


@dataclass(frozen=True, slots=True)
class Slot:
    key: str
    owner: str


class FollowSlots:
    """Counts of open follows per key, per owner and in all; each past its cap is a 429."""

    def __init__(
        self,
        *,
        per_key: int,
        per_owner: int,
        total: int,
        retry_after: int,
        noun: str = "log streams",
        code: str = "too_many_log_streams",
    ) -> None:
        self._per_key, self._per_owner, self._total = per_key, per_owner, total
        self._retry_after = retry_after
        self._noun, self._code = noun, code
        self._keys: Counter[str] = Counter()
        self._owners: Counter[str] = Counter()
        self._open = 0
        self._lock = threading.Lock()

    @property
    def open(self) -> int:
        return self._open

    def take(self, caller: Principal) -> Slot:
        with self._lock:
            if self._keys[caller.key_name] >= self._per_key:
                self._refuse(f"this key already follows {self._per_key} {self._noun}")
            if self._owners[caller.owner] >= self._per_owner:
                self._refuse(f"this owner's keys already follow {self._per_owner} {self._noun}")
            if self._open >= self._total:
                self._refuse(f"the service follows as many {self._noun} as it can")
            self._keys[caller.key_name] += 1
            self._owners[caller.owner] += 1
            self._open += 1
        return Slot(caller.key_name, caller.owner)

    def give_back(self, slot: Slot) -> None:
        with self._lock:
            self._keys[slot.key] -= 1
            if self._keys[slot.key] <= 0:
                del self._keys[slot.key]
            self._owners[slot.owner] -= 1
            if self._owners[slot.owner] <= 0:
                del self._owners[slot.owner]
            self._open -= 1

    def _refuse(self, detail: str) -> None:
        raise ProblemError(
            429,
            self._code,
            f"{detail}; close one, or retry later",
            headers={"Retry-After": str(self._retry_after)},
        )


def bounded(
    chunks: AsyncIterator[bytes], *, seconds: float | None, slots: FollowSlots, slot: Slot
) -> AsyncIterator[bytes]:
    """``chunks`` until they end or ``seconds`` (if any) have passed; the slot is given back once,
    when the stream ends, or when it is dropped without ever being read (a client that
    left before the first byte)."""
    given_back = False

    def give_back() -> None:
        nonlocal given_back
        if not given_back:
            given_back = True
            slots.give_back(slot)

    stream = _until(chunks, seconds, give_back)
    weakref.finalize(stream, give_back)
    return stream


async def _until(
    chunks: AsyncIterator[bytes], seconds: float | None, give_back: Callable[[], None]
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    deadline = None if seconds is None else loop.time() + seconds
    try:
        while True:
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return
            try:
                chunk = await asyncio.wait_for(_next(chunks), remaining)
            except (StopAsyncIteration, TimeoutError):
                return
            yield chunk
    finally:
        closer = getattr(chunks, "aclose", None)
        if closer is not None:
            with contextlib.suppress(Exception):
                await closer()
        give_back()


async def _next(chunks: AsyncIterator[bytes]) -> bytes:
    return await chunks.__anext__()

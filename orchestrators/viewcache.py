"""Agent views built once from labels that never change, bounded in bytes.

Building an agent's view means parsing its spec label and validating the model: most of a
list's CPU. What that needs never changes for an agent (its id, name, owner, creation
time and spec), so it is built once and kept; what does change (status, detail, deadline)
is filled in per call on a shallow copy. Entries are dropped least recently used first
once their estimated size passes the budget, so no key, however many agents, renewals or
megabytes of env it sends, grows the cache past it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from .models import Agent

__all__ = ["ViewCache", "estimate_bytes"]

V = TypeVar("V")

# The model, its dicts, the key and one shallow copy with the current status, measured
# with tracemalloc.
_ENTRY_OVERHEAD = 3072
_PER_ITEM = 160  # one env variable, label, secret name or command argument


def estimate_bytes(spec_text: str, agent: Agent) -> int:
    """What an entry holds: about the spec text once (the parsed strings), plus overhead."""
    items = len(agent.env) + len(agent.labels) + len(agent.secret_names) + len(agent.command or ())
    return len(spec_text) + _ENTRY_OVERHEAD + _PER_ITEM * items


class ViewCache(Generic[V]):
    """A thread-safe LRU map of agent views, bounded by the estimated bytes it holds."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._entries: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    def __len__(self) -> int:
        return len(self._entries)

    def resize(self, max_bytes: int) -> None:
        with self._lock:
            self._max_bytes = max_bytes
            self._evict()

    def get(self, key: Hashable, build: Callable[[], tuple[V, int]]) -> V:
        """The value under ``key``, built (outside the lock) and kept if it is missing."""
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return found[0]
        value, size = build()
        if size > self._max_bytes:
            return value  # bigger than the whole budget: used once, never kept
        with self._lock:
            if key not in self._entries:
                self._entries[key] = (value, size)
                self._bytes += size
                self._evict()
        return value

    def _evict(self) -> None:
        while self._bytes > self._max_bytes and self._entries:
            _, (_, size) = self._entries.popitem(last=False)
            self._bytes -= size

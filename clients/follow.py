"""Following an agent's log across the server's follow ceiling.

The server ends one follow after ``AGENT_API_FOLLOW_MAX_SECONDS`` (it says how long in
``X-Follow-Max-Seconds``). The clients ask for timestamped lines, remember the last one
shown, and when a follow ended at the ceiling they reconnect with ``since=`` that moment,
dropping what they had already shown: the caller sees one unbroken stream.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from . import calls
from .calls import Call

__all__ = ["FollowResume"]

CEILING_HEADER = "x-follow-max-seconds"
_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2}) ")


class FollowResume:
    """What a follow has shown so far, and the call that resumes it after the ceiling."""

    def __init__(
        self,
        agent: str,
        *,
        tail: int | None,
        since: str | datetime | None,
        timestamps: bool,
        owner: str | None,
    ) -> None:
        self._ref, self._owner = agent, owner
        self._tail, self._since = tail, since
        self._timestamps = timestamps
        self._last: tuple[str, str] | None = None  # (seconds part, 9-digit fraction) shown

    def call(self) -> Call:
        """The first call, or the one that resumes after the last line shown."""
        if self._last is None:
            tail, since = self._tail, self._since
        else:
            # Microseconds are what the API takes; lines up to the last one are skipped.
            tail, since = None, f"{self._last[0]}.{self._last[1][:6]}Z"
        return calls.logs_call(
            self._ref, tail=tail, since=since, timestamps=True, follow=True, owner=self._owner
        )

    def accept(self, line: str) -> str | None:
        """The line as the caller asked for it, or None if it was shown before."""
        found = _STAMP.match(line)
        if found is None:
            return line  # a piece of a line split at a carriage return: no stamp of its own
        if found.group(3) != "Z":
            return line if self._timestamps else line[found.end() :]
        key = (found.group(1), (found.group(2) or "").ljust(9, "0"))
        if self._last is not None and key <= self._last:
            return None
        self._last = key
        return line if self._timestamps else line[found.end() :]

    @staticmethod
    def ended_at_ceiling(headers: Mapping[str, str], elapsed: float) -> bool:
        """The server ended the follow at its ceiling (not because the agent stopped)."""
        ceiling = headers.get(CEILING_HEADER)
        try:
            return ceiling is not None and elapsed >= float(ceiling)
        except ValueError:
            return False

"""Reading ``GET /v1/events``: Server-Sent Events lines into ``AgentEvent`` values.

``EventReader`` is fed the stream's lines one at a time and gives back each event when
its blank line comes; it remembers the last event's id, so that a dropped stream is
resumed after it (``call``) and the caller sees every event once, or a ``reset``.
"""

from __future__ import annotations

from collections.abc import Sequence

import pydantic

from . import calls
from .calls import Call
from .models import AgentEvent

__all__ = ["RECONNECTS", "EventReader"]

RECONNECTS = 5  # dropped streams in a row, with no event between, before giving up


class EventReader:
    """The events of one logical stream across reconnects."""

    def __init__(
        self,
        *,
        agent: str | None,
        types: Sequence[str],
        owner: str | None,
        last_event_id: str | None,
    ) -> None:
        self._agent, self._types, self._owner = agent, tuple(types), owner
        self.last_id = last_event_id
        self._data: list[str] = []

    def call(self) -> Call:
        """The call that opens the stream, or resumes it after the last event given."""
        return calls.events_call(
            agent=self._agent, types=self._types, owner=self._owner, last_event_id=self.last_id
        )

    def feed(self, line: str) -> AgentEvent | None:
        """One line of the stream; the event it completes, if any."""
        if line.startswith("data:"):
            self._data.append(line[5:].lstrip())
            return None
        if line or not self._data:
            return None  # id:, event:, comments (heartbeats), or a blank line alone
        text, self._data = "\n".join(self._data), []
        try:
            event = AgentEvent.model_validate_json(text)
        except pydantic.ValidationError:
            return None  # not an event this client understands
        self.last_id = event.id
        return event

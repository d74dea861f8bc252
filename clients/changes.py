"""What changed since the last look: the events stream's backlog, read without blocking.

``ChangeFeed`` remembers the id of the last event it gave and, each time it is read, opens
``GET /v1/events`` resuming after that id, takes what the server replays and closes the
stream as soon as nothing more comes for a moment (``quiet`` seconds), so a read never
waits for the future. The first read asks from the beginning of the server's history:
the server answers with a ``reset`` and the feed resumes after it, which replays every
event the server still keeps. A later ``reset`` means events since the last look are
lost: the reader lists the agents again (``Changes.lost``). Events are scoped to the key's
owner by the server, like every read.
"""

from __future__ import annotations

from dataclasses import dataclass

import anyio

from .async_client import AsyncAgentClient
from .models import AgentEvent, EventType

__all__ = ["ChangeFeed", "Changes"]

_BEGINNING = "0"  # older than any event: the server answers with a reset


@dataclass(frozen=True, slots=True)
class Changes:
    """One read: the events since the last one, oldest first.

    ``first``: there was no earlier read, so these are the events the server still keeps.
    ``lost``: some events since the last read are gone (too old for the server): list
    the agents again; ``events`` is then empty.
    """

    events: list[AgentEvent]
    first: bool = False
    lost: bool = False


class ChangeFeed:
    """The events of one reader across reads; see the module."""

    def __init__(self, *, quiet: float = 0.5, longest: float = 5.0, most: int = 500) -> None:
        self.last_id: str | None = None
        self._quiet, self._longest, self._most = quiet, longest, most

    async def read(self, client: AsyncAgentClient) -> Changes:
        """The events after the last one this feed gave (see ``Changes``)."""
        first = self.last_id is None
        events = await self._backlog(client, self.last_id or _BEGINNING)
        lost = bool(events) and events[0].type == EventType.RESET.value
        if lost:
            reset = events[0].id
            replayed = await self._backlog(client, reset)
            events = [event for event in replayed if event.type != EventType.RESET.value]
            if len(events) < len(replayed):  # the history moved on meanwhile: start from now
                return Changes([], first=first, lost=not first)
            self.last_id = events[-1].id if events else reset
            return Changes(events if first else [], first=first, lost=not first)
        if events:
            self.last_id = events[-1].id
        return Changes(events, first=first)

    async def _backlog(self, client: AsyncAgentClient, after: str) -> list[AgentEvent]:
        """The events the server sends at once when resuming after ``after``."""
        got: list[AgentEvent] = []
        stream = await client.events(last_event_id=after)
        try:
            with anyio.move_on_after(self._longest):
                while len(got) < self._most:
                    with anyio.move_on_after(self._quiet) as idle:
                        got.append(await anext(stream))
                    if idle.cancelled_caught:
                        break
        except StopAsyncIteration:
            pass
        finally:
            await stream.aclose()
        return got

"""The events of this replica: a bounded ring of the latest, and the streams listening.

``publish`` appends to the ring and hands each event to every open stream's buffer; a
stream that falls ``buffer`` events behind is closed with a ``reset`` (its client resumes
from the ring with ``Last-Event-ID``). ``after`` answers a resume: the events after an
id, or None when the ring no longer holds all of them (the caller sends ``reset``).

Everything runs on the event loop: ``publish`` and ``after`` never wait, so a resume and
its subscription see no event twice and miss none.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable

from orchestrators.events import RESET_SUFFIX, event_token
from orchestrators.models import AgentEvent

__all__ = ["EventBus", "Listener"]


def _order(token: str) -> int | None:
    try:
        return int(token)
    except ValueError:
        return None


def _after(candidate: str, asked: str, token: int) -> bool:
    """``candidate`` comes after the event ``asked`` (of ``token``): a later token, or the
    same observation's later event (ids are ``<token>-<agent>-<n>``)."""
    mine = _order(event_token(candidate))
    if mine is None or mine != token:
        return mine is not None and mine > token
    here, there = candidate.rsplit("-", 1), asked.rsplit("-", 1)
    return (
        here[0] == there[0]
        and here[1].isdigit()
        and there[1].isdigit()
        and (int(here[1]) > int(there[1]))
    )


class Listener:
    """One open stream's buffer of events not sent yet."""

    def __init__(self, buffer: int) -> None:
        self.queue: asyncio.Queue[AgentEvent] = asyncio.Queue(buffer)
        self.overflowed = False

    def offer(self, event: AgentEvent) -> None:
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True


class EventBus:
    """The ring of the last ``ring`` events and the listeners; see the module."""

    def __init__(self, *, ring: int, buffer: int) -> None:
        self._ring: deque[AgentEvent] = deque(maxlen=ring)
        self._buffer = buffer
        self._listeners: set[Listener] = set()
        # The ring holds every event whose token is above this (None: nothing yet).
        self._floor: int | None = None
        self.published = 0

    @property
    def floor(self) -> str:
        """The token after which this replica holds every event."""
        return str(self._floor or 0)

    def begin(self, token: str) -> None:
        """History starts at ``token`` (the snapshot the watch began from)."""
        if self._floor is None:
            self._floor = _order(token)

    def publish(self, events: Iterable[AgentEvent]) -> None:
        for event in events:
            if len(self._ring) == self._ring.maxlen:
                self._floor = _order(event_token(self._ring[0].id))
            self._ring.append(event)
            self.published += 1
            for listener in self._listeners:
                listener.offer(event)

    def after(self, event_id: str) -> list[AgentEvent] | None:
        """The events after ``event_id``, or None when some of them may be lost."""
        for index, event in enumerate(self._ring):
            if event.id == event_id:
                return list(self._ring)[index + 1 :]
        token = _order(event_token(event_id))
        if token is not None and token == self._floor and event_id.endswith(RESET_SUFFIX):
            return list(self._ring)  # after a reset: everything the ring holds
        # At the floor itself some events of that token may be gone: only above it is whole.
        if token is None or self._floor is None or token <= self._floor:
            return None
        return [e for e in self._ring if _after(e.id, event_id, token)]

    def listen(self) -> Listener:
        listener = Listener(self._buffer)
        self._listeners.add(listener)
        return listener

    def leave(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    @property
    def listeners(self) -> int:
        return len(self._listeners)

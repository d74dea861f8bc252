"""What a backend's watch of its engine yields: engine-neutral observations of agents.

A backend turns its engine's change feed (Docker's ``/events`` stream, a Kubernetes watch)
into ``Observation`` values: one agent's state just after something happened to it, with
a resume ``token`` (Docker: the event's ``timeNano``; Kubernetes: a ``resourceVersion``).
``Snapshot`` is every agent at one moment, with the token to watch from so that nothing
falls between the two. The events a client sees are derived from observations, the same
way for every backend (``orchestrators.events``).

Tokens are opaque strings to everyone but the backend that issued them; a backend asked
to resume from a token it no longer holds history for raises ``errors.WatchExpired``.

A stream that the engine holds open but no longer feeds (a frozen engine) looks like a quiet
one; ``Heartbeat`` tells them apart: a watch reads its stream through it, and a silence of
``watch_heartbeat`` seconds has the engine pinged, so a watch is stale for at most twice
that before it ends with ``OrchestratorUnavailable``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from .errors import OrchestratorUnavailable
from .models import Agent, AgentStatus, FailureReason, Health, StoppedBy
from .types import T

__all__ = ["Heartbeat", "Observation", "Snapshot"]


@dataclass(frozen=True, slots=True)
class Observation:
    """One agent as the engine shows it just after a change.

    ``agent`` is its public view then, or None once it is deleted. The other fields are
    what the engine said about the change itself, each None where it said nothing:
    ``stopped_by`` when it knows a stop came through the API or the TTL (or from the
    engine), ``reason`` when a failure has a known cause, ``restarts`` the engine's count
    of restarts (a rise is a restart), ``health`` the healthcheck's state.
    """

    agent_id: str
    name: str
    owner: str
    status: AgentStatus | None  # None: deleted
    at: datetime
    token: str
    agent: Agent | None = None
    detail: str | None = None
    exit_code: int | None = None
    reason: FailureReason | None = None
    stopped_by: StoppedBy | None = None
    restarts: int | None = None
    health: Health | None = None

    @property
    def deleted(self) -> bool:
        return self.agent is None and self.status is None

    @classmethod
    def of(cls, agent: Agent, *, at: datetime, token: str, **facts: object) -> Observation:
        """An observation of ``agent``'s current view, with the change's ``facts``."""
        return cls(
            agent_id=agent.id,
            name=agent.name,
            owner=agent.owner,
            status=agent.status,
            at=at,
            token=token,
            agent=agent,
            detail=agent.detail,
            exit_code=agent.exit_code,
            **facts,  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every agent of this instance at one moment, and the token to watch from after it."""

    agents: list[Agent]
    token: str


class Heartbeat:
    """A watch's proof that its engine still answers while the stream says nothing.

    ``next`` hands out the stream's items; after ``every`` seconds without one it calls
    ``ping(timeout)`` (a cheap engine call that raises unless the engine answers within
    ``timeout`` seconds, here ``every``) on a thread of its own, never the backend's pool,
    whose threads a frozen engine may hold. A ping that fails or does not return in time
    raises ``OrchestratorUnavailable``: the watch ends and its reader treats it as broken.
    One heartbeat per watch; ``close`` it when the watch ends.
    """

    def __init__(self, ping: Callable[[float], object], *, every: float, engine: str) -> None:
        self._ping, self.every, self._engine = ping, every, engine
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="watch-heartbeat")
        self._heard: float | None = None

    async def next(self, queue: asyncio.Queue[T], within: float | None = None) -> T:
        """The next item of ``queue``; ``TimeoutError`` if ``within`` seconds pass first."""
        loop = asyncio.get_running_loop()
        if self._heard is None:
            self._heard = loop.time()
        end = None if within is None else loop.time() + within
        while True:
            beat = self._heard + self.every
            wait = (beat if end is None else min(beat, end)) - loop.time()
            try:
                # Not ``wait_for``: on Python 3.11 it loses a cancellation that comes as an
                # item does, and a watch that is being closed would carry on.
                async with asyncio.timeout(max(wait, 0.0)):
                    item = await queue.get()
            except TimeoutError:
                now = loop.time()
                if now >= beat:
                    await self._check()
                if end is not None and now >= end:
                    raise
                continue
            self._heard = loop.time()
            return item

    async def _check(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.every + 1.0):
                await loop.run_in_executor(self._pool, self._ping, self.every)
        except Exception as exc:
            raise OrchestratorUnavailable(
                f"{self._engine} did not answer a ping within {self.every:g} s while its "
                "watch was silent"
            ) from exc
        self._heard = loop.time()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

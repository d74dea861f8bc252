"""The engine's watch, kept running: it feeds the read model, the event bus and the metrics.

``LiveFeed.run`` (a task of the app's lifespan) takes a snapshot, rebuilds the model from
it, then applies each observation of ``Orchestrator.watch`` to the model and publishes the
events derived from it (``orchestrators.events.Deriver``). When the watch breaks (its
connection fails, or the engine stops answering with it open: the backend's ``Heartbeat``
ends it), reads go to the engine (``live`` is False, ``/readyz`` says so) until a new
snapshot and watch are up; the events missed meanwhile are derived from the difference of
the snapshots (each agent's latest change). A backend without a watch leaves reads on the engine.

Reads: ``get`` and ``list`` answer from the model while it is live, else from the
engine; ``rendered`` is an agent's JSON, kept by the model. ``wrote`` and ``deleted`` are
read-your-writes: a route calls them with what it answers before answering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime

from loguru import logger

from orchestrators.base import Orchestrator
from orchestrators.errors import OrchestratorError
from orchestrators.events import Deriver
from orchestrators.models import Agent, AgentEvent, AgentStatus, EventType, StoppedBy
from orchestrators.watch import Observation

from .eventbus import EventBus
from .metrics import Metrics
from .readmodel import ReadModel

__all__ = ["LiveFeed"]

_BACKOFF = (0.5, 1.0, 2.0, 5.0)


class LiveFeed:
    """The watch loop and the reads it serves (see the module)."""

    def __init__(
        self,
        orchestrator: Orchestrator,
        *,
        bus: EventBus,
        metrics: Metrics,
        reads: bool = True,
    ) -> None:
        self._engine = orchestrator
        self._bus = bus
        self._metrics = metrics
        self._reads = reads
        self.model = ReadModel()
        self._deriver = Deriver()
        self._seeded = False
        self.supported = True  # False: the backend has no watch
        self.broken: str | None = "not started yet"

    @property
    def live(self) -> bool:
        return self.model.live

    async def run(self) -> None:
        failures = 0
        while True:
            try:
                await self._follow()
            except NotImplementedError:
                self.supported = False
                self.broken = f"the {self._engine.name} backend has no watch"
                logger.info("no engine watch: reads and waits ask the engine")
                return
            except Exception as exc:  # the feed must outlive any single failure
                self.model.live = False
                self._metrics.watching.set(0)
                self.broken = getattr(exc, "detail", None) or type(exc).__name__
                self._metrics.watch_reconnects.inc()
                logger.warning("engine watch broken, reads go to the engine: {}", self.broken)
            await asyncio.sleep(_BACKOFF[min(failures, len(_BACKOFF) - 1)])
            failures += 1

    async def _follow(self) -> None:
        taken = datetime.now(UTC)
        snapshot = await self._engine.snapshot()
        self._bus.begin(snapshot.token)
        if self._seeded:
            self._publish(self._deriver.reconcile(snapshot, taken), None)
        else:
            self._deriver.seed(snapshot.agents)
            self._seeded = True
        self.model.rebuild(snapshot.agents, taken=taken)
        watch = self._engine.watch(snapshot.token)
        # Live from here: the watch replays from the snapshot's token, so what changes
        # while it opens is applied as soon as it is.
        self._up()
        try:
            async for observation in watch:
                self.model.apply(observation)
                self._publish(self._deriver.derive(observation), observation)
            raise ConnectionError("the engine's watch ended")
        finally:
            closer = getattr(watch, "aclose", None)
            if closer is not None:
                await closer()

    def _up(self) -> None:
        if not self.model.live:
            self.model.live = True
            self.broken = None
            self._metrics.watching.set(1)

    def _publish(self, events: list[AgentEvent], observation: Observation | None) -> None:
        for event in events:
            self._metrics.events.labels(event.type.value).inc()
            if event.type is EventType.STOPPED and event.by is StoppedBy.TTL:
                self._metrics.ttl_stops.inc()
            first_start = event.type is EventType.STARTED and any(
                e.type is EventType.CREATED for e in events
            )
            if first_start and observation is not None and observation.agent is not None:
                waited = (event.time - observation.agent.created_at).total_seconds()
                self._metrics.spawn_to_running.observe(max(waited, 0.0))
        self._bus.publish(events)

    # -- reads ----------------------------------------------------------------------------

    def _from_model(self) -> bool:
        return self._reads and self.model.live

    async def get(self, ref: str, *, owner: str | None) -> Agent:
        if self._from_model():
            return self.model.get(ref, owner=owner)
        return await self._engine.get(ref, owner=owner)

    def cached(self, ref: str, *, owner: str | None) -> Agent | None:
        """``ref`` as the model holds it while reads come from the model; None when they
        do not, or when ``get`` would not answer it (not found, ambiguous)."""
        if not self._from_model():
            return None
        try:
            return self.model.get(ref, owner=owner)
        except OrchestratorError:
            return None

    async def list(self, *, owner: str | None, labels: Mapping[str, str] | None) -> list[Agent]:
        if self._from_model():
            return self.model.matching(owner=owner, labels=labels)
        return await self._engine.list(owner=owner, labels=labels)

    def rendered(self, agent: Agent) -> bytes:
        """``agent``'s response body, rendered once while the model holds it."""
        return self.model.rendered(agent)

    def wrote(self, agent: Agent) -> Agent:
        self.model.put(agent)
        return agent

    def deleted(self, agent_id: str) -> None:
        self.model.drop(agent_id)

    def count(self) -> dict[tuple[AgentStatus, str], int]:
        """Agents by status and owner, from the model."""
        counts: dict[tuple[AgentStatus, str], int] = {}
        for agent in self.model.agents():
            key = (agent.status, agent.owner)
            counts[key] = counts.get(key, 0) + 1
        return counts

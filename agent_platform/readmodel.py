"""The agents in memory, kept by the engine's watch: list and get answered without the engine.

Rebuilt from a snapshot whenever the watch (re)starts, then changed by each observation.
``live`` is False until the first snapshot and whenever the watch is broken: the routes
then ask the engine (``agent_platform.live``), and ``/readyz`` says so.

Read-your-writes: a route that changed an agent ``put``s the agent it answers (or ``drop``s
a deleted one) before answering, stamped with the time; an observation of a change that
happened before that stamp (the watch lags behind the call) does not overwrite it.
Observations of one engine are ordered by the engine's clock, the stamps by this
process's: on one machine the same clock.

``rendered`` keeps each agent's JSON (its response body) with its entry, made on the first
read: a get or a list from the model renders nothing again until the agent changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from orchestrators.errors import AgentNotFound, AmbiguousAgentName
from orchestrators.models import Agent, is_agent_id
from orchestrators.watch import Observation

from .rendering import render

__all__ = ["ReadModel"]

_MAX_TOMBSTONES = 10_000


@dataclass(slots=True)
class _Entry:
    agent: Agent | None  # None: deleted by a call, its removal not observed yet
    as_of: datetime
    body: bytes | None = None  # ``render(agent)``, made on the first read


class ReadModel:
    """Every agent of this instance, by id, with a (owner, name) index."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._names: dict[tuple[str, str], str] = {}
        self._tombstones = 0
        self.live = False

    def rebuild(self, agents: Iterable[Agent], *, taken: datetime) -> None:
        """Start again from a snapshot whose list began at ``taken``; what calls answered
        after that moment is kept."""
        fresh = {a.id: _Entry(a, taken) for a in agents}
        fresh.update({k: e for k, e in self._entries.items() if e.as_of > taken})
        self._entries, self._names = fresh, {}
        self._tombstones = sum(1 for e in fresh.values() if e.agent is None)
        for agent in (e.agent for e in fresh.values() if e.agent is not None):
            self._names[(agent.owner, agent.name)] = agent.id

    def apply(self, observation: Observation) -> None:
        """An observed change; ignored when a call already answered something newer."""
        entry = self._entries.get(observation.agent_id)
        if observation.agent is None:
            self._remove(observation.agent_id)
            return
        if entry is not None and entry.as_of > observation.at:
            return
        self._store(observation.agent, observation.at)

    def put(self, agent: Agent) -> None:
        """What a call just answered about ``agent``."""
        self._store(agent, datetime.now(UTC))

    def drop(self, agent_id: str) -> None:
        """A call just deleted ``agent_id``."""
        entry = self._entries.get(agent_id)
        if entry is not None and entry.agent is not None:
            self._unname(entry.agent)
        if self._tombstones >= _MAX_TOMBSTONES:
            self._entries = {k: e for k, e in self._entries.items() if e.agent is not None}
            self._tombstones = 0
        self._entries[agent_id] = _Entry(None, datetime.now(UTC))
        self._tombstones += 1

    def get(self, ref: str, *, owner: str | None) -> Agent:
        """Like ``Orchestrator.get``: an id-shaped ref is only an id, another owner's
        agent is not found, a name several owners use is ambiguous without ``owner``."""
        if is_agent_id(ref):
            entry = self._entries.get(ref)
            agent = entry.agent if entry is not None else None
            if agent is None or (owner is not None and agent.owner != owner):
                raise AgentNotFound(f"no agent {ref!r}")
            return agent
        if owner is not None:
            found = self._names.get((owner, ref))
            entry = self._entries.get(found) if found else None
            if entry is None or entry.agent is None:
                raise AgentNotFound(f"no agent {ref!r}")
            return entry.agent
        named = [e.agent for e in self._entries.values() if e.agent and e.agent.name == ref]
        if not named:
            raise AgentNotFound(f"no agent {ref!r}")
        if len(named) > 1:
            raise AmbiguousAgentName(
                f"agents of several owners are named {ref!r}: use the id or owner="
            )
        return named[0]

    def matching(self, *, owner: str | None, labels: Mapping[str, str] | None) -> list[Agent]:
        """Like ``Orchestrator.list``."""
        wanted = tuple((labels or {}).items())
        return [
            agent
            for entry in self._entries.values()
            if (agent := entry.agent) is not None
            and (owner is None or agent.owner == owner)
            and all(agent.labels.get(k) == v for k, v in wanted)
        ]

    def rendered(self, agent: Agent) -> bytes:
        """``render(agent)``, kept while the model holds this very agent."""
        entry = self._entries.get(agent.id)
        if entry is None or entry.agent is not agent:
            return render(agent)  # from the engine, or replaced since it was read
        if entry.body is None:
            entry.body = render(agent)
        return entry.body

    def agents(self) -> list[Agent]:
        return self.matching(owner=None, labels=None)

    def _store(self, agent: Agent, as_of: datetime) -> None:
        previous = self._entries.get(agent.id)
        if previous is not None and previous.agent is None:
            return  # deleted by a call: a late observation does not bring it back
        self._entries[agent.id] = _Entry(agent, as_of)
        self._names[(agent.owner, agent.name)] = agent.id

    def _remove(self, agent_id: str) -> None:
        entry = self._entries.pop(agent_id, None)
        if entry is None:
            return
        if entry.agent is None:
            self._tombstones -= 1
        else:
            self._unname(entry.agent)

    def _unname(self, agent: Agent) -> None:
        key = (agent.owner, agent.name)
        if self._names.get(key) == agent.id:  # not a newer agent that took the name
            del self._names[key]

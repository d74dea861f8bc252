"""From observations to the events clients see: the one derivation, for every backend.

``Deriver`` remembers each agent's last status, restart count and health, and turns an
``Observation`` into the events of what changed since (none when nothing did: an
observation seen twice, after a resume, derives nothing new).

| last known → observed                      | events                                  |
|--------------------------------------------|-----------------------------------------|
| unknown → any                              | created, then as below                  |
| → running, restart count rose              | restarted                               |
| → running                                  | started                                 |
| → stopped                                  | stopped (``by``: call, ttl, engine)     |
| → exited                                   | exited (``exit_code``)                  |
| → failed                                   | failed (``reason``, ``exit_code``)      |
| → restarting, with a reason (crash loop)   | failed (``reason``)                     |
| health changed to healthy or unhealthy     | health                                  |
| deleted                                    | deleted                                 |

An event's id is ``<token>-<agent id>-<n>``: the observation's resume token, so every
replica that sees the same engine change names its events alike, and a client's
``Last-Event-ID`` is also a place to resume the engine's history from.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .models import (
    Agent,
    AgentEvent,
    AgentStatus,
    EventAgent,
    EventType,
    FailureReason,
    Health,
)
from .watch import Observation, Snapshot

__all__ = ["RESET_SUFFIX", "Deriver", "event_token", "reset_event"]

RESET_SUFFIX = "-reset-0"  # a reset's id: <the token history starts after>-reset-0

_BY_STATUS = {
    AgentStatus.STOPPED: EventType.STOPPED,
    AgentStatus.EXITED: EventType.EXITED,
    AgentStatus.FAILED: EventType.FAILED,
}


@dataclass(slots=True)
class _Known:
    name: str
    owner: str
    status: AgentStatus
    restarts: int | None
    health: Health | None


def event_token(event_id: str) -> str:
    """The resume token an event id carries (see the module)."""
    return event_id.split("-", 1)[0]


def reset_event(token: str, at: datetime, detail: str) -> AgentEvent:
    """The event that tells a client its history is gone: list the agents again."""
    return AgentEvent(id=f"{token}{RESET_SUFFIX}", type=EventType.RESET, time=at, detail=detail)


class Deriver:
    """Observations in, events out; remembers what it last saw of each agent."""

    def __init__(self) -> None:
        self._known: dict[str, _Known] = {}

    def seed(self, agents: Iterable[Agent]) -> None:
        """Start from these agents (a snapshot), deriving nothing for them."""
        self._known = {a.id: _Known(a.name, a.owner, a.status, None, None) for a in agents}

    def reconcile(self, snapshot: Snapshot, at: datetime) -> list[AgentEvent]:
        """The events between what was last seen and ``snapshot`` (after a watch broke):
        each agent's latest change, not every step between."""
        events: list[AgentEvent] = []
        present = {a.id for a in snapshot.agents}
        for agent in snapshot.agents:
            events += self.derive(Observation.of(agent, at=at, token=snapshot.token))
        for gone in [i for i in self._known if i not in present]:
            events += self.derive(
                Observation(
                    agent_id=gone, name="", owner="", status=None, at=at, token=snapshot.token
                )
            )
        return events

    def derive(self, observation: Observation) -> list[AgentEvent]:
        obs = observation
        types: list[tuple[EventType, dict[str, object]]] = []
        if obs.deleted or obs.status is None:
            gone = self._known.pop(obs.agent_id, None)
            if gone is not None and not obs.owner:  # a reconcile knows only the id
                obs = dataclasses.replace(obs, name=gone.name, owner=gone.owner)
            types.append((EventType.DELETED, {}))
            return self._events(obs, types)
        prev = self._known.get(obs.agent_id)
        if prev is None:
            types.append((EventType.CREATED, {}))
        restarted = (
            prev is not None
            and obs.restarts is not None
            and prev.restarts is not None
            and obs.restarts > prev.restarts
        )
        changed = prev is None or prev.status != obs.status
        if obs.status is AgentStatus.RUNNING and (changed or restarted):
            types.append((EventType.RESTARTED if restarted else EventType.STARTED, {}))
        elif changed and obs.status in _BY_STATUS:
            types.append((_BY_STATUS[obs.status], self._facts(obs)))
        elif changed and obs.status is AgentStatus.RESTARTING and obs.reason is not None:
            types.append((EventType.FAILED, self._facts(obs)))
        health = prev.health if prev is not None else None
        if obs.health in ("healthy", "unhealthy") and obs.health != health:
            types.append((EventType.HEALTH, {"health": obs.health}))
        self._known[obs.agent_id] = _Known(
            obs.name,
            obs.owner,
            obs.status,
            obs.restarts if obs.restarts is not None else (prev.restarts if prev else None),
            obs.health if obs.health is not None else health,
        )
        return self._events(obs, types)

    @staticmethod
    def _facts(obs: Observation) -> dict[str, object]:
        facts: dict[str, object] = {"exit_code": obs.exit_code}
        if obs.status is AgentStatus.STOPPED:
            facts["by"] = obs.stopped_by
        elif obs.status in (AgentStatus.FAILED, AgentStatus.RESTARTING):
            facts["reason"] = obs.reason or FailureReason.ERROR
        return facts

    @staticmethod
    def _events(
        obs: Observation, types: list[tuple[EventType, dict[str, object]]]
    ) -> list[AgentEvent]:
        who = EventAgent(id=obs.agent_id, name=obs.name, owner=obs.owner)
        return [
            AgentEvent.model_validate(
                {
                    "id": f"{obs.token}-{obs.agent_id}-{n}",
                    "type": kind,
                    "time": obs.at,
                    "agent": who,
                    "status": obs.status,
                    "detail": obs.detail,
                    **facts,
                }
            )
            for n, (kind, facts) in enumerate(types)
        ]

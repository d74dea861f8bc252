"""What a backend's watch of its engine yields: engine-neutral observations of agents.

A backend turns its engine's change feed (Docker's ``/events`` stream, a Kubernetes watch)
into ``Observation`` values: one agent's state just after something happened to it, with
a resume ``token`` (Docker: the event's ``timeNano``; Kubernetes: a ``resourceVersion``).
``Snapshot`` is every agent at one moment, with the token to watch from so that nothing
falls between the two. The events a client sees are derived from observations, the same
way for every backend (``orchestrators.events``).

Tokens are opaque strings to everyone but the backend that issued them; a backend asked
to resume from a token it no longer holds history for raises ``errors.WatchExpired``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .models import Agent, AgentStatus, FailureReason, Health, StoppedBy

__all__ = ["Observation", "Snapshot"]


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

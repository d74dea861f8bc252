"""The contract every backend (Docker, Kubernetes) implements.

An *agent* is one container (Docker) or one Deployment (Kubernetes) carrying the labels of
``orchestrators.labels``; nothing else is ever listed, read or touched. Backends keep no
state of their own that a restart would lose: everything is read back from the engine.

Conventions for every method:

- ``ref`` is an agent's id or its name. ``owner`` scopes the lookup: an agent of another
  owner is reported exactly like a missing one (``AgentNotFound``). ``owner=None`` means
  every owner (admin callers); a name that then matches several agents raises
  ``AmbiguousAgentName``.
- Every engine call has a timeout from configuration; an engine that does not answer in
  time, or refuses the connection, raises ``OrchestratorUnavailable`` (never a hang).
- Only the errors of ``orchestrators.errors`` escape; engine exceptions are translated.
- Blocking client libraries run off the event loop: no method blocks the loop.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from datetime import datetime

from .errors import NotSupported
from .models import (
    Agent,
    AgentChange,
    AgentSpec,
    AgentStats,
    ChangeResult,
    LogOptions,
    Resources,
    RevisionList,
    SweepReport,
)
from .policy import OwnerCeilings, SpawnPolicy
from .watch import Observation, Snapshot

__all__ = ["Orchestrator"]


class Orchestrator(abc.ABC):
    """A backend that runs agents. Construct it with its configuration; close it when done."""

    #: the value of the agent's ``orchestrator`` field
    name: str

    @abc.abstractmethod
    async def ping(self) -> None:
        """Return when the engine answers; raise ``OrchestratorUnavailable`` otherwise."""

    @abc.abstractmethod
    async def spawn(
        self,
        spec: AgentSpec,
        *,
        owner: str,
        resources: Resources,
        idempotency_key: str | None = None,
        max_agents: int | None = None,
        ceilings: OwnerCeilings | None = None,
    ) -> Agent:
        """Create and start an agent under the hardened policy and return it.

        ``resources`` are the limits already resolved by the ``SpawnPolicy``. With an
        ``idempotency_key`` that this owner already used, return the agent that the first
        call created (whatever its status) instead of creating another; if the first call's
        request differed, raise ``IdempotencyKeyReused``. A name the owner already uses
        raises ``AgentConflict``. With ``max_agents``, an owner who already has that many
        agents gets ``AgentQuotaExceeded`` (a replayed key still returns its agent; two
        concurrent spawns may both pass the count). With ``ceilings``, an agent that would
        take the owner's agents past a total of CPUs or memory raises
        ``AgentQuotaExceeded`` naming the ceiling. A missing image raises
        ``ImageNotFound``; an agent that was created but could not start raises
        ``SpawnFailed``. On every failure nothing is left
        behind: no container, Deployment, volume, claim or secret.
        """

    @abc.abstractmethod
    async def list(
        self, *, owner: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[Agent]:
        """Every managed agent of ``owner`` (all owners if None) whose user labels match.

        Costs a constant number of engine calls, whatever the number of agents. The order
        is unspecified; callers sort.
        """

    @abc.abstractmethod
    async def get(self, ref: str, *, owner: str | None = None) -> Agent:
        """The agent as the engine sees it now, or ``AgentNotFound``."""

    @abc.abstractmethod
    async def start(self, ref: str, *, owner: str | None = None) -> Agent:
        """Start a stopped agent. Idempotent: starting a running agent changes nothing.

        An agent whose TTL has passed raises ``AgentExpired``: renew it first.
        """

    @abc.abstractmethod
    async def stop(
        self, ref: str, *, owner: str | None = None, timeout: int | None = None
    ) -> Agent:
        """Stop the agent, killing it after ``timeout`` seconds of grace (backend default
        if None). Idempotent: stopping a stopped agent changes nothing. The agent, its
        labels and its workspace survive. The grace (up to an hour) is waited out without
        holding a thread: no single engine call lasts it.
        """

    @abc.abstractmethod
    async def restart(
        self, ref: str, *, owner: str | None = None, timeout: int | None = None
    ) -> Agent:
        """Stop (with ``timeout`` grace) and start the agent again; starts a stopped one."""

    @abc.abstractmethod
    async def renew(self, ref: str, *, owner: str | None = None, ttl_seconds: int) -> Agent:
        """Move the agent's deadline to ``ttl_seconds`` from now and return the agent.

        Only an agent spawned with ``ttl_seconds`` has a deadline to move; any other raises
        ``InvalidSpec``. Renewing does not start a stopped agent.
        """

    @abc.abstractmethod
    async def sweep(self, *, now: datetime | None = None) -> SweepReport:
        """Stop every running agent whose deadline has passed (``now`` defaults to the
        current time) and remove objects left by an interrupted spawn or delete (a volume,
        claim or secret whose agent is gone) once they are older than the backend's grace
        period. Safe to run from several replicas at once: each step is idempotent.
        """

    @abc.abstractmethod
    async def delete(self, ref: str, *, owner: str | None = None) -> None:
        """Remove the agent and everything it owns (workspace volume or claim, secret).

        An agent already gone raises ``AgentNotFound``: callers treat that as done.
        """

    @abc.abstractmethod
    async def logs(
        self, ref: str, *, owner: str | None = None, options: LogOptions
    ) -> AsyncIterator[bytes]:
        """Resolve the agent now (``AgentNotFound`` is raised here, before any byte), then
        return an iterator over its output. With ``options.follow`` the iterator goes on
        until the agent stops or the consumer closes it; closing it releases the engine
        stream at once.
        """

    async def update(
        self,
        ref: str,
        change: AgentChange,
        *,
        owner: str | None = None,
        policy: SpawnPolicy,
        expected_revision: int | None = None,
        ceilings: OwnerCeilings | None = None,
    ) -> ChangeResult:
        """Change the agent and return it with its new revision.

        The changed spec passes ``policy`` as a spawn would (image allowlist, resource
        ceilings, size) and ``ceilings`` over the owner's other agents; a refused change
        changes nothing (``PolicyViolation``, ``AgentQuotaExceeded``, ``InvalidSpec``).
        With ``expected_revision``, an agent at another revision raises
        ``RevisionMismatch`` and is left alone; of two changes racing from one revision,
        one wins and the other raises ``RevisionMismatch``. What the engine can change in
        place changes without a restart (``restarted`` False); the rest replaces the
        agent's process keeping its id, name, owner, workspace and address. A service
        killed in the middle leaves one agent, which ``sweep`` finishes or undoes.
        """
        raise NotSupported(f"the {self.name} backend cannot change a running agent")

    async def revisions(self, ref: str, *, owner: str | None = None) -> RevisionList:
        """The agent's revisions, newest first (never a secret value)."""
        raise NotSupported(f"the {self.name} backend keeps no revisions")

    async def rollback(
        self,
        ref: str,
        *,
        owner: str | None = None,
        policy: SpawnPolicy,
        to: int | None = None,
        expected_revision: int | None = None,
        ceilings: OwnerCeilings | None = None,
    ) -> ChangeResult:
        """Make the spec of revision ``to`` (the one before the current if None) current
        again, as a new revision, under the same rules as ``update``. A revision no longer
        kept raises ``AgentNotFound``; secret values are not kept, so a secret that revision
        had and the agent no longer has raises ``InvalidSpec`` (set it with ``update``).
        """
        raise NotSupported(f"the {self.name} backend keeps no revisions")

    async def stats(self, ref: str, *, owner: str | None = None) -> AgentStats:
        """One sample of what the agent uses now (not a stream)."""
        raise NotSupported(f"the {self.name} backend has no usage figures")

    async def snapshot(self) -> Snapshot:
        """Every agent of this instance now (all owners), and the token from which
        ``watch`` yields every change after it. Costs a constant number of engine calls.
        """
        raise NotImplementedError(f"{self.name} has no watch yet")

    def watch(self, since: str | None = None) -> AsyncIterator[Observation]:
        """The changes to this instance's agents as they happen, from ``since`` (a token
        of a ``Snapshot`` or of an ``Observation``; None: from now), oldest first.

        Goes on until the consumer closes it; an engine that stops answering ends it with
        ``OrchestratorUnavailable`` (the consumer re-lists and watches again). A token
        older than the engine's history raises ``WatchExpired`` before any observation.
        Changes made through this backend are observed like any other.
        """
        raise NotImplementedError(f"{self.name} has no watch yet")

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections and threads. Agents are not affected."""

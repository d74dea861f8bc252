"""The flow every backend shares: thread pools, lookup, spawn, TTL, changes. Backends supply hooks.

A backend is an ``AgentBackend[Obj, Config]``, where ``Obj`` is what its engine answers for
one agent (a ``Container`` on Docker, a Deployment on Kubernetes) and ``Config`` its section
of the settings (``orchestrators.config``), kept as ``config``. This class owns:

- the pools: engine calls on one bounded pool, plain log reads and followed log streams on
  pools of their own (a read never waits behind follows); no call blocks the event loop;
- the lookup ``_find`` (an id-shaped ref is an id and nothing else; a name shared by
  several owners is ambiguous without ``owner``);
- the spawn: replay of an Idempotency-Key, the owner's quota and ceilings, create, and a
  replay again when two calls with one key raced. One owner-scoped query serves both the
  replay and the count;
- the TTL: the deadline arithmetic, the refusal to start an expired agent, ``renew``;
- the changes: ``update`` and ``rollback`` as plans (``orchestrators.changes``: the spec
  after the change, or the rollback target's), the expected-revision check, the owner's
  ceilings over a resized agent, and ``revisions``.

Hooks a backend writes (one method each):

| hook | does |
|---|---|
| ``_translate(exc)`` | an engine exception as one of ``orchestrators.errors`` |
| ``_query(terms)`` | the managed agents matching label terms (``labels.selector``), one call |
| ``_labels(obj)`` | the agent's labels (and annotations) |
| ``_current_view(obj)`` | the agent's public view as the engine sees it now |
| ``_deadline(obj)`` | its TTL deadline, or None |
| ``_write_deadline(obj, deadline)`` | record a new deadline; the agent after it |
| ``_create(spec, owner, resources, labels)`` | create and start; a taken name: ``AgentConflict`` |
| ``_resume(obj, spec)`` | a replayed agent's spawn, finished if it was cut off (None: removed) |
| ``_prepare``, ``_finish`` | optional: before create (the image), after it (a wait) |
| ``_hinted(ref, owner)`` | optional: a cheaper lookup than the label query |
| ``_history(obj)`` | its kept revisions, newest first (its spawn if never changed) |
| ``_change(ask)`` | find the agent, plan (``_plan``), apply |
| ``_held(others)`` | optional: what the owner's other agents hold (default: spec labels) |
| ``_release()`` | close the engine client |
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import pydantic_core

from . import labels as L
from .base import Orchestrator
from .changes import (
    KEPT_REVISIONS,
    RESOURCE_CHANGES,
    Plan,
    plan_change,
    plan_rollback,
    rollback_target,
)
from .config import EngineConfig
from .errors import (
    AgentConflict,
    AgentExpired,
    AgentNotFound,
    AgentQuotaExceeded,
    AmbiguousAgentName,
    IdempotencyKeyReused,
    InvalidSpec,
    OrchestratorError,
    RevisionMismatch,
)
from .models import (
    Agent,
    AgentChange,
    AgentSpec,
    ChangeResult,
    Resources,
    Revision,
    RevisionList,
    StoredSpec,
    is_agent_id,
)
from .policy import OwnerCeilings, SpawnPolicy
from .threads import in_thread
from .types import T

__all__ = ["AgentBackend", "ChangeAsk", "Planner", "expires_in", "resources_of"]

Obj = TypeVar("Obj")
Config = TypeVar("Config", bound=EngineConfig)
#: A change's plan from the current spec, the kept revisions and the current revision.
Planner = Callable[[StoredSpec, Sequence[Revision], int], Plan]


@dataclass(frozen=True, slots=True)
class ChangeAsk:
    """A change or a rollback as the skeleton hands it to a backend's ``_change``."""

    ref: str
    owner: str | None
    expected: int | None  # the revision the caller read (If-Match), if any
    ceilings: OwnerCeilings | None
    planner: Planner


def expires_in(seconds: int, now: datetime | None = None) -> datetime:
    """The deadline ``seconds`` from ``now`` (the current time by default)."""
    return (now or datetime.now(UTC)) + timedelta(seconds=seconds)


def resources_of(labels: Mapping[str, str]) -> Resources:
    """The resources an agent was spawned with, from its spec label."""
    spec = pydantic_core.from_json(labels[L.SPEC])
    return Resources.model_validate(spec["resources"])


class AgentBackend(Orchestrator, Generic[Obj, Config]):
    """An ``Orchestrator`` whose lookup, spawn and TTL flow is written here once."""

    def __init__(self, config: Config, *, pool_name: str) -> None:
        self._config = config
        self._instance = L.instance_name(config.resource_prefix)
        threads, log_streams = config.engine_threads, config.max_log_streams
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix=pool_name)
        self._log_executor = ThreadPoolExecutor(log_streams, thread_name_prefix=f"{pool_name}-logs")
        self._follow_executor = ThreadPoolExecutor(
            log_streams, thread_name_prefix=f"{pool_name}-follow"
        )

    @property
    def config(self) -> Config:
        """The configuration it was built with."""
        return self._config

    # -- hooks ----------------------------------------------------------------------------

    @abc.abstractmethod
    def _translate(self, exc: Exception) -> OrchestratorError:
        """An engine or transport exception as one of ours; the message names no secret."""

    @abc.abstractmethod
    def _query(self, terms: Mapping[str, str]) -> list[Obj]:
        """The managed agents whose labels match every term."""

    @abc.abstractmethod
    def _labels(self, obj: Obj) -> Mapping[str, str]:
        """The agent's labels (annotations included)."""

    @abc.abstractmethod
    def _current_view(self, obj: Obj) -> Agent:
        """The agent's public view, as the engine sees it now."""

    @abc.abstractmethod
    def _deadline(self, obj: Obj) -> datetime | None:
        """When the agent's TTL passes; None without a TTL."""

    @abc.abstractmethod
    def _write_deadline(self, obj: Obj, deadline: datetime) -> Agent:
        """Record ``deadline`` as the agent's; return the agent after it."""

    @abc.abstractmethod
    def _create(
        self, spec: AgentSpec, owner: str, resources: Resources, labels: dict[str, str]
    ) -> Obj:
        """Create and start the agent with ``labels``; a taken name is ``AgentConflict``.
        On any failure nothing is left behind."""

    @abc.abstractmethod
    def _resume(self, obj: Obj, spec: AgentSpec) -> Obj | None:
        """A replayed agent as it should be answered: finish a spawn that was cut off
        before it started the agent; None if that failed and the agent was removed."""

    @abc.abstractmethod
    def _release(self) -> None:
        """Close the engine client (the pools are shut down by ``close``)."""

    @abc.abstractmethod
    def _history(self, obj: Obj) -> Sequence[Revision]:
        """The agent's kept revisions, newest first; its spawn alone if never changed."""

    @abc.abstractmethod
    async def _change(self, ask: ChangeAsk) -> ChangeResult:
        """Find the agent, plan the change from what it is now (``_plan``) and apply it."""

    def _held(self, others: Sequence[Obj]) -> Sequence[Resources]:
        """What each of ``others`` holds now."""
        return [resources_of(self._labels(o)) for o in others]

    def _hinted(self, ref: str, owner: str | None) -> Obj | None:
        """The agent found a cheaper way than the label query, or None to query."""
        return None

    async def _prepare(self, spec: AgentSpec, owner: str) -> None:
        """Before create, after the replay and the quota (e.g. pull the image)."""

    async def _finish(self, obj: Obj, spec: AgentSpec) -> Agent:
        """The answer to a spawn that created ``obj``."""
        return await self._run(self._current_view, obj)

    # -- the shared flow ------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await in_thread(self._executor, self._translate, fn, *args, **kwargs)

    def _log_pool(self, follow: bool) -> ThreadPoolExecutor:
        return self._follow_executor if follow else self._log_executor

    def _find(self, ref: str, owner: str | None) -> Obj:
        """A ref shaped like an id is looked up as an id and nothing else: it never falls
        back to a name (names cannot take that shape; see ``AgentSpec``)."""
        if (hit := self._hinted(ref, owner)) is not None:
            return hit
        if is_agent_id(ref):
            terms = L.selector(instance=self._instance, owner=owner, agent_id=ref)
        else:
            terms = L.selector(instance=self._instance, owner=owner, name=ref)
        found = self._query(terms)
        if not found:
            raise AgentNotFound(f"no agent {ref!r}")
        if len(found) > 1:
            raise AmbiguousAgentName(
                f"{len(found)} agents of different owners are named {ref!r}: use the id or owner="
            )
        return found[0]

    def _refuse_if_expired(self, obj: Obj) -> None:
        deadline = self._deadline(obj)
        if deadline is not None and deadline <= datetime.now(UTC):
            raise AgentExpired(
                f"the agent's TTL passed at {deadline.isoformat()}: renew it before starting it"
            )

    async def get(self, ref: str, *, owner: str | None = None) -> Agent:
        return await self._run(lambda: self._current_view(self._find(ref, owner)))

    async def renew(self, ref: str, *, owner: str | None = None, ttl_seconds: int) -> Agent:
        def work() -> Agent:
            obj = self._find(ref, owner)
            if L.EXPIRES_AT not in self._labels(obj):
                raise InvalidSpec(
                    "this agent was spawned without ttl_seconds, so it has no TTL to renew"
                )
            return self._write_deadline(obj, expires_in(ttl_seconds))

        return await self._run(work)

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
        self._admit(spec)
        stored = StoredSpec.from_spec(spec, resources)
        idem = L.idempotency_hash(owner, idempotency_key) if idempotency_key else None

        def preamble() -> Obj | None:
            """The agent a replayed key made, after checking the quota otherwise."""
            counted = ceilings is not None and ceilings.active
            if idem is None and max_agents is None and not counted:
                return None
            # One query of the owner's agents answers both the replay and the count.
            terms = L.selector(
                instance=self._instance,
                owner=owner,
                idempotency=None if max_agents is not None or counted else idem,
            )
            mine = self._query(terms)
            if idem is not None:
                earlier = [o for o in mine if self._labels(o).get(L.IDEMPOTENCY_KEY) == idem]
                if earlier and (replayed := self._replay(earlier[0], stored, spec)) is not None:
                    return replayed
                mine = [o for o in mine if self._labels(o).get(L.IDEMPOTENCY_KEY) != idem]
            if max_agents is not None and len(mine) >= max_agents:
                raise AgentQuotaExceeded(
                    f"owner {owner!r} already has {len(mine)} agents, the most allowed"
                )
            if ceilings is not None and counted:
                ceilings.check(owner, (resources_of(self._labels(o)) for o in mine), resources)
            return None

        def create() -> tuple[Obj, bool]:
            labels = self._new_labels(stored, owner, idem, spec.ttl_seconds)
            try:
                return self._create(spec, owner, resources, labels), False
            except AgentConflict:
                # Two calls with one Idempotency-Key raced: the other one created it.
                if idem is not None:
                    terms = L.selector(instance=self._instance, owner=owner, idempotency=idem)
                    for found in self._query(terms)[:1]:
                        if (earlier := self._replay(found, stored, spec)) is not None:
                            return earlier, True
                raise

        earlier = await self._run(preamble)
        if earlier is not None:
            return await self._run(self._current_view, earlier)
        await self._prepare(spec, owner)
        made, replayed = await self._run(create)
        if replayed:
            return await self._run(self._current_view, made)
        return await self._finish(made, spec)

    def _admit(self, spec: AgentSpec) -> None:
        """Refuse a spec this backend cannot honour, before anything is created."""

    def _replay(self, obj: Obj, stored: StoredSpec, spec: AgentSpec) -> Obj | None:
        if StoredSpec.model_validate_json(self._labels(obj)[L.SPEC]) != stored:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request"
            )
        return self._resume(obj, spec)

    def _new_labels(
        self, stored: StoredSpec, owner: str, idem: str | None, ttl: int | None
    ) -> dict[str, str]:
        created_at = datetime.now(UTC)
        return L.system_labels(
            instance=self._instance,
            agent_id=uuid.uuid4().hex,
            owner=owner,
            created_at=created_at,
            spec=stored,
            idempotency=idem,
            expires_at=expires_in(ttl, created_at) if ttl else None,
        )

    # -- changes --------------------------------------------------------------------------

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
        def planner(current: StoredSpec, kept: Sequence[Revision], number: int) -> Plan:
            return plan_change(current, change, policy)

        return await self._change(ChangeAsk(ref, owner, expected_revision, ceilings, planner))

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
        def planner(current: StoredSpec, kept: Sequence[Revision], number: int) -> Plan:
            return plan_rollback(current, rollback_target(kept, number, to).spec, policy)

        return await self._change(ChangeAsk(ref, owner, expected_revision, ceilings, planner))

    async def revisions(self, ref: str, *, owner: str | None = None) -> RevisionList:
        def work() -> RevisionList:
            return RevisionList(
                items=list(self._history(self._find(ref, owner))), kept=KEPT_REVISIONS
            )

        return await self._run(work)

    def _plan(
        self, obj: Obj, ask: ChangeAsk, current: StoredSpec, kept: Sequence[Revision], number: int
    ) -> Plan:
        """The plan of ``ask`` for ``obj``, at revision ``number`` with ``current`` as its
        spec: refused if the caller expected another revision or if it resizes the agent
        past the owner's ceilings."""
        if ask.expected is not None and ask.expected != number:
            raise RevisionMismatch(
                f"the agent is at revision {number}, not {ask.expected}: read it again"
            )
        plan = ask.planner(current, kept, number)
        self._check_ceilings(obj, ask.ceilings, plan)
        return plan

    def _check_ceilings(self, obj: Obj, ceilings: OwnerCeilings | None, plan: Plan) -> None:
        """A change that resizes the agent passes the owner's ceilings over its others."""
        if ceilings is None or not ceilings.active:
            return
        if not any(change in RESOURCE_CHANGES for change in plan.changes):
            return
        labels = self._labels(obj)
        owner, agent_id = labels[L.OWNER], labels[L.ID]
        terms = L.selector(instance=self._instance, owner=owner)
        others = [o for o in self._query(terms) if self._labels(o)[L.ID] != agent_id]
        ceilings.check(owner, self._held(others), plan.spec.resources)

    async def close(self) -> None:
        for pool in (self._executor, self._log_executor, self._follow_executor):
            pool.shutdown(wait=False, cancel_futures=True)
        self._release()

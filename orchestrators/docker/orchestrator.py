"""``DockerOrchestrator``: agents as containers, on the docker SDK's low-level API client.

The lookup, spawn and TTL flow is ``orchestrators.skeleton``'s; this module supplies its
hooks on the engine. No call on the engine pool lasts longer than one engine round trip: a
stop's grace is waited out on the event loop (``graceful``), pulls run on their own pool
under a deadline (``pulls``). What is sent is built in ``objects``, calls that are not one
SDK method and the translation of errors are in ``api``, the status table in ``status``,
the sweep of leftovers in ``orphans``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import docker.errors
from docker import APIClient

from .. import labels as L
from ..changes import KEPT_REVISIONS, RESOURCE_CHANGES, Plan, spawned_revision
from ..config import DockerConfig
from ..errors import (
    AgentConflict,
    AgentNotFound,
    ChangeInFlight,
    ImageNotFound,
    InvalidSpec,
    OrchestratorError,
    RevisionMismatch,
    SpawnFailed,
)
from ..images import parse_reference
from ..models import (
    Agent,
    AgentSpec,
    AgentStats,
    AgentStatus,
    ChangeResult,
    LogOptions,
    ResourceRequest,
    Resources,
    Revision,
    StoppedBy,
    StoredSpec,
    SweepReport,
    is_agent_id,
)
from ..skeleton import AgentBackend, ChangeAsk, expires_in
from ..types import T
from ..watch import Observation, Snapshot
from .api import (
    Container,
    explain,
    list_containers,
    open_client,
    release,
    translate,
    update_limits,
)
from .graceful import stop_container
from .leases import deadline_of, lease_prefix, read_leases, write_lease
from .networks import find_or_create, network_name, remove_idle_networks
from .objects import LogRotation, build_container, container_name, volume_name
from .orphans import remove_orphans, remove_volumes
from .pulls import Pulls
from .replace import (
    finish,
    newest_per_agent,
    reapply_in_place,
    repair,
    secret_values,
    temporary_name,
)
from .revisions import LIVE, REPLACE, AgentRevisions, Record, claim, forget, read_records
from .stats import sample_stats
from .status import SIGKILL_EXIT, container_status
from .watch import StopIntents, stops_on_record, token_now, watch_engine
from .workspace import prepare_with_helper, prepare_workspace

__all__ = ["DockerConfig", "DockerOrchestrator"]

_MAX_HINTS = 100_000
_RUNNING = frozenset({"running"})
_SWEEP_STOPS = 8  # expired agents one sweep stops at once
_STOPPED_STATES = frozenset({"exited", "dead"})
_EXITED_STATES = frozenset({"exited", "dead", "restarting"})  # where an exit code means something
# What Docker changes on a running container without restarting it.
_IN_PLACE = RESOURCE_CHANGES | {"restart_policy"}


class DockerOrchestrator(AgentBackend[Container, DockerConfig]):
    """Agents as hardened containers on one Docker engine."""

    name = "docker"

    def __init__(self, config: DockerConfig) -> None:
        super().__init__(config, pool_name="docker")
        self._api: APIClient | None = None
        self._api_lock = threading.Lock()
        self._network_ids: dict[str, str] = {}  # owner network name -> id
        self._network_lock = threading.Lock()
        # Agent id -> container id, learnt from lists, lookups and spawns. Only a hint of
        # which container to inspect: what the inspect says is checked, and a miss falls
        # back to the label search, so a stale hint (or none, on another replica) is harmless.
        self._hints: dict[str, str] = {}
        # Container id -> when its current run began, learnt from inspects: a list entry
        # does not say (a start or restart is inspected, by the call or by the watch).
        self._started: dict[str, datetime] = {}
        # Stops this process makes, so that its watch can say who stopped an agent.
        self._intents = StopIntents()
        self._pulls = Pulls(
            self._client,
            timeout=config.pull_timeout,
            threads=config.pull_threads,
            per_owner=config.max_pulls_per_owner,
            allow_private=config.allow_private_registries,
        )

    # -- plumbing -------------------------------------------------------------------------

    def _client(self) -> APIClient:
        """The API client, created on first use so the service starts while the engine is down."""
        with self._api_lock:
            if self._api is None:
                self._api = open_client(
                    self._config.docker_host,
                    timeout=self._config.engine_timeout,
                    pool_size=self._config.engine_threads,
                )
            return self._api

    def _inspect(self, container_id: str) -> Container | None:
        """One container, from one inspect (constant time, unlike a label search, which the
        engine answers by scanning every container); None unless it is one of this
        instance's agents."""
        try:
            found = Container.from_inspect(self._client().inspect_container(container_id))
        except docker.errors.NotFound:
            return None
        if not L.is_managed(found.labels) or found.labels.get(L.INSTANCE) != self._instance:
            return None
        return found

    def _refresh(self, container_id: str) -> Container:
        found = self._inspect(container_id)
        if found is None:
            raise AgentNotFound("the agent was removed")
        self._hints[found.agent_id] = found.id
        return found

    def _view(
        self,
        container: Container,
        leases: Mapping[str, datetime],
        records: Mapping[str, Sequence[Record]],
        stops: frozenset[str] = frozenset(),
    ) -> Agent:
        """The public view of what the engine said, with the deadlines of ``leases``, the
        changes made in place that ``records`` hold, and the containers the engine's
        history shows as stopped on request (``stops``)."""
        revs = AgentRevisions(L.revision_of(container.labels), records.get(container.agent_id, []))
        facts = container.exit_code != 0  # the engine's error and OOM flag explain a failure
        deadline = deadline_of(container.labels, leases)
        status, detail = container_status(
            container.state,
            container.exit_code,
            oom_killed=facts and container.oom_killed,
            error=container.error if facts else "",
            stop_asked=container.id in stops
            or (deadline is not None and deadline <= datetime.now(UTC)),
        )
        if container.state == "created" and L.REVISION in container.labels:
            # Replaced while it was stopped: made, never started, and stopped it stays.
            status, detail = AgentStatus.STOPPED, "changed while stopped; start it to run it"
        return L.agent_from_labels(
            container.labels,
            status=status,
            detail=detail,
            orchestrator=self.name,
            expires_at=deadline,
            address=container.address(),
            exit_code=container.exit_code if container.state in _EXITED_STATES else None,
            revision=revs.number,
            spec_text=revs.spec_text(container.labels[L.SPEC]),
            started_at=self._started_at(container),
        )

    def _unstarted(self, container: Container) -> bool:
        """Running, and when its run began is not known yet."""
        return container.state == "running" and container.id not in self._started

    def _started_at(self, container: Container) -> datetime | None:
        if container.state != "running":
            return None
        if container.inspected and container.started_at is not None:
            if len(self._started) > _MAX_HINTS:
                self._started.clear()
            self._started[container.id] = container.started_at
        return self._started.get(container.id)

    # -- the skeleton's hooks -------------------------------------------------------------

    def _translate(self, exc: Exception) -> OrchestratorError:
        return translate(exc)

    def _query(self, terms: Mapping[str, str]) -> list[Container]:
        found = newest_per_agent(
            list_containers(self._client(), terms, timeout=self._config.engine_timeout)
        )
        if len(self._hints) > _MAX_HINTS:
            self._hints.clear()
        for container in found:
            self._hints[container.agent_id] = container.id
        return found

    def _hinted(self, ref: str, owner: str | None) -> Container | None:
        if not is_agent_id(ref) or (hinted := self._hints.get(ref)) is None:
            return None
        found = self._inspect(hinted)
        if found is None or found.labels.get(L.ID) != ref:
            self._hints.pop(ref, None)
            return None
        return found if owner is None or found.labels.get(L.OWNER) == owner else None

    def _labels(self, obj: Container) -> Mapping[str, str]:
        return obj.labels

    def _current_view(self, obj: Container, records: Sequence[Record] | None = None) -> Agent:
        """Inspects only when a list entry cannot tell why it stopped or when its run began
        (then remembered); reads leases only for
        an agent that has a TTL, and its revision records unless given."""
        stopped = obj.state in _STOPPED_STATES and obj.exit_code != 0
        if not obj.inspected and (stopped or self._unstarted(obj)):
            try:
                obj = Container.from_inspect(self._client().inspect_container(obj.id))
            except docker.errors.NotFound as exc:
                raise AgentNotFound("the agent was removed") from exc
        leases = {}
        if L.EXPIRES_AT in obj.labels:
            leases = read_leases(self._client(), self._instance, obj.agent_id)
        found: Mapping[str, Sequence[Record]] = (
            read_records(self._client(), self._instance, obj.agent_id)
            if records is None
            else {obj.agent_id: records}
        )
        return self._view(obj, leases, found, self._stops([obj]))

    def _stops(self, containers: Sequence[Container]) -> frozenset[str]:
        """The engine's record of stops, asked only when one of ``containers`` died of
        SIGKILL (a stop whose grace ran out, or a kill behind the service's back)."""
        if not any(_killed(c) for c in containers):
            return frozenset()
        return stops_on_record(self._client(), self._instance)

    def _deadline(self, obj: Container) -> datetime | None:
        if L.EXPIRES_AT not in obj.labels:
            return None
        return deadline_of(obj.labels, read_leases(self._client(), self._instance, obj.agent_id))

    def _write_deadline(self, obj: Container, deadline: datetime) -> Agent:
        write_lease(
            self._client(),
            prefix=self._config.resource_prefix,
            instance=self._instance,
            agent_id=obj.agent_id,
            owner=obj.labels[L.OWNER],
            now=datetime.now(UTC),
            deadline=deadline,
        )
        return self._current_view(self._refresh(obj.id))

    def _release(self) -> None:
        self._pulls.close()
        with self._api_lock:
            if self._api is not None:
                self._api.close()
                self._api = None

    # -- the contract ---------------------------------------------------------------------

    async def ping(self) -> None:
        await self._run(lambda: self._client().ping())

    async def list(
        self, *, owner: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[Agent]:
        def work() -> list[Agent]:
            found = self._query(
                L.selector(instance=self._instance, owner=owner, user_labels=labels)
            )
            with_ttl = any(L.EXPIRES_AT in c.labels for c in found)
            leases = read_leases(self._client(), self._instance) if with_ttl else {}
            records = read_records(self._client(), self._instance)
            stops = self._stops(found)
            # A kill is told from an out-of-memory kill only by an inspect (rare: kills only);
            # when a run began, only by an inspect (once per run: then remembered).
            found = [
                (self._inspect(c.id) or c)
                if (_killed(c) and c.id not in stops) or self._unstarted(c)
                else c
                for c in found
            ]
            return [self._view(c, leases, records, stops) for c in found]

        return await self._run(work)

    async def start(self, ref: str, *, owner: str | None = None) -> Agent:
        def work() -> Agent:
            container = self._find(ref, owner)
            self._refuse_if_expired(container)
            return self._act(container.id, lambda api, cid: api.start(cid), _RUNNING)

        return await self._run(work)

    async def stop(
        self, ref: str, *, owner: str | None = None, timeout: int | None = None
    ) -> Agent:
        grace = self._config.stop_timeout if timeout is None else timeout
        container = await self._run(self._find, ref, owner)
        await self._stop(container, grace, StoppedBy.CALL)
        return await self._run(lambda: self._current_view(self._refresh(container.id)))

    async def restart(
        self, ref: str, *, owner: str | None = None, timeout: int | None = None
    ) -> Agent:
        grace = self._config.stop_timeout if timeout is None else timeout

        def find() -> Container:
            container = self._find(ref, owner)
            self._refuse_if_expired(container)
            return container

        container = await self._run(find)
        await self._stop(container, grace, StoppedBy.CALL)
        return await self._run(self._act, container.id, lambda api, cid: api.start(cid), _RUNNING)

    async def _stop(self, container: Container, grace: int, by: StoppedBy) -> None:
        """Stop a container; its grace period is waited out on the event loop, not a thread.
        The watch learns who stopped it (``StopIntents``)."""
        self._intents.note(container.agent_id, by, seconds=grace + 60)
        await stop_container(self._run_on_agent, self._client, container.id, grace)

    async def _run_on_agent(self, fn: Callable[[], T]) -> T:
        """``_run`` for calls on one agent's container: its absence means the agent is gone."""

        def call() -> T:
            try:
                return fn()
            except docker.errors.NotFound as exc:
                raise AgentNotFound("the agent was removed") from exc

        return await self._run(call)

    def _act(
        self,
        container_id: str,
        action: Callable[[APIClient, str], object],
        settled: frozenset[str],
    ) -> Agent:
        """Run ``action`` on the container. When the engine refuses it because another call
        is acting on the same container (two replicas, two clients), the action is done if
        the container is now in a ``settled`` state, and tried once more otherwise."""
        for attempt in range(2):
            try:
                action(self._client(), container_id)
                break
            except docker.errors.NotFound as exc:
                raise AgentNotFound("the agent was removed") from exc
            except docker.errors.APIError:
                now = self._refresh(container_id)
                if now.state in settled:
                    return self._current_view(now)
                if attempt:
                    raise
        return self._current_view(self._refresh(container_id))

    async def sweep(self, *, now: datetime | None = None) -> SweepReport:
        def work() -> tuple[list[Container], SweepReport]:
            moment = now or datetime.now(UTC)
            api = self._client()
            every = list_containers(
                api, L.selector(instance=self._instance), timeout=self._config.engine_timeout
            )
            report = SweepReport()
            # Replacements a killed service left half done: finished or undone first, so
            # that what follows sees one container per agent.
            records = read_records(api, self._instance)
            grace = self._config.orphan_grace_seconds
            repair(api, every, records, name_of=self._container_name, now=moment, grace=grace)
            # ... and changes in place recorded but not made (recent ones: a few inspects).
            reapply_in_place(
                api,
                every,
                records,
                now=moment,
                window=max(2 * grace, 60.0),
                timeout=self._config.engine_timeout,
            )
            containers = self._query(L.selector(instance=self._instance))
            leases = read_leases(api, self._instance)
            expired = [
                c
                for c in containers
                if (deadline := deadline_of(c.labels, leases)) is not None
                and deadline <= moment
                and c.state in ("running", "restarting")
            ]
            live = {c.agent_id for c in containers}
            report.removed.extend(
                remove_orphans(
                    api,
                    instance=self._instance,
                    live=live,
                    now=moment,
                    grace=self._config.orphan_grace_seconds,
                )
            )
            idle = remove_idle_networks(
                api,
                instance=self._instance,
                busy_owners={c.labels[L.OWNER] for c in containers},
                now=moment,
                grace=self._config.orphan_grace_seconds,
                service_container=self._config.service_container,
            )
            if idle:
                self._forget_network()
            report.removed.extend(idle)
            return expired, report

        expired, report = await self._run(work)
        # The stops wait out their grace on the event loop, a few at a time.
        slots = asyncio.Semaphore(_SWEEP_STOPS)

        async def stop_one(container: Container) -> None:
            async with slots:
                with contextlib.suppress(AgentNotFound):
                    await self._stop(container, self._config.stop_timeout, StoppedBy.TTL)
                    report.stopped.append(container.agent_id)

        await asyncio.gather(*(stop_one(c) for c in expired))
        return report

    async def snapshot(self) -> Snapshot:
        token = token_now()
        return Snapshot(agents=await self.list(), token=token)

    def watch(self, since: str | None = None) -> AsyncIterator[Observation]:
        return watch_engine(
            self._client,
            instance=self._instance,
            since=since or token_now(0),
            inspect=self._observe,
            run=self._run,
            intents=self._intents,
            heartbeat=self._config.watch_heartbeat,
            survivor=self._survivor,
            lease_prefix=lease_prefix(self._config.resource_prefix),
        )

    async def _survivor(self, agent_id: str) -> tuple[Agent, Container] | None:
        """The agent's container left after one of its containers was destroyed (a
        replacement), with its view; None when the agent is gone."""

        def work() -> tuple[Agent, Container] | None:
            found = self._query(L.selector(instance=self._instance, agent_id=agent_id))
            return None if not found else (self._current_view(found[0]), found[0])

        return await self._run(work)

    async def _observe(self, container_id: str) -> tuple[Agent, Container] | None:
        """One agent's view and its inspected container; None unless it is ours."""

        def work() -> tuple[Agent, Container] | None:
            found = self._inspect(container_id)
            return None if found is None else (self._current_view(found), found)

        return await self._run(work)

    async def delete(self, ref: str, *, owner: str | None = None) -> None:
        def work() -> None:
            container = self._find(ref, owner)
            try:
                self._client().remove_container(container.id, force=True)
            except docker.errors.NotFound as exc:
                raise AgentNotFound(f"no agent {ref!r}") from exc
            self._hints.pop(container.agent_id, None)
            remove_volumes(self._client(), instance=self._instance, agent_id=container.agent_id)

        await self._run(work)

    async def logs(
        self, ref: str, *, owner: str | None = None, options: LogOptions
    ) -> AsyncIterator[bytes]:
        def open_stream() -> Iterator[bytes]:
            container_id = self._find(ref, owner).id
            since = options.since.timestamp() if options.since is not None else None
            stream: Iterator[bytes] = self._client().logs(
                container_id,
                stdout=True,
                stderr=True,
                stream=True,
                follow=options.follow,
                timestamps=options.timestamps,
                tail="all" if options.tail is None else options.tail,
                since=since if since and since > 0 else None,
            )
            return stream

        stream = await self._run(open_stream)
        return self._drain(stream, self._log_pool(options.follow))

    async def _drain(
        self, stream: Iterator[bytes], pool: ThreadPoolExecutor
    ) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        try:
            while True:
                chunk = await loop.run_in_executor(pool, next, stream, None)
                if chunk is None:
                    return
                yield chunk
        finally:
            # Closing the response unblocks the worker thread still reading it.
            await loop.run_in_executor(None, release, stream)

    # -- changes --------------------------------------------------------------------------

    def _container_name(self, container: Container) -> str:
        return container_name(
            self._config.resource_prefix, container.labels[L.OWNER], container.labels[L.NAME]
        )

    def _revisions_of(self, container: Container) -> AgentRevisions:
        found = read_records(self._client(), self._instance, container.agent_id)
        return AgentRevisions(L.revision_of(container.labels), found.get(container.agent_id, []))

    def _history(self, obj: Container) -> Sequence[Revision]:
        revs = self._revisions_of(obj)
        return revs.kept() or [  # never changed: its spawn is its only revision
            spawned_revision(
                revs.number,
                L.parse_moment(obj.labels[L.CREATED_AT]),
                StoredSpec.model_validate_json(obj.labels[L.SPEC]),
            )
        ]

    def _held(self, others: Sequence[Container]) -> Sequence[Resources]:
        # An in-place change is in the records, not yet in the container's labels.
        records = read_records(self._client(), self._instance)
        return [self._view(c, {}, records).resources for c in others]

    async def stats(self, ref: str, *, owner: str | None = None) -> AgentStats:
        def work() -> AgentStats:
            container = self._find(ref, owner)
            if container.state != "running":
                return sample_stats({}, running=False)
            # stream=False: the engine answers one sample with the one before it (for CPU).
            return sample_stats(self._client().stats(container.id, stream=False), running=True)

        return await self._run_on_agent(work)

    async def _change(self, ask: ChangeAsk) -> ChangeResult:
        """The flow of a change and of a rollback: plan, claim the next revision, then
        change in place or replace (see ``replace``)."""

        def prepare() -> tuple[Container, AgentRevisions, StoredSpec, Plan]:
            container = self._find(ask.ref, ask.owner)
            revs = self._revisions_of(container)
            if revs.pending is not None:
                raise ChangeInFlight("another change of this agent is under way: retry shortly")
            current = StoredSpec.model_validate_json(revs.spec_text(container.labels[L.SPEC]))
            plan = self._plan(container, ask, current, revs.kept(), revs.number)
            return container, revs, current, plan

        container, revs, current, plan = await self._run(prepare)
        if not plan.changes:
            agent = await self._run(self._current_view, container)
            return ChangeResult(agent=agent, revision=revs.number, restarted=False, changes=[])
        has_ttl = L.EXPIRES_AT in container.labels
        live = plan.only(_IN_PLACE | ({"ttl_seconds"} if has_ttl else frozenset()))
        if "image" in plan.changes:
            await self._ensure_image(plan.spec.image, container.labels[L.OWNER])
        running = container.state in ("running", "restarting")
        records = await self._run(self._claim, container, revs, current, plan, live, running)
        record = records[0]
        if live:
            agent = await self._run_on_agent(
                lambda: self._change_in_place(container, plan, records)
            )
            return ChangeResult(
                agent=agent, revision=record.number, restarted=False, changes=list(plan.changes)
            )
        agent = await self._replace(container, current, plan, records, running)
        return ChangeResult(
            agent=agent, revision=record.number, restarted=running, changes=list(plan.changes)
        )

    def _claim(
        self,
        container: Container,
        revs: AgentRevisions,
        current: StoredSpec,
        plan: Plan,
        live: bool,
        running: bool,
    ) -> Sequence[Record]:
        """The records after claiming the next revision, newest (the claim) first."""
        api, labels = self._client(), container.labels
        held = list(revs.records)
        common = {
            "prefix": self._config.resource_prefix,
            "instance": self._instance,
            "agent_id": container.agent_id,
            "owner": labels[L.OWNER],
        }
        if not revs.records:  # the revision before: kept so that a rollback can return to it
            base = claim(
                api,
                **common,
                number=revs.number,
                spec=current,
                changes=(),
                mode=REPLACE,
                was_running=running,
                now=L.parse_moment(labels[L.CREATED_AT]),
            )
            held = [base] if base is not None else []
        number = revs.number + 1
        record = claim(
            api,
            **common,
            number=number,
            spec=plan.spec,
            changes=plan.changes,
            mode=LIVE if live else REPLACE,
            was_running=running,
            now=datetime.now(UTC),
        )
        if record is None:
            raise RevisionMismatch(f"another change made revision {number} first: read it again")
        return [record, *held]

    def _change_in_place(
        self, container: Container, plan: Plan, records: Sequence[Record]
    ) -> Agent:
        api, record = self._client(), records[0]
        try:
            if any(change in _IN_PLACE for change in plan.changes):
                update_limits(
                    api,
                    container.id,
                    resources=plan.spec.resources,
                    restart_policy=plan.spec.restart_policy,
                    timeout=self._config.engine_timeout,
                )
            if "ttl_seconds" in plan.changes and plan.spec.ttl_seconds:
                self._write_deadline(container, expires_in(plan.spec.ttl_seconds))
        except BaseException as exc:
            forget(api, [record])
            if isinstance(exc, docker.errors.APIError) and not isinstance(
                exc, docker.errors.NotFound
            ):
                raise InvalidSpec(f"the engine refused the change: {explain(exc)}") from exc
            raise
        forget(api, records[KEPT_REVISIONS:])
        return self._current_view(self._refresh(container.id), records[:KEPT_REVISIONS])

    async def _replace(
        self,
        old: Container,
        current: StoredSpec,
        plan: Plan,
        records: Sequence[Record],
        running: bool,
    ) -> Agent:
        api, record = self._client(), records[0]
        try:
            kept = await self._run_on_agent(
                lambda: secret_values(api, old.id, set(current.secret_names) - set(plan.secrets))
            )
            if running:
                await self._stop(old, self._config.stop_timeout, StoppedBy.CALL)
        except BaseException:
            await self._run(forget, api, [record])
            raise

        def swap() -> Agent:
            try:
                new_id = self._create_replacement(old, plan, record, kept)
            except BaseException:
                with contextlib.suppress(docker.errors.APIError):
                    if running:
                        api.start(old.id)
                forget(api, [record])
                raise
            try:
                finish(api, old=[old.id], new=new_id, name=self._container_name(old), start=running)
            except docker.errors.APIError as exc:
                raise SpawnFailed(
                    f"revision {record.number} was made but the agent could not start: "
                    f"{explain(exc)}; roll back or change it again"
                ) from exc
            forget(api, records[KEPT_REVISIONS:])
            return self._current_view(self._refresh(new_id), records[:KEPT_REVISIONS])

        return await self._run(swap)

    def _create_replacement(
        self, old: Container, plan: Plan, record: Record, kept: Mapping[str, str]
    ) -> str:
        """Step 3 of ``replace``: the new container, created under its temporary name."""
        labels, spec = old.labels, plan.spec
        owner, agent_id = labels[L.OWNER], old.agent_id
        secrets = {**kept, **{k: v.get_secret_value() for k, v in plan.secrets.items()}}
        asked = AgentSpec.model_validate(
            {
                **spec.model_dump(exclude={"secret_names", "resources"}),
                "secrets": {name: secrets[name] for name in spec.secret_names if name in secrets},
                "resources": ResourceRequest(**spec.resources.model_dump()),
            }
        )
        deadline = None
        if spec.ttl_seconds:
            deadline = (
                expires_in(spec.ttl_seconds)
                if "ttl_seconds" in plan.changes or L.EXPIRES_AT not in labels
                else L.parse_moment(labels[L.EXPIRES_AT])
            )
        new_labels = L.system_labels(
            instance=self._instance,
            agent_id=agent_id,
            owner=owner,
            created_at=L.parse_moment(labels[L.CREATED_AT]),
            spec=spec,
            idempotency=labels.get(L.IDEMPOTENCY_KEY),
            expires_at=deadline,
            revision=record.number,
        )
        network = self._ensure_network(owner) if spec.network != "none" else "none"
        kwargs = self._describe(asked, new_labels, owner, spec.resources, network)
        kwargs["name"] = temporary_name(kwargs["name"], record.number)
        try:
            new_id: str = self._client().create_container(**kwargs)["Id"]
        except docker.errors.NotFound as exc:
            if not _lost_network(exc):
                raise
            self._forget_network(owner)
            kwargs["networking_config"] = {
                "EndpointsConfig": {self._ensure_network(owner): {"Aliases": [spec.name]}}
            }
            kwargs["host_config"]["NetworkMode"] = self._ensure_network(owner)
            new_id = self._client().create_container(**kwargs)["Id"]
        if deadline is not None and "ttl_seconds" in plan.changes:
            self._write_deadline(old, deadline)
        return new_id

    # -- spawn ----------------------------------------------------------------------------

    async def _prepare(self, spec: AgentSpec, owner: str) -> None:
        await self._ensure_image(spec.image, owner)

    async def _ensure_image(self, image: str, owner: str) -> None:
        """The image is on the engine, pulled (on the pull pool, under its deadline) if not."""
        if await self._run(self._image_present, image):
            return
        if not self._config.pull_missing_images:
            raise ImageNotFound(f"image {image!r} is not present on the engine")
        try:
            await self._pulls.pull(image, owner=owner)
        except OrchestratorError:
            raise
        except Exception as exc:
            raise translate(exc) from exc
        await self._run(lambda: _check_named(self._client().inspect_image(image), image))

    def _resume(self, obj: Container, spec: AgentSpec) -> Container | None:
        if obj.state != "created":
            return obj
        # The first call was cut off between create and start: finish its work. A start
        # that fails (e.g. its network was swept away meanwhile) leaves an unfinished
        # spawn, never an answer: it is removed and the caller spawns anew.
        owner = obj.labels[L.OWNER]
        try:
            if spec.workspace:
                self._own_workspace(obj.id, image=spec.image, agent_id=obj.agent_id, owner=owner)
            self._client().start(obj.id)
        except docker.errors.APIError:
            self._forget_network(owner)
            with contextlib.suppress(docker.errors.NotFound):
                self._client().remove_container(obj.id, force=True)
            self._hints.pop(obj.agent_id, None)
            remove_volumes(self._client(), instance=self._instance, agent_id=obj.agent_id)
            return None
        return self._refresh(obj.id)

    def _ensure_network(self, owner: str) -> str:
        """The id of the owner's agent network, created if missing (see ``networks``)."""
        name = network_name(self._config.network, owner)
        with self._network_lock:
            if (known := self._network_ids.get(name)) is not None:
                return known
            network_id = find_or_create(
                self._client(),
                name,
                instance=self._instance,
                owner=owner,
                service_container=self._config.service_container,
            )
            self._network_ids[name] = network_id
            return network_id

    def _forget_network(self, owner: str | None = None) -> None:
        with self._network_lock:
            if owner is None:
                self._network_ids.clear()
            else:
                self._network_ids.pop(network_name(self._config.network, owner), None)

    def _image_present(self, image: str) -> bool:
        try:
            _check_named(self._client().inspect_image(image), image)
            return True
        except docker.errors.ImageNotFound:
            return False
        except docker.errors.APIError as exc:
            if exc.is_client_error():
                raise InvalidSpec(f"image {image!r} is not usable: {explain(exc)}") from exc
            raise

    def _describe(
        self,
        spec: AgentSpec,
        labels: dict[str, str],
        owner: str,
        resources: Resources,
        network_id: str,
    ) -> dict[str, Any]:
        """The keyword arguments of the agent's ``create_container`` (see ``objects``)."""
        config = self._config
        return build_container(
            spec,
            labels=labels,
            owner=owner,
            resources=resources,
            prefix=config.resource_prefix,
            network=network_id,
            volume=volume_name(config.resource_prefix, labels[L.ID]) if spec.workspace else None,
            workspace_path=config.workspace_path,
            read_only_rootfs=config.read_only_rootfs,
            user=config.agent_user,
            log=LogRotation(
                config.agent_log_driver, config.agent_log_max_size, config.agent_log_max_files
            ),
        ).kwargs()

    def _create(
        self, spec: AgentSpec, owner: str, resources: Resources, labels: dict[str, str]
    ) -> Container:
        api, config = self._client(), self._config
        agent_id = labels[L.ID]
        volume = volume_name(config.resource_prefix, agent_id) if spec.workspace else None

        def describe(network_id: str) -> dict[str, Any]:
            return self._describe(spec, labels, owner, resources, network_id)

        prepare: Callable[[str], None] | None = None
        if volume is not None and config.agent_user and not config.read_only_rootfs:

            def prepare(container_id: str) -> None:
                self._own_workspace(container_id, image=spec.image, agent_id=agent_id, owner=owner)

        try:
            if volume is not None:
                api.create_volume(
                    volume,
                    labels=L.owned_labels(
                        instance=self._instance,
                        agent_id=agent_id,
                        owner=owner,
                        kind=L.Kind.WORKSPACE,
                    ),
                )
                if config.read_only_rootfs:
                    self._own_workspace(None, image=spec.image, agent_id=agent_id, owner=owner)
            container_id = self._create_and_start(
                describe, owner if spec.network != "none" else None, prepare=prepare
            )
        except BaseException as exc:
            remove_volumes(api, instance=self._instance, agent_id=agent_id)
            if isinstance(exc, docker.errors.APIError) and exc.status_code == 409:
                raise AgentConflict(f"an agent named {spec.name!r} already exists") from exc
            if isinstance(exc, docker.errors.ImageNotFound):
                raise ImageNotFound(f"image {spec.image!r} is not present on the engine") from exc
            if isinstance(exc, docker.errors.APIError) and exc.is_client_error():
                raise SpawnFailed(f"the engine refused the agent: {explain(exc)}") from exc
            raise
        return self._refresh(container_id)

    def _own_workspace(
        self, container_id: str | None, *, image: str, agent_id: str, owner: str
    ) -> None:
        """Make the workspace volume the agent user's (see ``workspace``): through the
        created container, or through a helper where the container cannot take it."""
        config, api = self._config, self._client()
        user = config.agent_user
        if not user:
            return
        if container_id is not None and not config.read_only_rootfs:
            prepare_workspace(api, container_id, path=config.workspace_path, user=user)
            return
        prepare_with_helper(
            api,
            image=image,
            volume=volume_name(config.resource_prefix, agent_id),
            path=config.workspace_path,
            user=user,
            name=f"{config.resource_prefix}init-{agent_id}",
            labels=L.owned_labels(
                instance=self._instance, agent_id=agent_id, owner=owner, kind=L.Kind.INIT
            ),
        )

    def _create_and_start(
        self,
        describe: Callable[[str], dict[str, Any]],
        network_owner: str | None,
        prepare: Callable[[str], None] | None = None,
    ) -> str:
        """Create and start the container; a container that cannot start is removed.

        The network may have been removed behind our back since its id was cached: the
        engine then refuses the create or, with an id, only the start. Either way the
        network is looked up again and the whole step tried once more.
        """
        api = self._client()
        for attempt in (1, 2):
            retry = attempt == 1 and network_owner is not None
            network = self._ensure_network(network_owner) if network_owner else "none"
            try:
                container_id: str = api.create_container(**describe(network))["Id"]
            except docker.errors.NotFound as exc:
                if not (retry and _lost_network(exc)):
                    raise
                self._forget_network(network_owner)
                continue
            try:
                if prepare is not None:
                    prepare(container_id)
                api.start(container_id)
                return container_id
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    api.remove_container(container_id, force=True)
                if not isinstance(exc, docker.errors.APIError):
                    raise
                if retry and _lost_network(exc):
                    self._forget_network(network_owner)
                    continue
                raise SpawnFailed(f"the agent could not start: {explain(exc)}") from exc
        raise SpawnFailed("the agents' network disappeared twice while spawning")


def _check_named(info: Mapping[str, Any], image: str) -> None:
    """Refuse an image the engine found by id rather than by the name that was allowed.

    Given a name it has no image for, the engine tries the name as an id prefix, so an
    allowed-looking reference (``cafe``) could run any local image. The image found must
    carry the reference as one of its tags or digests.
    """
    ref = parse_reference(image)
    if ref.digest is not None:
        expected, known = f"{ref.familiar}@{ref.digest}", info.get("RepoDigests") or []
    else:
        expected, known = f"{ref.familiar}:{ref.tag or 'latest'}", info.get("RepoTags") or []
    if expected not in known:
        raise InvalidSpec(
            f"image {image!r} names no image on the engine (it matched an image id): "
            "name the image by repository and tag"
        )


def _lost_network(exc: docker.errors.APIError) -> bool:
    explanation = str(exc.explanation or "")
    return "network" in explanation and "not found" in explanation


def _killed(container: Container) -> bool:
    """It exited of SIGKILL: a stop after its grace, a kill, or the OOM killer."""
    return (
        container.state == "exited"
        and container.exit_code == SIGKILL_EXIT
        and not (container.inspected and container.oom_killed)
    )

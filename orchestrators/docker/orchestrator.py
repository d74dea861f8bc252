"""``DockerOrchestrator``: agents as containers, on the docker SDK's low-level API client.

The SDK is synchronous, so every call runs in a bounded thread pool and the event loop never
waits on the engine; log streams get a pool of their own so that followers cannot starve
other calls. No call on the engine pool lasts longer than one engine round trip: a stop's grace
is waited out on the event loop (``graceful``), pulls run on their own pool under a
deadline (``pulls``). Lists use one ``GET /containers/json`` with label filters (the
high-level ``containers.list()`` would inspect every container).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import docker.errors
import pydantic_core
import requests
from docker import APIClient

from .. import labels as L
from ..base import Orchestrator
from ..errors import (
    AgentConflict,
    AgentExpired,
    AgentNotFound,
    AgentQuotaExceeded,
    AmbiguousAgentName,
    EngineError,
    IdempotencyKeyReused,
    ImageNotFound,
    InvalidSpec,
    OrchestratorError,
    OrchestratorUnavailable,
    SpawnFailed,
)
from ..images import parse_reference
from ..models import (
    Agent,
    AgentSpec,
    LogOptions,
    Resources,
    StoredSpec,
    SweepReport,
    is_agent_id,
)
from ..policy import OwnerCeilings
from ..threads import in_thread
from .graceful import stop_container
from .leases import deadline_of, read_leases, write_lease
from .networks import find_or_create, network_name, remove_idle_networks
from .objects import LogRotation, build_container, volume_name
from .orphans import remove_orphans
from .pulls import Pulls
from .status import container_status, exit_code_from_summary, inspect_facts
from .workspace import prepare_with_helper, prepare_workspace

__all__ = ["DockerConfig", "DockerOrchestrator"]

T = TypeVar("T")
Summary = dict[str, Any]
_INSPECTED = "_inspected"  # the inspect answer a summary was made from, if it was
_MAX_HINTS = 100_000
_RUNNING = frozenset({"running"})
_SWEEP_STOPS = 8  # expired agents one sweep stops at once


@dataclass(frozen=True, slots=True)
class DockerConfig:
    """How to reach the engine and where agents go."""

    base_url: str | None = None  # None: DOCKER_HOST or the local socket
    timeout: float = 30.0
    network: str = "hive-net"  # agents of owner o join the network "<network>.<o>"
    service_container: str | None = None  # agent-api's container, joined to them if set
    resource_prefix: str = "hive-"
    pull_missing_images: bool = True
    workspace_path: str = "/workspace"
    stop_timeout: int = 10
    max_workers: int = 16
    max_log_streams: int = 64
    read_only_rootfs: bool = False
    orphan_grace_seconds: float = 300.0  # an in-flight spawn's volume is younger than this
    agent_user: str | None = "10001:10001"  # uid:gid agents run as; None: the image's user
    pull_timeout: float = 300.0  # seconds one pull may take in all
    pull_threads: int = 4
    max_pulls_per_owner: int = 1
    allow_private_registries: bool = False
    log_driver: str = "json-file"  # json-file or local, both rotated
    log_max_size: str = "10m"
    log_max_files: int = 3


def _translate(exc: Exception) -> OrchestratorError:
    """An engine or transport exception as one of ours; the message names no secret."""
    if isinstance(exc, OrchestratorError):
        return exc
    if isinstance(exc, requests.exceptions.Timeout):
        return OrchestratorUnavailable("the Docker engine did not answer in time")
    if isinstance(exc, requests.exceptions.ConnectionError | ConnectionError | FileNotFoundError):
        return OrchestratorUnavailable("the Docker engine is not reachable")
    if isinstance(exc, docker.errors.APIError):
        return EngineError(f"the Docker engine refused the request: {_explain(exc)}")
    if isinstance(exc, docker.errors.DockerException):
        # Raised for example when the API version cannot be fetched: the engine is down.
        return OrchestratorUnavailable("the Docker engine is not reachable")
    return EngineError(f"unexpected error talking to the Docker engine: {type(exc).__name__}")


def _explain(exc: docker.errors.APIError) -> str:
    return str(exc.explanation or exc)[:300]


class DockerOrchestrator(Orchestrator):
    """Agents as hardened containers on one Docker engine."""

    name = "docker"

    def __init__(self, config: DockerConfig) -> None:
        self._config = config
        self._executor = ThreadPoolExecutor(config.max_workers, thread_name_prefix="docker")
        # Plain log reads and follows on pools of their own: a read never waits behind follows.
        self._log_executor = ThreadPoolExecutor(config.max_log_streams, thread_name_prefix="logs")
        self._follow_executor = ThreadPoolExecutor(
            config.max_log_streams, thread_name_prefix="follow"
        )
        self._api: APIClient | None = None
        self._api_lock = threading.Lock()
        self._network_ids: dict[str, str] = {}  # owner network name -> id
        self._network_lock = threading.Lock()
        self._instance = L.instance_name(config.resource_prefix)
        # Agent id -> container id, learnt from lists, lookups and spawns. Only a hint of
        # which container to inspect: what the inspect says is checked, and a miss falls
        # back to the label search, so a stale hint (or none, on another replica) is harmless.
        self._hints: dict[str, str] = {}
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
                base_url = self._config.base_url or _default_base_url()
                api = APIClient(
                    base_url=base_url,
                    version="auto",
                    timeout=self._config.timeout,
                    # A pooled connection per engine thread, so that none is opened per call.
                    max_pool_size=self._config.max_workers,
                )
                if base_url.startswith("unix://"):
                    # No proxy or .netrc applies to a unix socket: skip requests' scan of the
                    # environment for them on every call.
                    api.trust_env = False
                self._api = api
            return self._api

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await in_thread(self._executor, _translate, fn, *args, **kwargs)

    def _containers(self, terms: Mapping[str, str], **extra: list[str]) -> list[Summary]:
        filters: dict[str, list[str]] = {"label": [f"{k}={v}" for k, v in terms.items()]}
        filters.update(extra)
        api = self._client()
        # The request the SDK's containers() sends, parsed by pydantic-core instead of
        # json.loads: twice as fast on the megabytes of thousands of containers (35 against
        # 64 ms for 1000).
        response = api.get(
            f"{api.base_url}/v{api.api_version}/containers/json",
            params={"all": "1", "filters": json.dumps(filters)},
            timeout=self._config.timeout,
        )
        try:
            response.raise_for_status()
        except requests.exceptions.HTTPError as exc:
            docker.errors.create_api_error_from_http_exception(exc)  # raises APIError
        result: list[Summary] = pydantic_core.from_json(response.content)
        return [c for c in result if L.is_managed(c.get("Labels") or {})]

    def _learn(self, summaries: Iterable[Summary]) -> None:
        if len(self._hints) > _MAX_HINTS:
            self._hints.clear()
        for summary in summaries:
            self._hints[summary["Labels"][L.ID]] = summary["Id"]

    def _inspect(self, container_id: str) -> Summary | None:
        """A list entry for one container, from one inspect (constant time, unlike a label
        search, which the engine answers by scanning every container); None unless it is
        one of this instance's agents."""
        try:
            info = self._client().inspect_container(container_id)
        except docker.errors.NotFound:
            return None
        labels = (info.get("Config") or {}).get("Labels") or {}
        if not L.is_managed(labels) or labels.get(L.INSTANCE) != self._instance:
            return None
        state, code, _, _ = inspect_facts(info)
        return {
            "Id": info["Id"],
            "Labels": labels,
            "State": state,
            "Status": f"Exited ({code})" if state == "exited" else "",
            "NetworkSettings": info.get("NetworkSettings") or {},
            _INSPECTED: info,
        }

    def _find(self, ref: str, owner: str | None) -> Summary:
        """A ref shaped like an id is looked up as an id and nothing else: it never falls
        back to a name (names cannot take that shape; see ``AgentSpec``)."""
        by_id = is_agent_id(ref)
        if by_id and (hinted := self._hints.get(ref)) is not None:
            summary = self._inspect(hinted)
            if summary is not None and summary["Labels"].get(L.ID) == ref:
                if owner is None or summary["Labels"].get(L.OWNER) == owner:
                    return summary
            else:
                self._hints.pop(ref, None)
        if by_id:
            terms = L.selector(instance=self._instance, owner=owner, agent_id=ref)
        else:
            terms = L.selector(instance=self._instance, owner=owner, name=ref)
        found = self._containers(terms)
        if not found:
            raise AgentNotFound(f"no agent {ref!r}")
        if len(found) > 1:
            raise AmbiguousAgentName(
                f"{len(found)} agents of different owners are named {ref!r}: use the id or owner="
            )
        self._learn(found)
        return found[0]

    def _refresh(self, container_id: str) -> Summary:
        found = self._inspect(container_id)
        if found is None:
            raise AgentNotFound("the agent was removed")
        self._learn([found])
        return found

    def _agent(
        self, summary: Summary, *, inspect: bool, leases: Mapping[str, datetime] | None = None
    ) -> Agent:
        """The public view; inspects only when the summary cannot tell why it stopped, and
        reads leases only for an agent that has a TTL."""
        labels = summary["Labels"]
        if leases is None and L.EXPIRES_AT in labels:
            leases = read_leases(self._client(), self._instance, labels[L.ID])
        state = str(summary.get("State", ""))
        code = exit_code_from_summary(str(summary.get("Status", "")))
        if inspect and state in ("exited", "dead") and code != 0:
            info = summary.get(_INSPECTED)
            try:
                info = info or self._client().inspect_container(summary["Id"])
            except docker.errors.NotFound as exc:
                raise AgentNotFound("the agent was removed") from exc
            state, code, oom, error = inspect_facts(info)
            status, detail = container_status(state, code, oom_killed=oom, error=error)
        else:
            status, detail = container_status(state, code)
        return L.agent_from_labels(
            labels,
            status=status,
            detail=detail,
            orchestrator=self.name,
            expires_at=deadline_of(labels, leases or {}),
            address=_address(summary, labels),
        )

    # -- the contract ---------------------------------------------------------------------

    async def ping(self) -> None:
        await self._run(lambda: self._client().ping())

    async def list(
        self, *, owner: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[Agent]:
        def work() -> list[Agent]:
            summaries = self._containers(
                L.selector(instance=self._instance, owner=owner, user_labels=labels)
            )
            self._learn(summaries)
            with_ttl = any(L.EXPIRES_AT in s["Labels"] for s in summaries)
            leases = read_leases(self._client(), self._instance) if with_ttl else {}
            return [self._agent(s, inspect=False, leases=leases) for s in summaries]

        return await self._run(work)

    async def get(self, ref: str, *, owner: str | None = None) -> Agent:
        return await self._run(lambda: self._agent(self._find(ref, owner), inspect=True))

    async def start(self, ref: str, *, owner: str | None = None) -> Agent:
        return await self._lifecycle(
            ref, owner, lambda api, cid: api.start(cid), _RUNNING, expiry=True
        )

    async def stop(
        self, ref: str, *, owner: str | None = None, timeout: int | None = None
    ) -> Agent:
        grace = self._config.stop_timeout if timeout is None else timeout
        container_id = (await self._run(self._find, ref, owner))["Id"]
        await self._stop(container_id, grace)
        return await self._run(lambda: self._agent(self._refresh(container_id), inspect=True))

    async def restart(
        self, ref: str, *, owner: str | None = None, timeout: int | None = None
    ) -> Agent:
        grace = self._config.stop_timeout if timeout is None else timeout

        def find() -> str:
            summary = self._find(ref, owner)
            self._refuse_if_expired(summary)
            return str(summary["Id"])

        container_id = await self._run(find)
        await self._stop(container_id, grace)
        return await self._run(self._act, container_id, lambda api, cid: api.start(cid), _RUNNING)

    async def _stop(self, container_id: str, grace: int) -> None:
        """Stop a container; its grace period is waited out on the event loop, not a thread."""
        await stop_container(self._run_on_agent, self._client, container_id, grace)

    async def _run_on_agent(self, fn: Callable[[], T]) -> T:
        """``_run`` for calls on one agent's container: its absence means the agent is gone."""

        def call() -> T:
            try:
                return fn()
            except docker.errors.NotFound as exc:
                raise AgentNotFound("the agent was removed") from exc

        return await self._run(call)

    async def _lifecycle(
        self,
        ref: str,
        owner: str | None,
        action: Callable[[APIClient, str], object],
        settled: frozenset[str],
        *,
        expiry: bool = False,
    ) -> Agent:
        def work() -> Agent:
            summary = self._find(ref, owner)
            if expiry:
                self._refuse_if_expired(summary)
            return self._act(summary["Id"], action, settled)

        return await self._run(work)

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
                if now.get("State") in settled:
                    return self._agent(now, inspect=True)
                if attempt:
                    raise
        return self._agent(self._refresh(container_id), inspect=True)

    def _refuse_if_expired(self, summary: Summary) -> None:
        labels = summary["Labels"]
        if L.EXPIRES_AT not in labels:
            return
        deadline = deadline_of(labels, read_leases(self._client(), self._instance, labels[L.ID]))
        if deadline is not None and deadline <= datetime.now(UTC):
            raise AgentExpired(
                f"the agent's TTL passed at {deadline.isoformat()}: renew it before starting it"
            )

    async def renew(self, ref: str, *, owner: str | None = None, ttl_seconds: int) -> Agent:
        def work() -> Agent:
            summary = self._find(ref, owner)
            labels = summary["Labels"]
            if L.EXPIRES_AT not in labels:
                raise InvalidSpec(
                    "this agent was spawned without ttl_seconds, so it has no TTL to renew"
                )
            now = datetime.now(UTC)
            write_lease(
                self._client(),
                prefix=self._config.resource_prefix,
                instance=self._instance,
                agent_id=labels[L.ID],
                owner=labels[L.OWNER],
                now=now,
                deadline=now + timedelta(seconds=ttl_seconds),
            )
            return self._agent(self._refresh(summary["Id"]), inspect=True)

        return await self._run(work)

    async def sweep(self, *, now: datetime | None = None) -> SweepReport:
        def work() -> tuple[list[tuple[str, str]], SweepReport]:
            moment = now or datetime.now(UTC)
            api = self._client()
            containers = self._containers(L.selector(instance=self._instance))
            leases = read_leases(api, self._instance)
            report = SweepReport()
            expired: list[tuple[str, str]] = []
            for summary in containers:
                deadline = deadline_of(summary["Labels"], leases)
                if deadline is None or deadline > moment:
                    continue
                if summary.get("State") in ("running", "restarting"):
                    expired.append((summary["Labels"][L.ID], summary["Id"]))
            live = {summary["Labels"][L.ID] for summary in containers}
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
                busy_owners={summary["Labels"][L.OWNER] for summary in containers},
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

        async def stop_one(agent_id: str, container_id: str) -> None:
            async with slots:
                with contextlib.suppress(AgentNotFound):
                    await self._stop(container_id, self._config.stop_timeout)
                    report.stopped.append(agent_id)

        await asyncio.gather(*(stop_one(*pair) for pair in expired))
        return report

    async def delete(self, ref: str, *, owner: str | None = None) -> None:
        def work() -> None:
            summary = self._find(ref, owner)
            api = self._client()
            try:
                api.remove_container(summary["Id"], force=True)
            except docker.errors.NotFound as exc:
                raise AgentNotFound(f"no agent {ref!r}") from exc
            self._hints.pop(summary["Labels"][L.ID], None)
            self._remove_volumes(summary["Labels"][L.ID])

        await self._run(work)

    def _remove_volumes(self, agent_id: str) -> None:
        api = self._client()
        terms = [f"{L.INSTANCE}={self._instance}", f"{L.ID}={agent_id}"]
        answer = api.volumes(filters={"label": terms}) or {}
        for volume in answer.get("Volumes") or []:
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_volume(volume["Name"], force=True)

    async def logs(
        self, ref: str, *, owner: str | None = None, options: LogOptions
    ) -> AsyncIterator[bytes]:
        def open_stream() -> Iterator[bytes]:
            container_id = self._find(ref, owner)["Id"]
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
        return self._drain(stream, self._follow_executor if options.follow else self._log_executor)

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
            await loop.run_in_executor(None, _release, stream)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._log_executor.shutdown(wait=False, cancel_futures=True)
        self._follow_executor.shutdown(wait=False, cancel_futures=True)
        self._pulls.close()
        with self._api_lock:
            if self._api is not None:
                self._api.close()
                self._api = None

    # -- spawn ----------------------------------------------------------------------------

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
        stored = StoredSpec.from_spec(spec, resources)
        idem = L.idempotency_hash(owner, idempotency_key) if idempotency_key else None

        def prepare() -> tuple[Agent | None, bool]:
            """The agent a replayed key made, or None and whether the image is here."""
            if idem is not None and (earlier := self._replay(owner, idem, stored)) is not None:
                return earlier, True
            counted = ceilings is not None and ceilings.active
            if max_agents is not None or counted:
                mine = self._containers(L.selector(instance=self._instance, owner=owner))
                if max_agents is not None and len(mine) >= max_agents:
                    raise AgentQuotaExceeded(
                        f"owner {owner!r} already has {len(mine)} agents, the most allowed"
                    )
                if ceilings is not None and counted:
                    ceilings.check(owner, (_resources_of(c) for c in mine), resources)
            return None, self._image_present(spec.image)

        earlier, present = await self._run(prepare)
        if earlier is not None:
            return earlier
        if not present:
            if not self._config.pull_missing_images:
                raise ImageNotFound(f"image {spec.image!r} is not present on the engine")
            await self._pull(spec.image, owner)
            await self._run(
                lambda: _check_named(self._client().inspect_image(spec.image), spec.image)
            )

        def create() -> Agent:
            try:
                container_id = self._create(spec, stored, owner, resources, idem)
            except AgentConflict:
                # Two calls with one Idempotency-Key raced: the other one created it.
                if idem is not None and (earlier := self._replay(owner, idem, stored)):
                    return earlier
                raise
            return self._agent(self._refresh(container_id), inspect=True)

        return await self._run(create)

    async def _pull(self, image: str, owner: str) -> None:
        try:
            await self._pulls.pull(image, owner=owner)
        except OrchestratorError:
            raise
        except Exception as exc:
            raise _translate(exc) from exc

    def _replay(self, owner: str, idem: str, stored: StoredSpec) -> Agent | None:
        found = self._containers(L.selector(instance=self._instance, owner=owner, idempotency=idem))
        if not found:
            return None
        if StoredSpec.model_validate_json(found[0]["Labels"][L.SPEC]) != stored:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request"
            )
        if found[0].get("State") == "created":
            # The first call was cut off between create and start: finish its work. A start
            # that fails (e.g. its network was swept away meanwhile) leaves an unfinished
            # spawn, never an answer: it is removed and the caller spawns anew.
            labels = found[0]["Labels"]
            try:
                if stored.workspace:
                    self._own_workspace(
                        found[0]["Id"], image=stored.image, agent_id=labels[L.ID], owner=owner
                    )
                self._client().start(found[0]["Id"])
            except docker.errors.APIError:
                self._forget_network(owner)
                with contextlib.suppress(docker.errors.NotFound):
                    self._client().remove_container(found[0]["Id"], force=True)
                self._hints.pop(labels[L.ID], None)
                self._remove_volumes(labels[L.ID])
                return None
            return self._agent(self._refresh(found[0]["Id"]), inspect=True)
        return self._agent(found[0], inspect=True)

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
                raise InvalidSpec(f"image {image!r} is not usable: {_explain(exc)}") from exc
            raise

    def _create(
        self,
        spec: AgentSpec,
        stored: StoredSpec,
        owner: str,
        resources: Resources,
        idem: str | None,
    ) -> str:
        api, config = self._client(), self._config
        agent_id = uuid.uuid4().hex
        created_at = datetime.now(UTC)
        ttl = spec.ttl_seconds
        labels = L.system_labels(
            instance=self._instance,
            agent_id=agent_id,
            owner=owner,
            created_at=created_at,
            spec=stored,
            idempotency=idem,
            expires_at=created_at + timedelta(seconds=ttl) if ttl else None,
        )
        volume = volume_name(config.resource_prefix, agent_id) if spec.workspace else None

        def describe(network_id: str) -> dict[str, Any]:
            return build_container(
                spec,
                labels=labels,
                owner=owner,
                resources=resources,
                prefix=config.resource_prefix,
                network=network_id,
                volume=volume,
                workspace_path=config.workspace_path,
                read_only_rootfs=config.read_only_rootfs,
                user=config.agent_user,
                log=LogRotation(config.log_driver, config.log_max_size, config.log_max_files),
            ).kwargs()

        prepare: Callable[[str], None] | None = None
        if volume is not None and config.agent_user and not config.read_only_rootfs:

            def prepare(container_id: str) -> None:
                self._own_workspace(container_id, image=spec.image, agent_id=agent_id, owner=owner)

        try:
            if volume is not None:
                api.create_volume(
                    volume,
                    labels=L.owned_labels(
                        instance=self._instance, agent_id=agent_id, owner=owner, kind="workspace"
                    ),
                )
                if config.read_only_rootfs:
                    self._own_workspace(None, image=spec.image, agent_id=agent_id, owner=owner)
            return self._create_and_start(
                describe, owner if spec.network != "none" else None, prepare=prepare
            )
        except BaseException as exc:
            self._remove_volumes(agent_id)
            if isinstance(exc, docker.errors.APIError) and exc.status_code == 409:
                raise AgentConflict(f"an agent named {spec.name!r} already exists") from exc
            if isinstance(exc, docker.errors.ImageNotFound):
                raise ImageNotFound(f"image {spec.image!r} is not present on the engine") from exc
            if isinstance(exc, docker.errors.APIError) and exc.is_client_error():
                raise SpawnFailed(f"the engine refused the agent: {_explain(exc)}") from exc
            raise

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
                instance=self._instance, agent_id=agent_id, owner=owner, kind="init"
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
                raise SpawnFailed(f"the agent could not start: {_explain(exc)}") from exc
        raise SpawnFailed("the agents' network disappeared twice while spawning")


def _address(summary: Summary, labels: Mapping[str, str]) -> tuple[str, str] | None:
    """The network the agent is on, as the engine says, and its DNS name there."""
    networks = (summary.get("NetworkSettings") or {}).get("Networks") or {}
    names = [name for name in networks if name not in ("none", "host", "bridge")]
    if len(names) != 1:
        return None
    return names[0], labels[L.NAME]


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


def _resources_of(summary: Summary) -> Resources:
    """The resources an agent was spawned with, from its spec label."""
    spec = pydantic_core.from_json(summary["Labels"][L.SPEC])
    return Resources.model_validate(spec["resources"])


def _lost_network(exc: docker.errors.APIError) -> bool:
    explanation = str(exc.explanation or "")
    return "network" in explanation and "not found" in explanation


def _release(stream: Iterator[bytes]) -> None:
    """Close a log stream and the connection under it, whether or not it was read to the end."""
    with contextlib.suppress(Exception):
        stream.close()  # type: ignore[attr-defined]
    response = getattr(stream, "_response", None)
    if response is not None:
        with contextlib.suppress(Exception):
            response.close()


def _default_base_url() -> str:
    return os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"

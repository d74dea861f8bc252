"""``KubernetesOrchestrator``: agents as Deployments in one namespace, on the official client.

One agent is one Deployment (one replica) plus what it owns: a Secret for its secret values,
a PersistentVolumeClaim for its workspace, a NetworkPolicy (the baseline of ``network.py``,
or deny-all for ``"network": "none"``); each carries an owner reference to the Deployment,
and is also deleted explicitly. Everything is read back from labels and annotations
(``orchestrators.labels``): no state of its own.

``"network": "none"`` is refused (``PolicyViolation``) unless the operator declares that a
policy engine enforces NetworkPolicies: without one the API would report an isolation that
does not exist.

The service never reads a Secret: the Role grants create, patch (a rotation sets and
removes values by name) and delete only. Secrets left by
an interrupted spawn go with their Deployment (the garbage collector follows the owner
reference); the sweep lists Deployments, claims and policies, never Secrets.

The client is synchronous, so every call runs in a bounded thread pool (log streams in a
pool of their own) and waits (a pod becoming ready, pods going away) sleep on the event
loop between short calls. Lists cost two calls (Deployments, then pods, by label selector)
whatever the number of agents.

The lookup, spawn and TTL flow is ``orchestrators.skeleton``'s; this module supplies its
hooks. What is sent is built in ``objects`` and ``network``, the calls and the translation of
errors are in ``api``, the status table in ``status``, the sweep of leftovers in ``orphans``.

The workspace claim is never mounted by two pods: ``ReadWriteOncePod`` where the server
has it, and always the ``Recreate`` strategy (see ``objects``).

A change (``update``, ``rollback``) is one conditional patch of the Deployment (see
``changes``): labels, the restart policy and the TTL change live; anything in the pod
template (image, command, env, resources, secrets) rolls out a new pod, since a running pod
cannot be resized before Kubernetes 1.33. Usage comes from ``metrics.k8s.io`` (``usage``).

Lifecycle: stop scales to zero and waits until no pod is left; start scales to one and
waits (``spawn_wait_seconds``) for the pod to be ready; restart rolls out a new pod (what
``kubectl rollout restart`` does); the TTL deadline is a label the renewal rewrites (labels
can change on Kubernetes: no lease objects).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from .. import labels as L
from ..changes import Plan
from ..config import KubernetesConfig
from ..errors import (
    AgentConflict,
    AgentNotFound,
    ChangeInFlight,
    ImageNotFound,
    InvalidSpec,
    NotSupported,
    OrchestratorError,
    PolicyViolation,
    RevisionMismatch,
    SpawnFailed,
)
from ..models import (
    Agent,
    AgentSpec,
    AgentStats,
    AgentStatus,
    ChangeResult,
    LogOptions,
    Resources,
    Revision,
    StoppedBy,
    StoredSpec,
    SweepReport,
)
from ..skeleton import AgentBackend, ChangeAsk, expires_in, resources_of
from ..types import JSON
from ..watch import Observation, Snapshot
from .api import ApiAccess, KubeApi, api_message, label_selector, release, translate
from .changes import (
    CHANGING,
    change_patch,
    claim_patch,
    history_of,
    pod_revision,
    recorded,
    release_patch,
    secret_data_patch,
    undo_patch,
)
from .network import baseline_policy_name, build_baseline_policy
from .objects import (
    CONTAINER,
    RESTARTED_AT,
    SPAWNING,
    build_claim,
    build_deployment,
    build_network_policy,
    build_secret,
    claim_access_mode,
    claim_name,
    created_at,
    deadline_patch,
    deployment_name,
    dropped_pod_fields,
    is_label_value,
    network_policy_name,
    read_metadata,
    replicas_patch,
    restart_patch,
    secret_name,
)
from .orphans import remove_orphans
from .status import (
    IMAGE_PULL,
    Reading,
    agent_status,
    is_ready,
    live_pods,
    pod_failure,
    unfinished_pods,
)
from .usage import METRICS_GROUP, METRICS_VERSION, usage_of
from .watch import KubeWatch

__all__ = ["KubernetesConfig", "KubernetesOrchestrator"]

Settled = Callable[[JSON, list[JSON]], bool]
_IDENTITY = (L.OWNER, L.NAME, L.ID)
_CHUNK = 65536


def _name_of(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"]["name"])


def _annotation(obj: Mapping[str, Any], key: str) -> str | None:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(key)
    return str(value) if value is not None else None


def _stamp(pod: Mapping[str, Any]) -> str | None:
    return _annotation(pod, RESTARTED_AT)


_CHANGE_ATTEMPTS = 5


class _Moved(Exception):
    """The Deployment is no longer the version a change was planned from."""


@dataclass(frozen=True, slots=True)
class _Applied:
    """A change the API server accepted; ``rolled``: a new pod is rolling out."""

    agent_id: str
    revision: int
    rolled: bool
    changes: tuple[str, ...]
    image: str
    undo: JSON | None = None  # what puts the Deployment back if the new image cannot be pulled


class KubernetesOrchestrator(AgentBackend[JSON, KubernetesConfig]):
    """Agents as hardened Deployments in one namespace of one cluster."""

    name = "kubernetes"

    def __init__(self, config: KubernetesConfig) -> None:
        super().__init__(config, pool_name="kube")
        self._ns = config.kube_namespace
        self._prefix = config.resource_prefix
        self._kube = KubeApi(
            ApiAccess(
                kubeconfig=str(config.kubeconfig) if config.kubeconfig else None,
                context=config.kube_context,
                timeout=config.engine_timeout,
                retries=config.kube_retries,
                pool_size=config.engine_threads + 2 * config.max_log_streams,
            )
        )
        self._access_mode: str | None = None  # of workspace claims, decided on first use

        self._watcher = KubeWatch(
            self._kube,
            self._ns,
            L.selector(instance=self._instance),
            self._read,
            heartbeat=config.watch_heartbeat,
        )

    # -- the skeleton's hooks -------------------------------------------------------------

    def _translate(self, exc: Exception) -> OrchestratorError:
        return translate(exc)

    def _query(self, terms: Mapping[str, str]) -> list[JSON]:
        if not all(is_label_value(terms[key]) for key in _IDENTITY if key in terms):
            return []  # no label has that value: the API server would refuse the selector
        items = self._kube.list_items(self._kube.apps.list_namespaced_deployment, self._ns, terms)
        return [d for d in items if L.is_managed(self._labels(d))]

    def _labels(self, obj: JSON) -> dict[str, str]:
        return read_metadata(obj.get("metadata") or {})

    def _current_view(self, obj: JSON) -> Agent:
        return self._view(obj, self._pods_of(self._labels(obj)[L.ID]))

    def _deadline(self, obj: JSON) -> datetime | None:
        deadline = self._labels(obj).get(L.EXPIRES_AT)
        return L.parse_moment(deadline) if deadline else None

    def _write_deadline(self, obj: JSON, deadline: datetime) -> Agent:
        return self._current_view(self._patch(obj, deadline_patch(L.format_moment(deadline))))

    def _release(self) -> None:
        self._kube.close()

    # -- plumbing -------------------------------------------------------------------------

    def _pods(self, terms: Mapping[str, str]) -> list[JSON]:
        return self._kube.list_items(self._kube.core.list_namespaced_pod, self._ns, terms)

    def _pods_of(self, agent_id: str) -> list[JSON]:
        return self._pods(L.selector(instance=self._instance, agent_id=agent_id))

    def _state(self, agent_id: str) -> tuple[JSON, list[JSON]]:
        found = self._query(L.selector(instance=self._instance, agent_id=agent_id))
        if not found:
            raise AgentNotFound("the agent was removed")
        return found[0], self._pods_of(agent_id)

    def _view(self, deployment: JSON, pods: list[JSON]) -> Agent:
        """What a call answers: its read is also noted for the watch (read-your-writes)."""
        self._watcher.answered(self._labels(deployment)[L.ID], [deployment, *pods])
        return self._read(deployment, agent_status(deployment, pods))

    def _read(self, deployment: JSON, reading: Reading) -> Agent:
        """The public view of an agent whose status was read already."""
        return L.agent_from_labels(
            self._labels(deployment),
            status=reading.status,
            detail=reading.detail,
            orchestrator=self.name,
            expires_at=self._deadline(deployment),
            exit_code=reading.exit_code,
            started_at=reading.started_at,
            revision=L.revision_of(self._labels(deployment)),
        )

    def _patch(self, deployment: JSON, body: JSON) -> JSON:
        apps = self._kube.apps
        patched = self._kube.merge_patch(
            apps.patch_namespaced_deployment, _name_of(deployment), self._ns, body
        )
        if patched is None:
            raise AgentNotFound("the agent was removed")
        return patched

    def _claim_mode(self) -> str:
        """The access mode of workspace claims; for ``"auto"`` the server's version decides,
        asked once (a cluster upgrade is seen when the service restarts)."""
        if self._access_mode is None:
            setting = self._config.kube_workspace_access_mode
            version = self._kube.server_version() if setting == "auto" else None
            self._access_mode = claim_access_mode(setting, version)
        return self._access_mode

    def _delete_pods(self, pods: list[JSON], grace: int) -> None:
        for pod in pods:
            self._kube.delete(
                self._kube.core.delete_namespaced_pod,
                _name_of(pod),
                self._ns,
                grace_period_seconds=grace,
            )

    def _shorter_grace(self, timeout: int | None) -> int | None:
        """The grace to delete pods with when a call asks for less than the pod template's
        (the ReplicaSet already deletes them with that); a grace of 0 would force-delete the
        pod object while its container may still run, so 1 is the least."""
        if timeout is None:
            return None
        grace = max(1, timeout)
        return grace if grace < self._config.stop_timeout else None

    async def _settle(
        self, agent_id: str, until: Settled, timeout: float
    ) -> tuple[JSON, list[JSON]]:
        """Poll the agent until ``until`` holds or ``timeout`` seconds passed; its last state."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.1
        while True:
            deployment, pods = await self._run(self._state, agent_id)
            if until(deployment, pods) or loop.time() >= deadline:
                return deployment, pods
            await asyncio.sleep(delay)
            delay = min(1.0, delay * 1.5)

    # -- the contract ---------------------------------------------------------------------

    async def ping(self) -> None:
        def work() -> None:
            # A read the Role allows: the server answers and the credentials are good.
            self._kube.call(
                self._kube.apps.list_namespaced_deployment,
                self._ns,
                limit=1,
                label_selector=f"{L.MANAGED_BY}={L.MANAGED_BY_VALUE}",
                idempotent=True,
            )

        await self._run(work)

    async def snapshot(self) -> Snapshot:
        return await self._run(self._watcher.snapshot)

    def watch(self, since: str | None = None) -> AsyncIterator[Observation]:
        return self._watcher.watch(since, self._run)

    async def list(
        self, *, owner: str | None = None, labels: Mapping[str, str] | None = None
    ) -> list[Agent]:
        if owner is not None and not is_label_value(owner):
            return []
        terms = L.selector(instance=self._instance, owner=owner, user_labels=labels)
        # User labels are on Deployments only (a relabel rolls out no pod): the pods are the
        # owner's, joined to the Deployments that matched. Both lists at once, each on an
        # engine thread: a list waits for the slower, not both.
        pod_terms = L.selector(instance=self._instance, owner=owner)
        deployments, pods = await asyncio.gather(
            self._run(self._query, terms), self._run(self._pods, pod_terms)
        )

        def views() -> list[Agent]:
            by_agent: dict[str, list[JSON]] = {}
            for pod in pods:
                agent_id = ((pod.get("metadata") or {}).get("labels") or {}).get(L.ID)
                by_agent.setdefault(str(agent_id), []).append(pod)
            return [self._view(d, by_agent.get(self._labels(d)[L.ID], [])) for d in deployments]

        return await self._run(views)

    async def start(self, ref: str, *, owner: str | None = None) -> Agent:
        def scale_up() -> str:
            deployment = self._find(ref, owner)
            self._refuse_if_expired(deployment)
            if not deployment["spec"].get("replicas"):
                self._patch(deployment, replicas_patch(1, started_at=datetime.now(UTC)))
            return self._labels(deployment)[L.ID]

        agent_id = await self._run(scale_up)
        return self._view(*await self._settle(agent_id, _started, self._config.spawn_wait_seconds))

    async def stop(
        self, ref: str, *, owner: str | None = None, timeout: int | None = None
    ) -> Agent:
        grace = self._config.stop_timeout if timeout is None else timeout
        shorter = self._shorter_grace(timeout)

        def scale_down() -> str:
            deployment = self._find(ref, owner)
            agent_id = self._labels(deployment)[L.ID]
            if deployment["spec"].get("replicas"):
                self._patch(deployment, replicas_patch(0, stopped_by=StoppedBy.CALL.value))
            if shorter is not None:
                self._delete_pods(live_pods(self._pods_of(agent_id)), shorter)
            return agent_id

        agent_id = await self._run(scale_down)
        # The pods get their grace, then the call's own timeout to be reported gone.
        wait = max(grace, 1) + self._config.engine_timeout
        return self._view(
            *await self._settle(agent_id, lambda _, pods: not unfinished_pods(pods), wait)
        )

    async def restart(
        self, ref: str, *, owner: str | None = None, timeout: int | None = None
    ) -> Agent:
        grace = self._config.stop_timeout if timeout is None else timeout
        shorter = self._shorter_grace(timeout)
        now = datetime.now(UTC)
        stamp = now.isoformat()

        def roll() -> str:
            deployment = self._find(ref, owner)
            self._refuse_if_expired(deployment)
            agent_id = self._labels(deployment)[L.ID]
            self._patch(deployment, restart_patch(stamp, started_at=now))
            if shorter is not None:
                old = [p for p in live_pods(self._pods_of(agent_id)) if _stamp(p) != stamp]
                self._delete_pods(old, shorter)
            return agent_id

        def restarted(deployment: JSON, pods: list[JSON]) -> bool:
            new = [p for p in live_pods(pods) if _stamp(p) == stamp]
            return bool(new) and _started(deployment, new)

        agent_id = await self._run(roll)
        wait = max(grace, 1) + self._config.spawn_wait_seconds
        return self._view(*await self._settle(agent_id, restarted, wait))

    async def sweep(self, *, now: datetime | None = None) -> SweepReport:
        def work() -> SweepReport:
            moment = now or datetime.now(UTC)
            grace = timedelta(seconds=self._config.orphan_grace_seconds)
            report = SweepReport()
            live: set[str] = set()
            for deployment in self._query(L.selector(instance=self._instance)):
                labels = self._labels(deployment)
                annotations = deployment["metadata"].get("annotations") or {}
                created = created_at(deployment)
                if SPAWNING in annotations and created is not None and moment - created > grace:
                    # Left by a spawn that was interrupted before it scaled the agent up.
                    self._remove(deployment)
                    report.removed.append(_name_of(deployment))
                    continue
                live.add(labels[L.ID])
                if self._abandoned(deployment, moment):
                    # A change cut off after its claim: the agent stays at its revision.
                    with contextlib.suppress(_Moved, AgentNotFound):
                        self._conditional(deployment, release_patch(deployment))
                deadline = self._deadline(deployment)
                if deadline is None or deadline > moment:
                    continue
                if deployment["spec"].get("replicas"):
                    with contextlib.suppress(AgentNotFound):
                        self._patch(deployment, replicas_patch(0, stopped_by=StoppedBy.TTL.value))
                        report.stopped.append(labels[L.ID])
            report.removed.extend(
                remove_orphans(
                    self._kube,
                    namespace=self._ns,
                    instance=self._instance,
                    live=live,
                    now=moment,
                    grace=grace,
                )
            )
            return report

        return await self._run(work)

    async def delete(self, ref: str, *, owner: str | None = None) -> None:
        def work() -> None:
            deployment = self._find(ref, owner)
            if not self._remove(deployment):
                raise AgentNotFound(f"no agent {ref!r}")

        await self._run(work)

    def _remove(self, deployment: JSON) -> bool:
        """Delete the Deployment (its ReplicaSets and pods follow in the background) and what
        it owns, explicitly; False if the Deployment was already gone."""
        labels = self._labels(deployment)
        agent_id = labels[L.ID]
        try:
            stored: StoredSpec | None = StoredSpec.model_validate_json(labels[L.SPEC])
        except ValueError:
            stored = None
        gone = self._kube.delete(
            self._kube.apps.delete_namespaced_deployment,
            _name_of(deployment),
            self._ns,
            propagation_policy="Background",
        )
        core, networking = self._kube.core, self._kube.networking
        baseline = self._config.kube_baseline_network_policy
        owned = [
            (stored is None or bool(stored.secret_names), core.delete_namespaced_secret,
             secret_name(self._prefix, agent_id)),
            (stored is None or stored.workspace, core.delete_namespaced_persistent_volume_claim,
             claim_name(self._prefix, agent_id)),
            (stored is None or stored.network == "none",
             networking.delete_namespaced_network_policy,
             network_policy_name(self._prefix, agent_id)),
            (stored is None or (stored.network != "none" and baseline),
             networking.delete_namespaced_network_policy,
             baseline_policy_name(self._prefix, agent_id)),
        ]  # fmt: skip
        for wanted, deleter, name in owned:
            if wanted:
                self._kube.delete(deleter, name, self._ns)
        return gone

    async def logs(
        self, ref: str, *, owner: str | None = None, options: LogOptions
    ) -> AsyncIterator[bytes]:
        def open_stream() -> urllib3.BaseHTTPResponse | None:
            deployment = self._find(ref, owner)
            pod = _current_pod(self._pods_of(self._labels(deployment)[L.ID]))
            if pod is None:
                return None  # stopped: its pod and its output are gone
            query: dict[str, Any] = {
                "container": CONTAINER,
                "follow": options.follow,
                "timestamps": options.timestamps,
            }
            if options.tail is not None:
                query["tail_lines"] = options.tail
            if options.since is not None:
                seconds = math.ceil((datetime.now(UTC) - options.since).total_seconds())
                if seconds <= 0:
                    return None  # nothing was written in the future
                query["since_seconds"] = seconds
            # A follower may be quiet for hours: only the connection has a timeout then.
            timeout = None if options.follow else self._kube.timeout
            try:
                return self._kube.stream(
                    self._kube.core.read_namespaced_pod_log,
                    _name_of(pod),
                    self._ns,
                    _request_timeout=timeout,
                    **query,
                )
            except ApiException as exc:
                if exc.status in (400, 404):
                    return None  # the container has not started yet, or the pod just went
                raise

        stream = await self._run(open_stream)
        return self._drain(stream, self._log_pool(options.follow))

    async def _drain(
        self, stream: urllib3.BaseHTTPResponse | None, pool: ThreadPoolExecutor
    ) -> AsyncIterator[bytes]:
        if stream is None:
            return
        loop = asyncio.get_running_loop()
        try:
            while True:
                try:
                    chunk = await loop.run_in_executor(pool, _read, stream)
                except Exception as exc:
                    raise translate(exc) from exc
                if not chunk:
                    return
                yield chunk
        finally:
            # Shutting the socket down unblocks the worker thread still reading it.
            await loop.run_in_executor(None, release, stream)

    # -- changes (see ``changes``) --------------------------------------------------------

    def _history(self, obj: JSON) -> Sequence[Revision]:
        schema = self._labels(obj)
        return history_of(schema, L.parse_moment(schema[L.CREATED_AT]))

    async def _change(self, ask: ChangeAsk) -> ChangeResult:
        applied = await self._run(self._plan_and_patch, ask)
        if applied.rolled:
            marker = str(applied.revision)

            def rolled_out(_: JSON, pods: list[JSON]) -> bool:
                new = [p for p in live_pods(pods) if _annotation(p, L.REVISION) == marker]
                return any(is_ready(p) or pod_failure(p) is not None for p in new)

            wait = max(self._config.stop_timeout, 1) + self._config.spawn_wait_seconds
            state = await self._settle(applied.agent_id, rolled_out, wait)
            new = [p for p in live_pods(state[1]) if _annotation(p, L.REVISION) == marker]
            failure = next(filter(None, (pod_failure(p) for p in new)), None)
            if failure is not None and failure.reason == IMAGE_PULL and applied.undo is not None:
                # As a spawn of that image would be refused: the change is undone.
                await self._run(self._patch, state[0], applied.undo)
                raise ImageNotFound(
                    f"image {applied.image!r} could not be pulled, the change was undone "
                    f"({failure.cause}): {failure.message}"[:400]
                )
        else:
            state = await self._run(self._state, applied.agent_id)
        return ChangeResult(
            agent=self._view(*state),
            revision=applied.revision,
            restarted=applied.rolled,
            changes=list(applied.changes),
        )

    def _plan_and_patch(self, ask: ChangeAsk) -> _Applied:
        """Plan from the Deployment as read and patch that version only. The controller's
        status writes and a stop or start move its ``resourceVersion`` too: then the change
        is planned again from what is there now, and refused only if the revision moved
        past the one the caller expected."""
        for _ in range(_CHANGE_ATTEMPTS):
            deployment = self._find(ask.ref, ask.owner)
            try:
                return self._change_once(deployment, ask)
            except _Moved:
                continue
        raise RevisionMismatch("the agent kept changing meanwhile: read it again and retry")

    def _change_once(self, deployment: JSON, ask: ChangeAsk) -> _Applied:
        schema = self._labels(deployment)
        revision = L.revision_of(schema)
        now = datetime.now(UTC)
        self._refuse_if_changing(deployment, now, ask.expected)
        created = L.parse_moment(schema[L.CREATED_AT])
        history = history_of(schema, created)
        current = StoredSpec.model_validate_json(schema[L.SPEC])
        plan = self._plan(deployment, ask, current, history, revision)
        agent_id, agent_owner = schema[L.ID], schema[L.OWNER]
        removed = sorted(set(current.secret_names) - set(plan.spec.secret_names))
        before = self._template(deployment, current, schema)
        after = self._template(deployment, plan.spec, schema)
        rolls = before != after or bool(plan.secrets)
        restarted = rolls and bool(deployment["spec"].get("replicas"))
        number = revision + 1
        entry = Revision(
            number=number,
            created_at=now,
            changes=list(plan.changes),
            restarted=restarted,
            spec=plan.spec,
        )
        deadline = self._deadline(deployment)
        if "ttl_seconds" in plan.changes and plan.spec.ttl_seconds:
            deadline = expires_in(plan.spec.ttl_seconds, now)
        new_schema = L.system_labels(
            instance=self._instance,
            agent_id=agent_id,
            owner=agent_owner,
            created_at=created,
            spec=plan.spec,
            idempotency=schema.get(L.IDEMPOTENCY_KEY),
            expires_at=deadline,
            revision=number,
        )
        new_schema[L.REVISIONS] = recorded(history, entry)
        template = pod_revision(after, number) if rolls else None
        image = plan.spec.image
        if not (plan.secrets or removed):
            patched = self._conditional(deployment, change_patch(deployment, new_schema, template))
            undo = None
            if restarted and "image" in plan.changes:
                undo = undo_patch(patched, schema, deployment["spec"]["template"])
            return _Applied(agent_id, number, restarted, plan.changes, image, undo)
        # The revision is claimed before the Secret changes, so that a writer that loses the
        # race has changed nothing; while the claim holds, no other change starts.
        stamp = now.isoformat()
        deployment = self._conditional(deployment, claim_patch(deployment, stamp))
        self._write_secrets(deployment, schema, plan, removed, bool(current.secret_names))
        for _ in range(_CHANGE_ATTEMPTS):
            try:
                self._conditional(deployment, change_patch(deployment, new_schema, template))
                # Not undone if its image cannot be pulled: the Secret's old values are gone.
                return _Applied(agent_id, number, restarted, plan.changes, image)
            except _Moved:
                deployment, _pods = self._state(agent_id)
                if _annotation(deployment, CHANGING) != stamp:
                    break
        raise RevisionMismatch("the agent was changed meanwhile: read it again and retry")

    def _refuse_if_changing(self, deployment: JSON, now: datetime, expected: int | None) -> None:
        """Another change is between its claim and its patch; a claim left by a service
        that died there is abandoned and may be overwritten."""
        if _annotation(deployment, CHANGING) is None or self._abandoned(deployment, now):
            return
        if expected is not None:
            raise RevisionMismatch("the agent is being changed to another revision")
        raise ChangeInFlight("another change of the agent is under way: retry once it is done")

    def _abandoned(self, deployment: JSON, now: datetime) -> bool:
        """A change's claim older than two calls' timeouts: its service died after it."""
        started = _annotation(deployment, CHANGING)
        if started is None:
            return False
        try:
            age = (now - datetime.fromisoformat(started)).total_seconds()
        except (ValueError, TypeError):
            return True
        return age > 2 * self._kube.timeout[1]

    def _template(self, deployment: JSON, spec: StoredSpec, schema: Mapping[str, str]) -> JSON:
        manifest = build_deployment(
            spec,
            labels=schema,
            name=_name_of(deployment),
            prefix=self._prefix,
            resources=spec.resources,
            settings=self._config,
        )
        template: JSON = manifest["spec"]["template"]
        return template

    def _conditional(self, deployment: JSON, body: JSON) -> JSON:
        """A patch applied only to the version of ``deployment`` that was read."""
        try:
            return self._patch(deployment, body)
        except ApiException as exc:
            if exc.status == 409:
                raise _Moved from exc
            if exc.status in (400, 422):
                raise InvalidSpec(f"the cluster refused the change: {api_message(exc)}") from exc
            raise

    def _write_secrets(
        self,
        deployment: JSON,
        schema: Mapping[str, str],
        plan: Plan,
        removed: Sequence[str],
        exists: bool,
    ) -> None:
        """Set, replace and remove values in the agent's Secret, which is never read; a
        refusal never quotes the server (its message could echo what was sent)."""
        core = self._kube.core
        name = secret_name(self._prefix, schema[L.ID])
        body = secret_data_patch(plan.secrets, removed)

        def patch() -> bool:
            return (
                self._kube.merge_patch(core.patch_namespaced_secret, name, self._ns, body)
                is not None
            )

        try:
            if exists and patch():
                return
            secret = build_secret(
                plan.secrets, prefix=self._prefix, deployment=deployment, labels=schema
            )
            try:
                self._kube.call(core.create_namespaced_secret, self._ns, secret, idempotent=False)
            except ApiException as exc:
                if exc.status != 409:
                    raise
                patch()  # left by an earlier change: its values are replaced all the same
        except ApiException as exc:
            if exc.status in (400, 422):
                raise InvalidSpec("the cluster refused the agent's secret values") from exc
            raise

    async def stats(self, ref: str, *, owner: str | None = None) -> AgentStats:
        def work() -> AgentStats:
            schema = self._labels(self._find(ref, owner))
            terms = L.selector(instance=self._instance, agent_id=schema[L.ID])
            try:
                answer = self._kube.call(
                    self._kube.custom.list_namespaced_custom_object,
                    METRICS_GROUP,
                    METRICS_VERSION,
                    self._ns,
                    "pods",
                    label_selector=label_selector(terms),
                    idempotent=True,
                )
            except ApiException as exc:
                if exc.status == 404:
                    raise NotSupported(
                        "this cluster serves no metrics API (metrics.k8s.io): the operator "
                        "can install metrics-server to see what agents use"
                    ) from exc
                raise
            return usage_of(
                answer.get("items") or [],
                memory_limit_bytes=resources_of(schema).memory_mb * 2**20,
                read_at=datetime.now(UTC),
            )

        return await self._run(work)

    # -- spawn ----------------------------------------------------------------------------

    def _admit(self, spec: AgentSpec) -> None:
        if spec.network == "none" and not self._config.kube_network_policy_enforced:
            raise PolicyViolation(
                '"network": "none" is not available on this cluster: the operator has not '
                "declared that a network policy engine enforces NetworkPolicies, so the "
                "isolation could not be guaranteed"
            )

    async def _finish(self, obj: JSON, spec: AgentSpec) -> Agent:
        """Wait (``spawn_wait_seconds``) for the pod to start; an agent that cannot start is
        removed and the spawn fails."""
        deployment = obj
        try:
            deployment, pods = await self._settle(
                self._labels(deployment)[L.ID], _started, self._config.spawn_wait_seconds
            )
        except AgentNotFound:
            raise SpawnFailed("the agent was removed while it started") from None
        except Exception:
            # The caller gets an error, so the agent must not stay (when the cluster lets us).
            with contextlib.suppress(Exception):
                await self._run(self._remove, deployment)
            raise
        failure = next(filter(None, (pod_failure(p) for p in live_pods(pods))), None)
        if failure is not None:
            await self._run(self._remove, deployment)
            cause, message = failure.cause, failure.message
            if failure.reason == IMAGE_PULL:
                raise ImageNotFound(
                    f"image {spec.image!r} could not be pulled ({cause}): {message}"[:400]
                )
            raise SpawnFailed(f"the agent could not start ({cause}): {message}"[:400])
        return self._view(deployment, pods)

    def _resume(self, obj: JSON, spec: AgentSpec) -> JSON | None:
        if SPAWNING in (obj["metadata"].get("annotations") or {}):
            # The first call was cut off before it scaled the agent up: finish its work.
            return self._complete(obj, spec)
        return obj

    def _create(
        self, spec: AgentSpec, owner: str, resources: Resources, labels: dict[str, str]
    ) -> JSON:
        manifest = build_deployment(
            spec,
            labels=labels,
            name=deployment_name(self._prefix, owner, spec.name),
            prefix=self._prefix,
            resources=resources,
            settings=self._config,
        )
        try:
            deployment = self._kube.call(
                self._kube.apps.create_namespaced_deployment, self._ns, manifest, idempotent=False
            )
        except ApiException as exc:
            if exc.status == 409:
                raise AgentConflict(f"an agent named {spec.name!r} already exists") from exc
            if exc.status in (400, 422):
                raise SpawnFailed(f"the cluster refused the agent: {api_message(exc)}") from exc
            raise
        dropped = dropped_pod_fields(manifest, deployment)
        if dropped:
            # The pod would run without the isolation the operator asked for.
            with contextlib.suppress(Exception):
                self._remove(deployment)
            raise SpawnFailed(
                f"the cluster does not support {' and '.join(dropped)}, which the operator's "
                "settings ask for (AGENT_API_KUBE_RUNTIME_CLASS, AGENT_API_KUBE_USER_NAMESPACES)"
            )
        try:
            return self._complete(deployment, spec)
        except BaseException:
            with contextlib.suppress(Exception):
                self._remove(deployment)
            raise

    def _complete(self, deployment: JSON, spec: AgentSpec) -> JSON:
        """Create what the Deployment refers to (already there is fine), then scale it up."""
        labels = self._labels(deployment)
        core, networking = self._kube.core, self._kube.networking
        owned: list[tuple[str, Callable[..., Any], JSON]] = []
        if spec.secrets:
            secret = build_secret(
                spec.secrets, prefix=self._prefix, deployment=deployment, labels=labels
            )
            owned.append(("secret", core.create_namespaced_secret, secret))
        if spec.workspace:
            claim = build_claim(
                prefix=self._prefix,
                deployment=deployment,
                labels=labels,
                size=self._config.kube_workspace_size,
                storage_class=self._config.kube_storage_class,
                access_mode=self._claim_mode(),
            )
            owned.append(("workspace claim", core.create_namespaced_persistent_volume_claim, claim))
        if spec.network == "none":
            policy = build_network_policy(prefix=self._prefix, deployment=deployment, labels=labels)
            owned.append(("network policy", networking.create_namespaced_network_policy, policy))
        elif self._config.kube_baseline_network_policy:
            policy = build_baseline_policy(
                prefix=self._prefix, deployment=deployment, labels=labels, settings=self._config
            )
            owned.append(("network policy", networking.create_namespaced_network_policy, policy))
        for what, creator, body in owned:
            try:
                self._kube.call(creator, self._ns, body, idempotent=False)
            except ApiException as exc:
                if exc.status == 409:
                    continue
                if exc.status in (400, 422):
                    # Not the server's message: for a secret it could quote what was sent.
                    raise SpawnFailed(f"the cluster refused the agent's {what}") from exc
                raise
        return self._patch(
            deployment, replicas_patch(1, spawned=True, started_at=datetime.now(UTC))
        )


def _started(deployment: JSON, pods: list[JSON]) -> bool:
    """Running, or in a state that waiting will not change."""
    return agent_status(deployment, pods).status in (
        AgentStatus.RUNNING,
        AgentStatus.FAILED,
        AgentStatus.UNKNOWN,
    )


def _current_pod(pods: Sequence[JSON]) -> JSON | None:
    """The pod whose output is the agent's: a ready one, else the newest live one, else the
    newest still terminating."""
    live = live_pods(pods)
    ready = [p for p in live if is_ready(p)]
    for group in (ready, live, pods):
        if group:
            return max(group, key=lambda p: created_at(p) or datetime.min.replace(tzinfo=UTC))
    return None


def _read(stream: urllib3.BaseHTTPResponse) -> bytes:
    """What has arrived (at least one byte), or b"" at the end; a chunk as soon as it comes."""
    return stream.read1(_CHUNK)

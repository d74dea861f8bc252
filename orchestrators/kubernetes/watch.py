"""The Kubernetes watch: this instance's Deployments and pods, listed, then watched.

``snapshot`` lists the Deployments and the pods of the instance's label selector (two
calls, whatever the number of agents) and keeps each list's ``resourceVersion``. ``watch``
follows both from there with the API server's watch (``?watch=1``, bookmarks on), applies
each change to ``AgentCache`` (the Deployments and pods by agent) and yields an
``Observation`` whenever an agent's view changes: its status, detail, exit code, restarts
or who stopped it, its creation and its deletion.

A token is the pair of resource versions the two watches reached, ``<deployments>.<pods>``:
each list or watch resumes from its own. Resuming from a token lists both kinds *as they
were then* (``resourceVersionMatch=Exact``), so the changes replayed from there are
observed against the state they were made to (a watch from the last snapshot's own
position starts from that snapshot's lists instead). The cache keeps what statuses and
views read of each object, not its pod template. The API server keeps a bounded history:
a token it no longer has (410 Gone, on the list or in the watch) raises ``WatchExpired``,
and so does a token that is not one of ours.

An observation's ``at`` is when it was applied, except for a change that a call of this
backend had already seen (its resource version is at most the newest the call read of that
agent): its ``at`` is just before that call's read, so the read model, which keeps what a
call answered over anything older, is not set back by a watch that lags behind the call.

A watch that the API server ends after its timeout is opened again from where it was; a
connection that fails ends the watch with ``OrchestratorUnavailable``, and so does an API
server that stops answering with the connections open: the streams are read through a
``Heartbeat``, which pings ``/version`` after ``heartbeat`` seconds of silence. Each watch holds two
threads of its own (the reads block) for as long as it is consumed, never the backend's
pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import urllib3
from kubernetes.client.exceptions import ApiException

from .. import labels as L
from ..errors import EngineError, WatchExpired
from ..models import Agent, AgentStatus, StoppedBy
from ..watch import Heartbeat, Observation, Snapshot
from .api import KubeApi, label_selector, release, translate
from .objects import STOPPED_BY, read_metadata
from .status import Reading, agent_status, is_ready, live_pods, restarts

__all__ = ["AgentCache", "KubeWatch", "Position"]

JSON = dict[str, Any]
Kind = Literal["deployment", "pod"]
View = Callable[[JSON, Reading], Agent]
Run = Callable[..., Any]
# The API server ends a watch after this long; it is opened again from where it was.
WATCH_SECONDS = 240
_GONE = 410


@dataclass(frozen=True, slots=True)
class Position:
    """Where each of the two watches is: a resource version of each list."""

    deployments: str
    pods: str

    @property
    def token(self) -> str:
        return f"{self.deployments}.{self.pods}"

    @classmethod
    def parse(cls, token: str) -> Position:
        deployments, dot, pods = token.partition(".")
        if not (dot and deployments.isdigit() and pods.isdigit()):
            raise WatchExpired("not a position of this Kubernetes backend: list again")
        return cls(deployments, pods)

    def at(self, kind: Kind, version: str) -> Position:
        if kind == "deployment":
            return Position(version, self.pods)
        return Position(self.deployments, version)


def _kept(obj: JSON) -> JSON:
    """What the cache keeps of an object: what statuses and views read. The pod template
    and the field-manager records are most of an object's size, and neither is read."""
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    kept: JSON = {"metadata": metadata, "status": obj.get("status") or {}}
    spec = obj.get("spec") or {}
    if "replicas" in spec:
        kept["spec"] = {"replicas": spec["replicas"]}
    return kept


def _agent_id(obj: Mapping[str, Any]) -> str | None:
    value = ((obj.get("metadata") or {}).get("labels") or {}).get(L.ID)
    return str(value) if value else None


def _version(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


class AgentCache:
    """The Deployments and pods of the instance by agent, and what was last reported of
    each agent: a change that does not change an agent's view observes nothing."""

    def __init__(self, view: View, answered: dict[str, tuple[int, datetime]] | None = None):
        self._view = view
        self._answered = {} if answered is None else answered
        self._deployments: dict[str, JSON] = {}
        self._pods: dict[str, dict[str, JSON]] = {}
        self._seen: dict[str, tuple[object, ...]] = {}
        self._ready: dict[str, str] = {}  # the agent's ready pod (its uid)
        self._replaced: dict[str, int] = {}  # pods that took over, restarts of pods gone

    def fill(self, deployments: Iterable[JSON], pods: Iterable[JSON]) -> None:
        """Start from two lists; nothing is observed."""
        self._deployments.clear()
        self._pods.clear()
        self._seen.clear()
        self._ready.clear()
        self._replaced.clear()
        for pod in pods:
            self._put_pod(pod)
        for deployment in deployments:
            agent_id = _agent_id(deployment)
            if agent_id is not None:
                self._deployments[agent_id] = _kept(deployment)
                self._seen[agent_id] = self._observe(agent_id, deployment)[1]

    def agents(self) -> list[Agent]:
        return [self._read(i, d)[0] for i, d in self._deployments.items()]

    def apply(
        self, kind: Kind, change: str, obj: JSON, *, at: datetime, token: str
    ) -> Observation | None:
        """Apply one watch event (ADDED, MODIFIED or DELETED); the agent's observation if
        its view changed."""
        agent_id = _agent_id(obj)
        if agent_id is None:
            return None
        if kind == "pod":
            if change == "DELETED":
                gone = self._pods.get(agent_id, {}).pop(str(obj["metadata"]["name"]), None)
                if agent_id in self._deployments:  # its restarts stay counted: the count
                    earlier = self._replaced.get(agent_id, 0)  # observed only rises
                    self._replaced[agent_id] = earlier + restarts([gone or obj])
            else:
                self._put_pod(obj)
        elif change == "DELETED":
            self._deployments.pop(agent_id, None)
            self._pods.pop(agent_id, None)
            self._answered.pop(agent_id, None)
            self._ready.pop(agent_id, None)
            self._replaced.pop(agent_id, None)
            if self._seen.pop(agent_id, None) is None:
                return None
            schema = read_metadata(obj.get("metadata") or {})  # labels: name and owner
            return Observation(
                agent_id=agent_id,
                name=schema.get(L.NAME, ""),
                owner=schema.get(L.OWNER, ""),
                status=None,
                at=at,
                token=token,
            )
        else:
            self._deployments[agent_id] = _kept(obj)
        deployment = self._deployments.get(agent_id)
        if deployment is None:  # its pods may come before it
            return None
        answered = self._answered.get(agent_id)
        if answered is not None and int(_version(obj) or 0) <= answered[0]:
            at = answered[1] - timedelta(microseconds=1)
        observation, signature = self._observe(agent_id, deployment, at=at, token=token)
        if self._seen.get(agent_id) == signature:
            return None
        self._seen[agent_id] = signature
        return observation

    def _put_pod(self, pod: JSON) -> None:
        agent_id = _agent_id(pod)
        if agent_id is not None:
            self._pods.setdefault(agent_id, {})[str(pod["metadata"]["name"])] = _kept(pod)

    def _read(self, agent_id: str, deployment: JSON) -> tuple[Agent, Reading, list[JSON]]:
        pods = list(self._pods.get(agent_id, {}).values())
        reading = agent_status(deployment, pods)
        return self._view(deployment, reading), reading, pods

    def _restarts(self, agent_id: str, deployment: JSON, pods: list[JSON]) -> int:
        """The agent's restarts so far: never fewer than an earlier observation said."""
        return restarts(pods) + self._replacements(agent_id, deployment, pods)

    def _replacements(self, agent_id: str, deployment: JSON, pods: list[JSON]) -> int:
        """How often a new pod took over from a ready one while the agent ran (a restart
        call rolls out a new pod; an evicted pod is replaced), plus the container restarts
        of the pods gone: restarts, as much as a container's own. A start after a stop is
        not one."""
        if not (deployment.get("spec") or {}).get("replicas"):
            self._ready.pop(agent_id, None)
            return self._replaced.get(agent_id, 0)
        ready = [p for p in live_pods(pods) if is_ready(p)]
        if ready:
            newest = max(ready, key=lambda p: str(p["metadata"].get("creationTimestamp") or ""))
            uid = str(newest["metadata"].get("uid") or newest["metadata"]["name"])
            previous = self._ready.get(agent_id)
            if previous is not None and previous != uid:
                self._replaced[agent_id] = self._replaced.get(agent_id, 0) + 1
            self._ready[agent_id] = uid
        return self._replaced.get(agent_id, 0)

    def _observe(
        self, agent_id: str, deployment: JSON, *, at: datetime | None = None, token: str = ""
    ) -> tuple[Observation, tuple[object, ...]]:
        agent, reading, pods = self._read(agent_id, deployment)
        stopped_by = None
        if reading.status is AgentStatus.STOPPED:
            value = ((deployment.get("metadata") or {}).get("annotations") or {}).get(STOPPED_BY)
            stopped_by = StoppedBy(value) if value in set(StoppedBy) else StoppedBy.ENGINE
        count = self._restarts(agent_id, deployment, pods)
        observation = Observation.of(
            agent,
            at=at or datetime.now(UTC),
            token=token,
            reason=reading.failure,
            stopped_by=stopped_by,
            restarts=count,
        )
        signature = (reading.status, reading.detail, reading.exit_code, count, stopped_by)
        return observation, signature


class _Stream:
    """One watch (Deployments or pods), read on a thread of its own into the event loop."""

    def __init__(
        self,
        kube: KubeApi,
        kind: Kind,
        lister: Callable[..., Any],
        namespace: str,
        selector: str,
        version: str,
        put: Callable[[object], None],
    ) -> None:
        self._kube, self.kind, self._lister = kube, kind, lister
        self._namespace, self._selector, self._version = namespace, selector, version
        self._put = put
        self._stopped = threading.Event()
        self._response: urllib3.BaseHTTPResponse | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"kube-watch-{kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        with self._lock:
            response = self._response
        if response is not None:
            release(response)

    def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                self._follow()
        except BaseException as exc:  # handed to the consumer, which raises it
            if not self._stopped.is_set():
                self._put(exc)

    def _follow(self) -> None:
        """One watch request, until the server ends it (then the caller opens another)."""
        try:
            response = self._kube.stream(
                self._lister,
                self._namespace,
                label_selector=self._selector,
                watch=True,
                resource_version=self._version,
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_SECONDS,
                _request_timeout=(self._kube.timeout[0], WATCH_SECONDS + self._kube.timeout[1]),
            )
        except ApiException as exc:
            if exc.status == _GONE:  # reopened from a version the server no longer has
                raise WatchExpired("the API server no longer has that history") from exc
            raise
        with self._lock:
            self._response = response
        if self._stopped.is_set():
            release(response)
            return
        try:
            for line in response:
                if self._stopped.is_set():
                    return
                if line.strip():
                    self._event(json.loads(line))
        finally:
            release(response)

    def _event(self, event: JSON) -> None:
        change, obj = str(event.get("type")), event.get("object") or {}
        if change == "ERROR":
            code = int(obj.get("code") or 0)
            message = str(obj.get("message") or "")[:200]
            if code == _GONE:
                raise WatchExpired(f"the API server no longer has that history ({message})")
            raise EngineError(f"the Kubernetes watch failed ({code}): {message}")
        self._version = _version(obj) or self._version
        self._put((self.kind, change, obj))


class KubeWatch:
    """Snapshots and watches of one instance's agents in one namespace."""

    def __init__(
        self,
        kube: KubeApi,
        namespace: str,
        terms: Mapping[str, str],
        view: View,
        *,
        heartbeat: float,
    ) -> None:
        self._kube, self._namespace, self._view = kube, namespace, view
        self._heartbeat = heartbeat
        self._selector = label_selector(terms)
        # Per agent: the newest resource version a call read of it, and when.
        self._answered: dict[str, tuple[int, datetime]] = {}
        # The last snapshot's cache, for the watch that starts from it (no second listing).
        self._snapshot: tuple[str, AgentCache] | None = None

    def answered(self, agent_id: str, objects: Iterable[Mapping[str, Any]]) -> None:
        """A call read these objects of ``agent_id`` (its Deployment and pods) and answers
        from them now (see the module)."""
        version = max((int(_version(o) or 0) for o in objects), default=0)
        previous = self._answered.get(agent_id)
        if previous is None or previous[0] <= version:
            self._answered[agent_id] = (version, datetime.now(UTC))

    def _list(self, kind: Kind, version: str | None = None) -> tuple[list[JSON], str]:
        lister = self._lister(kind)
        exact: dict[str, str] = {}
        if version is not None:
            exact = {"resource_version": version, "resource_version_match": "Exact"}
        try:
            answer = self._kube.call(
                lister, self._namespace, label_selector=self._selector, idempotent=True, **exact
            )
        except ApiException as exc:
            if exc.status == _GONE:
                raise WatchExpired("the API server no longer has that history") from exc
            raise
        items: list[JSON] = answer.get("items") or []
        return items, str((answer.get("metadata") or {}).get("resourceVersion") or "")

    def _lister(self, kind: Kind) -> Callable[..., Any]:
        if kind == "deployment":
            return self._kube.apps.list_namespaced_deployment
        return self._kube.core.list_namespaced_pod

    def lists(self, since: Position | None = None) -> tuple[AgentCache, Position]:
        """Both lists (now, or as they were at ``since``), in a cache, and their position."""
        deployments, d_version = self._list("deployment", since.deployments if since else None)
        pods, p_version = self._list("pod", since.pods if since else None)
        cache = AgentCache(self._view, self._answered)
        cache.fill(deployments, pods)
        return cache, since or Position(d_version, p_version)

    def snapshot(self) -> Snapshot:
        cache, position = self.lists()
        self._snapshot = (position.token, cache)
        return Snapshot(agents=cache.agents(), token=position.token)

    def _start(self, since: Position | None) -> tuple[AgentCache, Position]:
        """The cache to watch from: the last snapshot's when it is that position."""
        last, self._snapshot = self._snapshot, None
        if since is not None and last is not None and last[0] == since.token:
            return last[1], since
        return self.lists(since)

    async def watch(self, since: str | None, run: Run) -> AsyncIterator[Observation]:
        """The observations after ``since`` (None: from now); ``run`` runs the lists on the
        backend's pool."""
        start = Position.parse(since) if since is not None else None
        cache, position = await run(self._start, start)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()

        def put(item: object) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
                loop.call_soon_threadsafe(queue.put_nowait, item)

        kinds: tuple[tuple[Kind, str], ...] = (
            ("deployment", position.deployments),
            ("pod", position.pods),
        )
        streams = [
            _Stream(self._kube, kind, self._lister(kind), self._namespace, self._selector, v, put)
            for kind, v in kinds
        ]
        for stream in streams:
            stream.start()
        alive = Heartbeat(
            self._kube.ping_within, every=self._heartbeat, engine="the Kubernetes API server"
        )
        try:
            while True:
                item = await alive.next(queue)
                if isinstance(item, WatchExpired):
                    raise item
                if isinstance(item, BaseException):
                    raise translate(item) from item
                kind, change, obj = cast(tuple[Kind, str, JSON], item)
                version = _version(obj)
                if version:
                    position = position.at(kind, version)
                if change not in ("ADDED", "MODIFIED", "DELETED"):
                    continue  # a BOOKMARK moves the position only
                observation = cache.apply(
                    kind, change, obj, at=datetime.now(UTC), token=position.token
                )
                if observation is not None:
                    yield observation
        finally:
            alive.close()
            for stream in streams:
                stream.stop()

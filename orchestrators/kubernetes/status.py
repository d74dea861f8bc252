"""How a Deployment and its pods become the contract's status: the one place it is decided.

Rows are tried in order; the first that matches decides. A pod is *live* while it is
neither being deleted nor finished (phase ``Failed`` or ``Succeeded``): an evicted pod
stays in the API, finished, until the cluster's garbage collector removes it, and must not
make a stop wait for it. A container's *last run* is its ``state.terminated``, else its
``lastState.terminated`` (while it is not ready).

| the Deployment and its pods                                   | status     | reason            |
|---------------------------------------------------------------|------------|-------------------|
| carries the spawning mark                                     | pending    |                   |
| replicas 0 (pods may still be terminating)                    | stopped    |                   |
| a live pod is ready                                           | running    |                   |
| ImagePullBackOff, InvalidImageName, ErrImageNeverPull, or     | failed     | image_pull        |
| ErrImagePull saying not found / unauthorized / denied         |            |                   |
| CreateContainerConfigError, CreateContainerError,             | failed     | start_failed      |
| RunContainerError                                             |            |                   |
| a container's last run was OOMKilled                          | failed     | oom_killed (137)  |
| a last run exited non-zero (or CrashLoopBackOff, none known)  | failed     | crash_loop        |
| ReplicaFailure True, current (no pod could be created)        | failed     | replica_failure   |
| Progressing False, current (the progress deadline passed)     | failed     | progress_deadline |
| a live pod's node stopped reporting                           | unknown    | node_lost         |
| a container restarted (last run exited 0), not ready          | restarting | restarted         |
| no live pod, a finished one (evicted...): being replaced      | restarting | evicted,          |
|                                                               |            | pod_failed        |
| a live pod the scheduler cannot place                         | pending    | unschedulable     |
| ErrImagePull for another cause (a timeout): kubelet retries   | pending    | pulling           |
| anything else: no pod yet, starting                           | pending    |                   |

Why these choices:

* **A crash loop reads ``failed`` all through.** The kubelet cycles a crashing container
  through waiting (CrashLoopBackOff), running and terminated; reading each phase made the
  agent flap between ``failed`` and ``restarting`` at every back-off. The last run's exit code
  does not change within the cycle, so it decides: non-zero (or OOMKilled) is ``failed``
  until the container is ready again, zero is ``restarting`` (a Deployment restarts a
  process that ended; there is no ``exited`` on Kubernetes).
* **Only a pull that will not succeed fails an agent.** The first ``ErrImagePull`` is often
  a passing registry error that the kubelet retries; the agent is ``pending`` until the
  kubelet gives up for now (``ImagePullBackOff``) or the registry said the image does not
  exist or may not be read.
* **Stale Deployment conditions are ignored.** ``Progressing False`` or ``ReplicaFailure``
  count only when the controller has observed the Deployment's current generation and the
  condition was written after the agent was last started (the ``STARTED_AT`` annotation):
  the verdict of an earlier attempt must not fail a start at once.

The reason and the cluster's message go into ``detail`` as ``<reason>: <message>``;
``exit_code`` is the last run's where one is known.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from ..models import AgentStatus, FailureReason
from ..timestamps import parse_rfc3339
from ..types import JSONView
from .objects import SPAWNING, STARTED_AT

__all__ = [
    "IMAGE_PULL",
    "START_FAILED",
    "Failure",
    "Reading",
    "agent_status",
    "is_finished",
    "is_ready",
    "live_pods",
    "pod_failure",
    "restarts",
    "unfinished_pods",
]

P = TypeVar("P", bound=JSONView)

# Reasons (stable, snake_case): what ``Reading.reason`` and the detail's prefix say.
IMAGE_PULL = "image_pull"
START_FAILED = "start_failed"
OOM_KILLED = "oom_killed"
CRASH_LOOP = "crash_loop"
REPLICA_FAILURE = "replica_failure"
PROGRESS_DEADLINE = "progress_deadline"
NODE_LOST = "node_lost"
RESTARTED = "restarted"
EVICTED = "evicted"
POD_FAILED = "pod_failed"
UNSCHEDULABLE = "unschedulable"
PULLING = "pulling"

_PULL_GIVEN_UP = frozenset({"ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
_START_REASONS = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)
# What a registry answers when the image will not come however often the kubelet retries.
_PULL_REFUSED = re.compile(
    r"not found|manifest unknown|unauthorized|authentication required|denied|forbidden"
    r"|does not exist|\b40[134]\b",
    re.IGNORECASE,
)
_QUOTED = re.compile(r'"[^"]*"')
_FINISHED = frozenset({"Failed", "Succeeded"})
# The contract's failure reasons (the events' ``reason``) for the reasons above.
_FAILURE_REASONS = {
    IMAGE_PULL: FailureReason.IMAGE_PULL,
    START_FAILED: FailureReason.ERROR,
    OOM_KILLED: FailureReason.OOM_KILLED,
    CRASH_LOOP: FailureReason.CRASH_LOOP,
    REPLICA_FAILURE: FailureReason.ERROR,
    PROGRESS_DEADLINE: FailureReason.ERROR,
    EVICTED: FailureReason.EVICTED,
    POD_FAILED: FailureReason.ERROR,
    UNSCHEDULABLE: FailureReason.UNSCHEDULABLE,
}
_DETAIL_LIMIT = 300


@dataclass(frozen=True, slots=True)
class Reading:
    """An agent's status, why (``reason``, stable; ``detail``, for people) and, where a
    container's last run ended, its exit code."""

    status: AgentStatus
    detail: str | None = None
    reason: str | None = None
    exit_code: int | None = None
    started_at: datetime | None = None  # running: when its container's current run began

    @property
    def failure(self) -> FailureReason | None:
        """The contract's reason of a failure (or of an eviction or an unschedulable pod)."""
        return _FAILURE_REASONS.get(self.reason or "")


@dataclass(frozen=True, slots=True)
class Failure:
    """A container that will not start however long one waits: ``reason`` is
    ``IMAGE_PULL`` or ``START_FAILED``, ``cause`` the kubelet's reason."""

    reason: str
    cause: str
    message: str


def is_finished(pod: JSONView) -> bool:
    """Failed or Succeeded: nothing runs in it any more (an evicted pod, for one)."""
    return (pod.get("status") or {}).get("phase") in _FINISHED


def unfinished_pods(pods: Iterable[P]) -> list[P]:
    """The pods something may still run in: live, or terminating (a stop waits for these)."""
    return [p for p in pods if not is_finished(p)]


def live_pods(pods: Iterable[P]) -> list[P]:
    """The pods that run or will run: not being deleted, not finished."""
    return [
        p
        for p in pods
        if not (p.get("metadata") or {}).get("deletionTimestamp") and not is_finished(p)
    ]


def restarts(pods: Iterable[JSONView]) -> int:
    """How often the containers of these pods were restarted, in all."""
    return sum(int(c.get("restartCount") or 0) for pod in pods for c in _container_statuses(pod))


def run_started(pods: Iterable[JSONView]) -> datetime | None:
    """When the newest current run of a container of ``pods`` began (a restart of the
    container or a new pod begins a new one)."""
    moments = [
        moment
        for pod in pods
        for c in _container_statuses(pod)
        if (moment := parse_rfc3339(((c.get("state") or {}).get("running") or {}).get("startedAt")))
    ]
    return max(moments, default=None)


def _container_statuses(pod: JSONView) -> list[JSONView]:
    status = pod.get("status") or {}
    return list(status.get("containerStatuses") or [])


def is_ready(pod: JSONView) -> bool:
    """Running, not being deleted, and every container ready."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    statuses = _container_statuses(pod)
    phase = (pod.get("status") or {}).get("phase")
    return phase == "Running" and bool(statuses) and all(s.get("ready") for s in statuses)


def _waiting(container: JSONView) -> tuple[str, str]:
    waiting = (container.get("state") or {}).get("waiting") or {}
    return str(waiting.get("reason") or ""), str(waiting.get("message") or "")


def _pull_refused(message: str) -> bool:
    """The registry said no for good (the image reference itself is not read: a name such
    as ``team/unauthorized`` must not turn a timeout into a refusal)."""
    return bool(_PULL_REFUSED.search(_QUOTED.sub("", message)))


def pod_failure(pod: JSONView) -> Failure | None:
    """A container of ``pod`` that cannot start: an image that will not be pulled, or a
    container the runtime cannot create."""
    for container in _container_statuses(pod):
        cause, message = _waiting(container)
        if cause in _PULL_GIVEN_UP or (cause == "ErrImagePull" and _pull_refused(message)):
            return Failure(IMAGE_PULL, cause, message)
        if cause in _START_REASONS:
            return Failure(START_FAILED, cause, message)
    return None


def _last_run(container: JSONView) -> JSONView | None:
    terminated = (container.get("state") or {}).get("terminated")
    if terminated:
        found: JSONView = terminated
        return found
    if container.get("ready"):
        return None
    last: JSONView | None = (container.get("lastState") or {}).get("terminated")
    return last or None


def _crash(pod: JSONView) -> Reading | None:
    """A container whose last run was killed or failed, and that is not up again."""
    for container in _container_statuses(pod):
        if container.get("ready"):
            continue
        run = _last_run(container)
        cause, message = _waiting(container)
        restarts = int(container.get("restartCount") or 0)
        times = f"restarted {restarts} time(s)"
        if run is not None and run.get("reason") == "OOMKilled":
            killed = int(run.get("exitCode") or 137)
            text = f"out of memory (the memory limit was reached), exit code {killed}, {times}"
            return Reading(AgentStatus.FAILED, _detail(OOM_KILLED, text), OOM_KILLED, killed)
        code = None if run is None else int(run.get("exitCode") or 0)
        if code or (cause == "CrashLoopBackOff" and code is None):
            exited = f"exited with code {code}" if code is not None else "keeps exiting"
            text = f"{exited}, {times}" + (f" ({cause}: {message})" if message else "")
            return Reading(AgentStatus.FAILED, _detail(CRASH_LOOP, text), CRASH_LOOP, code)
    return None


def _restarted(pod: JSONView) -> Reading | None:
    for container in _container_statuses(pod):
        restarts = int(container.get("restartCount") or 0)
        run = _last_run(container)
        if container.get("ready") or not (restarts or run):
            continue
        code = None if run is None else int(run.get("exitCode") or 0)
        text = f"restarted {restarts} time(s), not ready yet"
        if code is not None:
            text = f"exited with code {code}, {text}"
        return Reading(AgentStatus.RESTARTING, _detail(RESTARTED, text), RESTARTED, code)
    return None


def _detail(reason: str, message: str) -> str:
    text = f"{reason}: {message}" if message else reason
    return text[:_DETAIL_LIMIT]


def _moment(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _current_condition(deployment: JSONView, kind: str) -> JSONView | None:
    """The Deployment's condition ``kind``, unless it may describe an earlier attempt: the
    controller has not seen the current generation, or the condition was last written
    before the agent was last started."""
    metadata = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    generation = metadata.get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and (observed is None or int(observed) < int(generation)):
        return None
    started = _moment((metadata.get("annotations") or {}).get(STARTED_AT))
    for condition in status.get("conditions") or []:
        if condition.get("type") != kind:
            continue
        written = _moment(condition.get("lastUpdateTime") or condition.get("lastTransitionTime"))
        if started is not None and written is not None and written < started:
            return None
        found: JSONView = condition
        return found
    return None


def _condition_failure(deployment: JSONView) -> Reading | None:
    for kind, bad, reason, default in (
        ("ReplicaFailure", "True", REPLICA_FAILURE, "ReplicaFailure"),
        ("Progressing", "False", PROGRESS_DEADLINE, "ProgressDeadlineExceeded"),
    ):
        condition = _current_condition(deployment, kind)
        if condition is not None and condition.get("status") == bad:
            cause = str(condition.get("reason") or default)
            message = str(condition.get("message") or "")
            text = f"{cause}: {message}" if message else cause
            return Reading(AgentStatus.FAILED, _detail(reason, text), reason)
    return None


def _unscheduled(pod: JSONView) -> str | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("message") or condition.get("reason") or "unschedulable")
    return None


def _replaced(pods: Sequence[JSONView]) -> Reading | None:
    """No live pod, and a finished one: the ReplicaSet is replacing it."""
    finished = [p for p in pods if is_finished(p)]
    if not finished:
        return None
    status = finished[-1].get("status") or {}
    cause = str(status.get("reason") or "")
    reason = EVICTED if cause == "Evicted" else POD_FAILED
    message = str(status.get("message") or f"the pod ended ({status.get('phase')})")
    return Reading(
        AgentStatus.RESTARTING, _detail(reason, f"{message}; a new pod replaces it"), reason
    )


def _pulling(pod: JSONView) -> Reading | None:
    for container in _container_statuses(pod):
        cause, message = _waiting(container)
        if cause == "ErrImagePull":
            text = f"the kubelet retries the pull ({cause}: {message})"
            return Reading(AgentStatus.PENDING, _detail(PULLING, text), PULLING)
    return None


def agent_status(deployment: JSONView, pods: Sequence[JSONView]) -> Reading:
    """The contract's status, its reason and the last exit code, from a Deployment and the
    pods it owns."""
    annotations = (deployment.get("metadata") or {}).get("annotations") or {}
    if SPAWNING in annotations:
        return Reading(AgentStatus.PENDING, "being created")
    running = unfinished_pods(pods)
    if not (deployment.get("spec") or {}).get("replicas"):
        if running:  # the ReplicaSet deletes them; they may not be marked yet
            return Reading(AgentStatus.STOPPED, f"stopping: {len(running)} pod(s) terminating")
        return Reading(AgentStatus.STOPPED, "scaled to 0")
    live = live_pods(pods)
    ready = [pod for pod in live if is_ready(pod)]
    if ready:
        return Reading(AgentStatus.RUNNING, started_at=run_started(ready))
    for pod in live:
        failure = pod_failure(pod)
        if failure is not None:
            text = f"{failure.cause}: {failure.message}" if failure.message else failure.cause
            return Reading(AgentStatus.FAILED, _detail(failure.reason, text), failure.reason)
    for pod in live:
        crash = _crash(pod)
        if crash is not None:
            return crash
    condition = _condition_failure(deployment)
    if condition is not None:
        return condition
    for pod in live:
        if (pod.get("status") or {}).get("phase") == "Unknown":
            return Reading(
                AgentStatus.UNKNOWN,
                _detail(NODE_LOST, "the pod's node stopped reporting"),
                NODE_LOST,
            )
    for pod in live:
        restarted = _restarted(pod)
        if restarted is not None:
            return restarted
    if not live:
        replaced = _replaced(pods)
        if replaced is not None:
            return replaced
    for pod in live:
        reason = _unscheduled(pod)
        if reason is not None:
            return Reading(AgentStatus.PENDING, _detail(UNSCHEDULABLE, reason), UNSCHEDULABLE)
    for pod in live:
        pulling = _pulling(pod)
        if pulling is not None:
            return pulling
    if not live:
        return Reading(AgentStatus.PENDING, "waiting for a pod")
    return Reading(AgentStatus.PENDING, "waiting for the pod to be ready")

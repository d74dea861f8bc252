"""How a Deployment and its pods become the contract's status: the one place it is decided.

Rows are tried in order; the first that matches decides. "Live" pods are those not being
deleted.

| Deployment                       | its pods                                        | status     |
|----------------------------------|-------------------------------------------------|------------|
| carries the spawning mark        |                                                 | pending    |
| replicas 0                       | none left, or some still terminating            | stopped    |
| replicas 1                       | a live pod is ready                             | running    |
| replicas 1                       | a live container waits with ErrImagePull,       | failed     |
|                                  | ImagePullBackOff, InvalidImageName,             |            |
|                                  | ErrImageNeverPull, CrashLoopBackOff,            |            |
|                                  | CreateContainerConfigError,                     |            |
|                                  | CreateContainerError or RunContainerError       |            |
| replicas 1                       | a live pod failed (phase Failed)                | failed     |
| replicas 1, ReplicaFailure True  | (no pod could be created: quota, admission)     | failed     |
| replicas 1, Progressing False    | (the progress deadline passed)                  | failed     |
| replicas 1                       | a live pod's node stopped reporting (Unknown)   | unknown    |
| replicas 1                       | a live container restarted and is not ready     | restarting |
| replicas 1                       | anything else: no pod yet, unschedulable,       | pending    |
|                                  | pulling, starting, not ready                    |            |

The reason and the cluster's message go into ``detail`` (for a pod the scheduler cannot
place, the scheduler's explanation). A Deployment restarts its pod whatever happens, so
there is no ``exited`` on Kubernetes: a process that ends is started again, and one that
keeps ending reads ``failed`` (CrashLoopBackOff).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypeVar

from ..models import AgentStatus
from ..types import JSONView
from .objects import SPAWNING

__all__ = [
    "IMAGE_REASONS",
    "START_REASONS",
    "agent_status",
    "is_ready",
    "live_pods",
    "pod_failure",
]

P = TypeVar("P", bound=JSONView)

IMAGE_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
START_REASONS = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)
_FAILING = IMAGE_REASONS | START_REASONS | {"CrashLoopBackOff"}
_DETAIL_LIMIT = 300


def live_pods(pods: Iterable[P]) -> list[P]:
    return [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]


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


def pod_failure(pod: JSONView) -> tuple[str, str] | None:
    """(reason, message) of a container waiting for a reason that will not go away alone."""
    for status in _container_statuses(pod):
        waiting = (status.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in _FAILING:
            return str(reason), str(waiting.get("message") or "")
    return None


def _detail(reason: str, message: str) -> str:
    text = f"{reason}: {message}" if message else reason
    return text[:_DETAIL_LIMIT]


def _condition(deployment: JSONView, kind: str) -> JSONView | None:
    for condition in (deployment.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            found: JSONView = condition
            return found
    return None


def _unscheduled(pod: JSONView) -> str | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return str(condition.get("message") or condition.get("reason") or "unschedulable")
    return None


def agent_status(deployment: JSONView, pods: Sequence[JSONView]) -> tuple[AgentStatus, str | None]:
    """The contract's status and a short reason, from a Deployment and the pods it owns."""
    annotations = (deployment.get("metadata") or {}).get("annotations") or {}
    if SPAWNING in annotations:
        return AgentStatus.PENDING, "being created"
    if not (deployment.get("spec") or {}).get("replicas"):
        if pods:  # the ReplicaSet deletes them; they may not be marked yet
            return AgentStatus.STOPPED, f"stopping: {len(pods)} pod(s) terminating"
        return AgentStatus.STOPPED, "scaled to 0"
    live = live_pods(pods)
    if any(is_ready(pod) for pod in live):
        return AgentStatus.RUNNING, None
    for pod in live:
        failure = pod_failure(pod)
        if failure is not None:
            return AgentStatus.FAILED, _detail(*failure)
    for pod in live:
        status = pod.get("status") or {}
        if status.get("phase") == "Failed":
            return AgentStatus.FAILED, _detail(
                str(status.get("reason") or "pod failed"), str(status.get("message") or "")
            )
    replica_failure = _condition(deployment, "ReplicaFailure")
    if replica_failure is not None and replica_failure.get("status") == "True":
        return AgentStatus.FAILED, _detail(
            str(replica_failure.get("reason") or "ReplicaFailure"),
            str(replica_failure.get("message") or ""),
        )
    progressing = _condition(deployment, "Progressing")
    if progressing is not None and progressing.get("status") == "False":
        return AgentStatus.FAILED, _detail(
            str(progressing.get("reason") or "ProgressDeadlineExceeded"),
            str(progressing.get("message") or ""),
        )
    for pod in live:
        if (pod.get("status") or {}).get("phase") == "Unknown":
            return AgentStatus.UNKNOWN, "the pod's node stopped reporting"
    for pod in live:
        restarts = max(
            (int(s.get("restartCount") or 0) for s in _container_statuses(pod)), default=0
        )
        if restarts:
            return AgentStatus.RESTARTING, f"restarted {restarts} time(s), not ready yet"
    for pod in live:
        reason = _unscheduled(pod)
        if reason is not None:
            return AgentStatus.PENDING, _detail("Unschedulable", reason)
    if not live:
        return AgentStatus.PENDING, "waiting for a pod"
    return AgentStatus.PENDING, "waiting for the pod to be ready"

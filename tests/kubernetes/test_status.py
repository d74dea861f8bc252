"""The one mapping from a Deployment and its pods to the contract's status (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrators.kubernetes.objects import SPAWNING
from orchestrators.kubernetes.status import agent_status, is_ready, live_pods, pod_failure
from orchestrators.models import AgentStatus

JSON = dict[str, Any]


def deployment(replicas: int = 1, *, spawning: bool = False, **conditions: tuple[str, str]) -> JSON:
    annotations = {SPAWNING: "true"} if spawning else {}
    return {
        "metadata": {"name": "d", "annotations": annotations},
        "spec": {"replicas": replicas},
        "status": {
            "conditions": [
                {"type": kind, "status": status, "reason": reason, "message": f"{kind} says so"}
                for kind, (status, reason) in conditions.items()
            ]
        },
    }


def pod(
    phase: str = "Running",
    *,
    ready: bool = True,
    waiting: str | None = None,
    restarts: int = 0,
    deleting: bool = False,
    unscheduled: str | None = None,
) -> JSON:
    state: JSON = {"running": {}} if waiting is None else {"waiting": {"reason": waiting}}
    if waiting is not None:
        state["waiting"]["message"] = f"{waiting} happened"
    conditions = []
    if unscheduled is not None:
        conditions.append({"type": "PodScheduled", "status": "False", "message": unscheduled})
    metadata: JSON = {"name": "p"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-20T10:00:00Z"
    return {
        "metadata": metadata,
        "status": {
            "phase": phase,
            "conditions": conditions,
            "containerStatuses": [
                {"name": "agent", "ready": ready, "restartCount": restarts, "state": state}
            ],
        },
    }


@pytest.mark.parametrize(
    ("dep", "pods", "status", "detail"),
    [
        (deployment(spawning=True), [], AgentStatus.PENDING, "being created"),
        (deployment(0), [], AgentStatus.STOPPED, "scaled to 0"),
        (
            deployment(0),
            [pod(deleting=True)],
            AgentStatus.STOPPED,
            "stopping: 1 pod(s) terminating",
        ),
        (deployment(0), [pod()], AgentStatus.STOPPED, "stopping: 1 pod(s) terminating"),
        (deployment(), [pod()], AgentStatus.RUNNING, None),
        (
            deployment(),
            [pod(deleting=True), pod("Pending", ready=False)],
            AgentStatus.PENDING,
            "waiting for the pod to be ready",
        ),
        (
            deployment(),
            [pod("Pending", ready=False, waiting="ErrImagePull")],
            AgentStatus.FAILED,
            "ErrImagePull: ErrImagePull happened",
        ),
        (
            deployment(),
            [pod("Pending", ready=False, waiting="ImagePullBackOff")],
            AgentStatus.FAILED,
            "ImagePullBackOff: ImagePullBackOff happened",
        ),
        (
            deployment(),
            [pod(ready=False, waiting="CrashLoopBackOff", restarts=5)],
            AgentStatus.FAILED,
            "CrashLoopBackOff: CrashLoopBackOff happened",
        ),
        (
            deployment(),
            [pod("Pending", ready=False, waiting="CreateContainerConfigError")],
            AgentStatus.FAILED,
            "CreateContainerConfigError: CreateContainerConfigError happened",
        ),
        (
            deployment(),
            [pod("Failed", ready=False)],
            AgentStatus.FAILED,
            "pod failed",
        ),
        (
            deployment(ReplicaFailure=("True", "FailedCreate")),
            [],
            AgentStatus.FAILED,
            "FailedCreate: ReplicaFailure says so",
        ),
        (
            deployment(Progressing=("False", "ProgressDeadlineExceeded")),
            [],
            AgentStatus.FAILED,
            "ProgressDeadlineExceeded: Progressing says so",
        ),
        (deployment(), [pod("Unknown", ready=False)], AgentStatus.UNKNOWN, None),
        (
            deployment(),
            [pod(ready=False, restarts=2)],
            AgentStatus.RESTARTING,
            "restarted 2 time(s), not ready yet",
        ),
        (
            deployment(),
            [pod("Pending", ready=False, unscheduled="0/3 nodes are available")],
            AgentStatus.PENDING,
            "Unschedulable: 0/3 nodes are available",
        ),
        (deployment(), [], AgentStatus.PENDING, "waiting for a pod"),
        (
            deployment(),
            [pod("Pending", ready=False, waiting="ContainerCreating")],
            AgentStatus.PENDING,
            "waiting for the pod to be ready",
        ),
    ],
)
def test_status_table(dep: JSON, pods: list[JSON], status: AgentStatus, detail: str | None) -> None:
    got_status, got_detail = agent_status(dep, pods)
    assert got_status is status
    if status is not AgentStatus.UNKNOWN:
        assert got_detail == detail


def test_a_ready_pod_wins_over_a_failing_one() -> None:
    pods = [pod(), pod("Pending", ready=False, waiting="ErrImagePull")]
    assert agent_status(deployment(), pods) == (AgentStatus.RUNNING, None)


def test_pod_helpers() -> None:
    assert is_ready(pod())
    assert not is_ready(pod(deleting=True))
    assert not is_ready(pod(ready=False))
    assert not is_ready({"metadata": {}, "status": {"phase": "Running"}})
    assert live_pods([pod(deleting=True), pod()]) == [pod()]
    assert pod_failure(pod()) is None
    assert pod_failure(pod(waiting="ContainerCreating")) is None
    assert pod_failure(pod(waiting="InvalidImageName")) == (
        "InvalidImageName",
        "InvalidImageName happened",
    )


def test_details_are_short() -> None:
    long = pod("Pending", ready=False, waiting="ErrImagePull")
    long["status"]["containerStatuses"][0]["state"]["waiting"]["message"] = "x" * 5000
    _, detail = agent_status(deployment(), [long])
    assert detail is not None
    assert len(detail) <= 300

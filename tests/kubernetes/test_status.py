"""The one mapping from a Deployment and its pods to the contract's status (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrators.kubernetes.objects import SPAWNING, STARTED_AT
from orchestrators.kubernetes.status import (
    Failure,
    Reading,
    agent_status,
    is_ready,
    live_pods,
    pod_failure,
    unfinished_pods,
)
from orchestrators.models import AgentStatus

JSON = dict[str, Any]
NOT_FOUND = 'failed to pull image "registry.example/x:1": not found'
TIMEOUT = 'failed to pull image "team/unauthorized:1": dial tcp: i/o timeout'


def deployment(
    replicas: int = 1,
    *,
    spawning: bool = False,
    generation: int = 2,
    observed: int = 2,
    started_at: str | None = None,
    written: str = "2026-11-20T10:00:00Z",
    **conditions: tuple[str, str],
) -> JSON:
    annotations = {SPAWNING: "true"} if spawning else {}
    if started_at is not None:
        annotations[STARTED_AT] = started_at
    return {
        "metadata": {"name": "d", "annotations": annotations, "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "conditions": [
                {
                    "type": kind,
                    "status": status,
                    "reason": reason,
                    "message": f"{kind} says so",
                    "lastUpdateTime": written,
                }
                for kind, (status, reason) in conditions.items()
            ],
        },
    }


def pod(
    phase: str = "Running",
    *,
    ready: bool = True,
    waiting: str | None = None,
    message: str | None = None,
    restarts: int = 0,
    last: JSON | None = None,
    terminated: JSON | None = None,
    deleting: bool = False,
    unscheduled: str | None = None,
    reason: str | None = None,
) -> JSON:
    state: JSON = {"running": {}}
    if waiting is not None:
        state = {"waiting": {"reason": waiting, "message": message or f"{waiting} happened"}}
    if terminated is not None:
        state = {"terminated": terminated}
    conditions = []
    if unscheduled is not None:
        conditions.append({"type": "PodScheduled", "status": "False", "message": unscheduled})
    metadata: JSON = {"name": "p"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-11-20T10:00:00Z"
    container: JSON = {"name": "agent", "ready": ready, "restartCount": restarts, "state": state}
    if last is not None:
        container["lastState"] = {"terminated": last}
    status: JSON = {"phase": phase, "conditions": conditions, "containerStatuses": [container]}
    if reason is not None:
        status |= {"reason": reason, "message": f"The node was low on resource: memory ({reason})"}
    return {"metadata": metadata, "status": status}


OOM = {"exitCode": 137, "reason": "OOMKilled"}
CRASH = {"exitCode": 1, "reason": "Error"}
CLEAN = {"exitCode": 0, "reason": "Completed"}
EVICTED = pod("Failed", ready=False, reason="Evicted")


@pytest.mark.parametrize(
    ("dep", "pods", "expected"),
    [
        (deployment(spawning=True), [], Reading(AgentStatus.PENDING, "being created")),
        (deployment(0), [], Reading(AgentStatus.STOPPED, "scaled to 0")),
        (
            deployment(0),
            [pod(deleting=True)],
            Reading(AgentStatus.STOPPED, "stopping: 1 pod(s) terminating"),
        ),
        (
            deployment(0),
            [pod()],
            Reading(AgentStatus.STOPPED, "stopping: 1 pod(s) terminating"),
        ),
        # An evicted pod stays in the API, finished: nothing is left to stop.
        (deployment(0), [EVICTED], Reading(AgentStatus.STOPPED, "scaled to 0")),
        (deployment(), [pod()], Reading(AgentStatus.RUNNING)),
        # The evicted pod's replacement decides.
        (deployment(), [EVICTED, pod()], Reading(AgentStatus.RUNNING)),
        (
            deployment(),
            [EVICTED],
            Reading(
                AgentStatus.RESTARTING,
                "evicted: The node was low on resource: memory (Evicted); a new pod replaces it",
                "evicted",
            ),
        ),
        (
            deployment(),
            [pod("Failed", ready=False)],
            Reading(
                AgentStatus.RESTARTING,
                "pod_failed: the pod ended (Failed); a new pod replaces it",
                "pod_failed",
            ),
        ),
        (
            deployment(),
            [pod(deleting=True), pod("Pending", ready=False)],
            Reading(AgentStatus.PENDING, "waiting for the pod to be ready"),
        ),
        (
            deployment(),
            [pod("Pending", ready=False, waiting="ErrImagePull", message=NOT_FOUND)],
            Reading(AgentStatus.FAILED, f"image_pull: ErrImagePull: {NOT_FOUND}", "image_pull"),
        ),
        # The first ErrImagePull of a passing registry error: the kubelet retries.
        (
            deployment(),
            [pod("Pending", ready=False, waiting="ErrImagePull", message=TIMEOUT)],
            Reading(
                AgentStatus.PENDING,
                f"pulling: the kubelet retries the pull (ErrImagePull: {TIMEOUT})",
                "pulling",
            ),
        ),
        (
            deployment(),
            [pod("Pending", ready=False, waiting="ImagePullBackOff", message=TIMEOUT)],
            Reading(AgentStatus.FAILED, f"image_pull: ImagePullBackOff: {TIMEOUT}", "image_pull"),
        ),
        (
            deployment(),
            [pod("Pending", ready=False, waiting="CreateContainerConfigError")],
            Reading(
                AgentStatus.FAILED,
                "start_failed: CreateContainerConfigError: CreateContainerConfigError happened",
                "start_failed",
            ),
        ),
        (
            deployment(),
            [pod(ready=False, waiting="CrashLoopBackOff", restarts=2, last=OOM)],
            Reading(
                AgentStatus.FAILED,
                "oom_killed: out of memory (the memory limit was reached), exit code 137, "
                "restarted 2 time(s)",
                "oom_killed",
                137,
            ),
        ),
        (
            deployment(),
            [pod(ready=False, terminated=OOM)],
            Reading(
                AgentStatus.FAILED,
                "oom_killed: out of memory (the memory limit was reached), exit code 137, "
                "restarted 0 time(s)",
                "oom_killed",
                137,
            ),
        ),
        (
            deployment(),
            [pod(ready=False, waiting="CrashLoopBackOff", restarts=5, last=CRASH)],
            Reading(
                AgentStatus.FAILED,
                "crash_loop: exited with code 1, restarted 5 time(s) "
                "(CrashLoopBackOff: CrashLoopBackOff happened)",
                "crash_loop",
                1,
            ),
        ),
        (
            deployment(),
            [pod(ready=False, waiting="CrashLoopBackOff", restarts=5)],
            Reading(
                AgentStatus.FAILED,
                "crash_loop: keeps exiting, restarted 5 time(s) "
                "(CrashLoopBackOff: CrashLoopBackOff happened)",
                "crash_loop",
            ),
        ),
        (
            deployment(),
            [pod(ready=False, restarts=2, last=CLEAN)],
            Reading(
                AgentStatus.RESTARTING,
                "restarted: exited with code 0, restarted 2 time(s), not ready yet",
                "restarted",
                0,
            ),
        ),
        (
            deployment(),
            [pod(ready=False, restarts=2)],
            Reading(
                AgentStatus.RESTARTING, "restarted: restarted 2 time(s), not ready yet", "restarted"
            ),
        ),
        (
            deployment(ReplicaFailure=("True", "FailedCreate")),
            [],
            Reading(
                AgentStatus.FAILED,
                "replica_failure: FailedCreate: ReplicaFailure says so",
                "replica_failure",
            ),
        ),
        (
            deployment(Progressing=("False", "ProgressDeadlineExceeded")),
            [],
            Reading(
                AgentStatus.FAILED,
                "progress_deadline: ProgressDeadlineExceeded: Progressing says so",
                "progress_deadline",
            ),
        ),
        # Conditions of an earlier attempt: not observed yet, or written before the start.
        (
            deployment(observed=1, Progressing=("False", "ProgressDeadlineExceeded")),
            [],
            Reading(AgentStatus.PENDING, "waiting for a pod"),
        ),
        (
            deployment(
                started_at="2026-11-20T10:00:01Z",
                Progressing=("False", "ProgressDeadlineExceeded"),
            ),
            [],
            Reading(AgentStatus.PENDING, "waiting for a pod"),
        ),
        (
            deployment(started_at="2026-11-20T10:00:00Z", ReplicaFailure=("True", "FailedCreate")),
            [],
            Reading(
                AgentStatus.FAILED,
                "replica_failure: FailedCreate: ReplicaFailure says so",
                "replica_failure",
            ),
        ),
        (
            deployment(),
            [pod("Unknown", ready=False)],
            Reading(
                AgentStatus.UNKNOWN, "node_lost: the pod's node stopped reporting", "node_lost"
            ),
        ),
        (
            deployment(),
            [pod("Pending", ready=False, unscheduled="0/3 nodes are available")],
            Reading(AgentStatus.PENDING, "unschedulable: 0/3 nodes are available", "unschedulable"),
        ),
        (deployment(), [], Reading(AgentStatus.PENDING, "waiting for a pod")),
        (
            deployment(),
            [pod("Pending", ready=False, waiting="ContainerCreating")],
            Reading(AgentStatus.PENDING, "waiting for the pod to be ready"),
        ),
    ],
)
def test_status_table(dep: JSON, pods: list[JSON], expected: Reading) -> None:
    assert agent_status(dep, pods) == expected


def test_a_crash_loop_reads_failed_through_its_whole_cycle() -> None:
    """Back-off, running again (not ready yet), exited again: one status, one reason."""
    cycle = [
        pod(ready=False, waiting="CrashLoopBackOff", restarts=3, last=CRASH),
        pod(ready=False, restarts=4, last=CRASH),
        pod(ready=False, restarts=4, terminated=CRASH),
        pod(ready=False, waiting="CrashLoopBackOff", restarts=4, last=CRASH),
    ]
    readings = {(r.status, r.reason) for r in (agent_status(deployment(), [p]) for p in cycle)}
    assert readings == {(AgentStatus.FAILED, "crash_loop")}


def test_a_ready_pod_wins_over_a_failing_one() -> None:
    pods = [pod(), pod("Pending", ready=False, waiting="ImagePullBackOff")]
    assert agent_status(deployment(), pods) == Reading(AgentStatus.RUNNING)


def test_a_pod_that_came_back_from_a_crash_is_running() -> None:
    assert agent_status(deployment(), [pod(restarts=3, last=OOM)]) == Reading(AgentStatus.RUNNING)


def test_pod_helpers() -> None:
    assert is_ready(pod())
    assert not is_ready(pod(deleting=True))
    assert not is_ready(pod(ready=False))
    assert not is_ready({"metadata": {}, "status": {"phase": "Running"}})
    assert live_pods([pod(deleting=True), EVICTED, pod()]) == [pod()]
    assert unfinished_pods([pod(deleting=True), EVICTED]) == [pod(deleting=True)]
    assert pod_failure(pod()) is None
    assert pod_failure(pod(waiting="ContainerCreating")) is None
    assert pod_failure(pod(waiting="CrashLoopBackOff", last=CRASH)) is None
    assert pod_failure(pod(waiting="ErrImagePull", message=TIMEOUT)) is None
    assert pod_failure(pod(waiting="InvalidImageName")) == Failure(
        "image_pull", "InvalidImageName", "InvalidImageName happened"
    )


@pytest.mark.parametrize(
    ("message", "final"),
    [
        (NOT_FOUND, True),
        (
            "rpc error: pull access denied, repository does not exist or may require authorization",
            True,
        ),
        ("unauthorized: authentication required", True),
        ("manifest unknown: manifest unknown", True),
        ('failed to resolve "x": unexpected status code 403 Forbidden', True),
        ("dial tcp 10.0.0.1:443: i/o timeout", False),
        ("received unexpected HTTP status: 503 Service Unavailable", False),
        ("net/http: TLS handshake timeout", False),
        # The reference is not read: a name that says "denied" is not the registry's answer.
        ('failed to pull image "team/denied-not-found:1": context deadline exceeded', False),
    ],
)
def test_which_pull_errors_are_final(message: str, final: bool) -> None:
    failing = pod("Pending", ready=False, waiting="ErrImagePull", message=message)
    assert (pod_failure(failing) is not None) is final


def test_details_are_short() -> None:
    long = pod("Pending", ready=False, waiting="ErrImagePull", message="not found " + "x" * 5000)
    detail = agent_status(deployment(), [long]).detail
    assert detail is not None
    assert len(detail) <= 300


def test_a_running_agent_says_when_its_current_run_began() -> None:
    earlier, later = pod(), pod()
    earlier["status"]["containerStatuses"][0]["state"] = {
        "running": {"startedAt": "2026-11-20T10:00:00Z"}
    }
    later["status"]["containerStatuses"][0]["state"] = {
        "running": {"startedAt": "2026-11-20T11:30:00Z"}
    }
    reading = agent_status(deployment(), [earlier, later])
    assert reading.status is AgentStatus.RUNNING
    assert reading.started_at is not None
    assert reading.started_at.isoformat() == "2026-11-20T11:30:00+00:00"
    assert agent_status(deployment(0), [later]).started_at is None

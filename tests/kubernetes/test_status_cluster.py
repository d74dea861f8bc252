"""Statuses as the real API server and controllers show them (pods reported by the fake kubelet)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from kubernetes import client

from orchestrators.kubernetes import KubernetesOrchestrator
from orchestrators.models import AgentStatus
from testenv.backends import SMALL
from testenv.kube_env import KubeTestEnv
from testenv.kube_fixture import kubernetes_orchestrator, wait_until

from .helpers import kubelet, pod_names, sleeper

pytestmark = [pytest.mark.anyio, pytest.mark.kubernetes]


async def test_an_oom_killed_agent_reads_failed_with_the_reason_and_exit_code(
    kube_backend: KubernetesOrchestrator,
    kube_env: KubeTestEnv,
    kube_api: client.ApiClient,
    kube_namespace: str,
) -> None:
    agent = await kube_backend.spawn(sleeper("aptest-oom"), owner="alice", resources=SMALL)
    assert agent.status is AgentStatus.RUNNING
    (pod,) = pod_names(kube_api, kube_namespace, agent.id)
    kubelet(kube_env).oom_kill(kube_namespace, pod)

    got = await kube_backend.get(agent.id, owner="alice")
    assert got.status is AgentStatus.FAILED
    assert got.detail is not None
    assert got.detail.startswith("oom_killed: out of memory")
    assert "exit code 137" in got.detail
    listed = await kube_backend.list(owner="alice")
    assert [(a.status, a.detail) for a in listed] == [(got.status, got.detail)]


async def test_an_evicted_pod_is_replaced_and_does_not_hold_a_stop(
    kube_backend: KubernetesOrchestrator,
    kube_env: KubeTestEnv,
    kube_api: client.ApiClient,
    kube_namespace: str,
) -> None:
    agent = await kube_backend.spawn(sleeper("aptest-evicted"), owner="alice", resources=SMALL)
    (pod,) = pod_names(kube_api, kube_namespace, agent.id)
    kubelet(kube_env).evict(kube_namespace, pod)
    # The ReplicaSet replaces the evicted pod; the evicted one stays in the API, finished.
    wait_until(
        "a replacement pod",
        lambda: len(pod_names(kube_api, kube_namespace, agent.id)) == 2,
    )
    running = await kube_backend.get(agent.id, owner="alice")
    for _ in range(50):
        if running.status is AgentStatus.RUNNING:
            break
        await anyio.sleep(0.2)
        running = await kube_backend.get(agent.id, owner="alice")
    assert running.status is AgentStatus.RUNNING

    stopped = await kube_backend.stop(agent.id, owner="alice", timeout=1)
    assert (stopped.status, stopped.detail) == (AgentStatus.STOPPED, "scaled to 0")
    left: Any = client.CoreV1Api(kube_api).read_namespaced_pod_status(pod, kube_namespace)
    assert pod_names(kube_api, kube_namespace, agent.id) == [pod]
    assert (left.status.phase, left.status.reason) == ("Failed", "Evicted")


async def test_a_passing_pull_error_leaves_the_agent_pending(
    kube_env: KubeTestEnv, kube_namespace: str
) -> None:
    """The first ErrImagePull of a registry timeout is retried by the kubelet: the spawn
    answers a pending agent after its wait, and does not remove it."""
    backend = kubernetes_orchestrator(kube_env.kubeconfig, kube_namespace, spawn_wait_seconds=2.0)
    try:
        agent = await backend.spawn(
            sleeper("aptest-flaky", "registry.example/flaky-registry:1"),
            owner="alice",
            resources=SMALL,
        )
        assert agent.status is AgentStatus.PENDING
        assert agent.detail is not None
        assert agent.detail.startswith("pulling: the kubelet retries the pull (ErrImagePull:")
        assert "i/o timeout" in agent.detail
        assert [a.id for a in await backend.list(owner="alice")] == [agent.id]
    finally:
        await backend.close()


async def test_a_running_agent_says_when_its_run_began_and_a_stopped_one_does_not(
    kube_backend: KubernetesOrchestrator,
) -> None:
    agent = await kube_backend.spawn(sleeper("aptest-since"), owner="alice", resources=SMALL)
    assert agent.status is AgentStatus.RUNNING
    got = await kube_backend.get(agent.id, owner="alice")
    assert got.started_at is not None
    assert got.started_at >= agent.created_at.replace(microsecond=0)
    listed = await kube_backend.list(owner="alice")
    assert [a.started_at for a in listed] == [got.started_at]
    stopped = await kube_backend.stop(agent.id, owner="alice", timeout=1)
    assert stopped.started_at is None
    await kube_backend.delete(agent.id, owner="alice")

"""What the Kubernetes tests of statuses, the watch and the read model share."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from orchestrators import labels as L
from orchestrators.models import AgentSpec
from testenv.fake_kubelet import FakeKubelet
from testenv.kube_env import KubeTestEnv

__all__ = ["IMAGE", "WAIT", "kubelet", "pod_names", "sleeper"]

IMAGE = "aptest/busybox:latest"
WAIT = 30.0  # seconds a test waits for the cluster to show what it expects


def sleeper(name: str, image: str = IMAGE) -> AgentSpec:
    """An agent that starts and sleeps."""
    return AgentSpec(name=name, image=image, command=["sh", "-c", "exec sleep 3600"])


def kubelet(kube_env: KubeTestEnv) -> FakeKubelet:
    assert kube_env.kubelet is not None
    return kube_env.kubelet


def pod_names(api: client.ApiClient, namespace: str, agent_id: str) -> list[str]:
    """The agent's pods as the API server has them (finished ones included)."""
    pods: list[Any] = (
        client.CoreV1Api(api)
        .list_namespaced_pod(namespace, label_selector=f"{L.ID}={agent_id}")
        .items
    )
    return [str(pod.metadata.name) for pod in pods]

"""What the API server stores for the workspace and the operator's isolation settings, and
what a server too old for a setting does to a spawn (nothing is left)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from kubernetes import client

from orchestrators.errors import SpawnFailed
from orchestrators.kubernetes import KubernetesOrchestrator
from testenv.backends import SMALL
from testenv.engine import TEST_PREFIX
from testenv.kube_env import KubeTestEnv
from testenv.kube_fixture import kubernetes_orchestrator, leftovers, wait_until

from .test_backend import pods_of, read, spec, the_deployment

pytestmark = [pytest.mark.anyio, pytest.mark.kubernetes]


@pytest.fixture
def runtime_class(kube_api: client.ApiClient) -> Iterator[str]:
    """A RuntimeClass (cluster-wide, so named with the test prefix): pods naming one that
    does not exist are refused by the API server's admission."""
    node = client.NodeV1Api(kube_api)
    name = f"{TEST_PREFIX}sandbox"
    with contextlib.suppress(client.ApiException):
        node.delete_runtime_class(name)
    node.create_runtime_class(
        client.V1RuntimeClass(metadata=client.V1ObjectMeta(name=name), handler="kata")
    )
    try:
        yield name
    finally:
        with contextlib.suppress(client.ApiException):
            node.delete_runtime_class(name)


async def test_on_a_cluster_before_1_27_the_claim_is_read_write_once_and_rollouts_recreate(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    agent = await kube_backend.spawn(
        spec("aptest-rwo", workspace=True), owner="alice", resources=SMALL
    )
    (claim,) = read(
        client.CoreV1Api(kube_api).list_namespaced_persistent_volume_claim, kube_namespace
    )["items"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    deployment = the_deployment(kube_api, kube_namespace, agent.id)
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    await kube_backend.delete(agent.id)


async def test_a_forced_read_write_once_pod_is_refused_by_an_older_cluster_leaving_nothing(
    kube_env: KubeTestEnv, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    backend = kubernetes_orchestrator(
        kube_env.kubeconfig, kube_namespace, kube_workspace_access_mode="ReadWriteOncePod"
    )
    try:
        with pytest.raises(SpawnFailed, match="workspace claim"):
            await backend.spawn(spec("aptest-rwop", workspace=True), owner="alice", resources=SMALL)
        assert await backend.list() == []
    finally:
        await backend.close()
    wait_until("everything to go", lambda: not leftovers(kube_api, kube_namespace))


async def test_the_runtime_class_reaches_the_deployment_and_its_pod(
    kube_env: KubeTestEnv, kube_api: client.ApiClient, kube_namespace: str, runtime_class: str
) -> None:
    backend = kubernetes_orchestrator(
        kube_env.kubeconfig, kube_namespace, kube_runtime_class=runtime_class
    )
    try:
        agent = await backend.spawn(spec("aptest-kata"), owner="alice", resources=SMALL)
        deployment = the_deployment(kube_api, kube_namespace, agent.id)
        assert deployment["spec"]["template"]["spec"]["runtimeClassName"] == runtime_class
        (pod,) = pods_of(kube_api, kube_namespace, agent.id)
        assert pod["spec"]["runtimeClassName"] == runtime_class
        await backend.delete(agent.id)
    finally:
        await backend.close()


async def test_user_namespaces_on_a_cluster_that_drops_host_users_fail_the_spawn(
    kube_env: KubeTestEnv, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    # The 1.20 API server has no hostUsers field and drops it silently: the agent would run
    # in the host's user namespace, so the spawn fails instead.
    backend = kubernetes_orchestrator(
        kube_env.kubeconfig, kube_namespace, kube_user_namespaces=True
    )
    try:
        with pytest.raises(SpawnFailed, match="hostUsers"):
            await backend.spawn(
                spec("aptest-userns", secrets={"TOKEN": "t"}, workspace=True),
                owner="alice",
                resources=SMALL,
            )
        assert await backend.list() == []
    finally:
        await backend.close()
    wait_until("everything to go", lambda: not leftovers(kube_api, kube_namespace))

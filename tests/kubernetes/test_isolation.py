"""What keeps owners apart on Kubernetes, as the API server admits and stores it.

Pods run under the fake kubelet, so no packet is sent here: the tests assert on the objects
the API server accepted (the pod's security context, the NetworkPolicies and which real
pods their selectors pick) and on what a refusal leaves (nothing).
"""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes import client

from orchestrators import labels as L
from orchestrators.errors import PolicyViolation
from orchestrators.kubernetes import KubernetesOrchestrator
from orchestrators.models import AgentStatus
from testenv.backends import SMALL
from testenv.engine import TEST_PREFIX
from testenv.kube_env import KubeTestEnv
from testenv.kube_fixture import (
    ServiceAccountAccess,
    kubernetes_orchestrator,
    leftovers,
    wait_until,
)

from .test_backend import pods_of, read, spec

pytestmark = [pytest.mark.anyio, pytest.mark.kubernetes]

JSON = dict[str, Any]


def selected(api: client.ApiClient, namespace: str, selector: JSON) -> set[str]:
    """The agent ids of the pods a label selector picks, as the API server evaluates it."""
    terms = ",".join(f"{k}={v}" for k, v in selector["matchLabels"].items())
    response: Any = client.CoreV1Api(api).list_namespaced_pod(
        namespace, label_selector=terms, _preload_content=False, _request_timeout=30
    )
    try:
        pods: list[JSON] = json.loads(response.data)["items"]
    finally:
        response.release_conn()
    return {p["metadata"]["labels"][L.ID] for p in pods}


def policies(api: client.ApiClient, namespace: str) -> dict[str, JSON]:
    """The NetworkPolicies in the namespace, by the agent id their pod selector names."""
    found = read(client.NetworkingV1Api(api).list_namespaced_network_policy, namespace)["items"]
    return {p["spec"]["podSelector"]["matchLabels"][L.ID]: p for p in found}


async def test_the_workspace_is_writable_by_a_non_root_group_by_default(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    agent = await kube_backend.spawn(
        spec("aptest-ws-owner", workspace=True), owner="alice", resources=SMALL
    )
    assert agent.status is AgentStatus.RUNNING
    (pod,) = pods_of(kube_api, kube_namespace, agent.id)
    security = pod["spec"]["securityContext"]
    # Without a user id set by the operator: the disk (root-owned when new) is handed to a
    # non-root group the agent's process belongs to, walked only when not already its.
    assert security["fsGroup"] == 10001
    assert security["fsGroupChangePolicy"] == "OnRootMismatch"
    assert security["runAsNonRoot"] is True
    assert "runAsUser" not in security
    (volume,) = pod["spec"]["volumes"][:1]
    assert volume["persistentVolumeClaim"]["claimName"] == f"{TEST_PREFIX}ws-{agent.id}"


async def test_the_group_is_the_operators_choice(
    kube_env: KubeTestEnv, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    backend = kubernetes_orchestrator(
        kube_env.kubeconfig, kube_namespace, kube_run_as_user=2000, kube_fs_group=3000
    )
    try:
        agent = await backend.spawn(
            spec("aptest-ws-ids", workspace=True), owner="a", resources=SMALL
        )
        (pod,) = pods_of(kube_api, kube_namespace, agent.id)
        security = pod["spec"]["securityContext"]
        assert (security["runAsUser"], security["runAsGroup"], security["fsGroup"]) == (
            2000,
            2000,
            3000,
        )
    finally:
        await backend.close()


async def test_every_default_agent_gets_a_baseline_policy_that_keeps_owners_apart(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    # Two owners, and one name used by both (names are unique per owner only).
    alice_one = await kube_backend.spawn(spec("aptest-same"), owner="alice", resources=SMALL)
    alice_two = await kube_backend.spawn(spec("aptest-two"), owner="alice", resources=SMALL)
    bob_one = await kube_backend.spawn(spec("aptest-same"), owner="bob", resources=SMALL)
    agents = {a.id: a for a in (alice_one, alice_two, bob_one)}

    found = policies(kube_api, kube_namespace)
    assert sorted(found) == sorted(agents)
    alices = {alice_one.id, alice_two.id}
    for agent_id, policy in found.items():
        owner = agents[agent_id].owner
        same_owner = alices if owner == "alice" else {bob_one.id}
        assert policy["metadata"]["name"] == f"{TEST_PREFIX}baseline-{agent_id}"
        spec_ = policy["spec"]
        assert spec_["policyTypes"] == ["Ingress", "Egress"]
        # It applies to this agent's pod and no other.
        assert selected(kube_api, kube_namespace, spec_["podSelector"]) == {agent_id}
        # In: the owner's agents (and the platform's namespace), never another owner's.
        (ingress,) = spec_["ingress"]
        pod_peers = [p for p in ingress["from"] if "podSelector" in p]
        (owners_agents,) = pod_peers
        assert "namespaceSelector" not in owners_agents  # this namespace only
        assert selected(kube_api, kube_namespace, owners_agents["podSelector"]) == same_owner
        assert [
            p["namespaceSelector"]["matchLabels"] for p in ingress["from"] if p not in pod_peers
        ] == [{"kubernetes.io/metadata.name": "agent-platform"}]
        # Out: DNS on 53, the owner's agents, and everything but the denied ranges.
        dns, to_owner, everywhere = spec_["egress"]
        assert dns["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}
        assert {p["port"] for p in dns["ports"]} == {53}
        assert selected(kube_api, kube_namespace, to_owner["to"][0]["podSelector"]) == same_owner
        blocks = {peer["ipBlock"]["cidr"]: peer["ipBlock"] for peer in everywhere["to"]}
        assert set(blocks) == {"0.0.0.0/0", "::/0"}
        denied = [ipaddress.ip_network(c) for c in blocks["0.0.0.0/0"]["except"]]
        for address in ("169.254.169.254", "10.0.0.1", "172.16.0.1", "192.168.0.1", "100.64.0.1"):
            assert any(ipaddress.ip_address(address) in net for net in denied), address
        # Owned by the agent's Deployment, so it never outlives it.
        (reference,) = policy["metadata"]["ownerReferences"]
        assert reference["kind"] == "Deployment"

    # Same name, two owners: two Deployments, pods whose host name publishes nothing (no
    # subdomain, no Service), so neither can be reached under the other's name.
    pods = [p for a in (alice_one, bob_one) for p in pods_of(kube_api, kube_namespace, a.id)]
    assert len({p["metadata"]["ownerReferences"][0]["name"] for p in pods}) == 2
    assert all("subdomain" not in p["spec"] for p in pods)
    services = read(client.CoreV1Api(kube_api).list_namespaced_service, kube_namespace)
    assert services["items"] == []

    await kube_backend.delete(alice_one.id, owner="alice")
    assert sorted(policies(kube_api, kube_namespace)) == sorted([alice_two.id, bob_one.id])


async def test_the_baseline_can_be_configured_or_left_out(
    kube_env: KubeTestEnv, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    tuned = kubernetes_orchestrator(
        kube_env.kubeconfig,
        kube_namespace,
        kube_ingress_namespaces=["gateway"],
        kube_egress_denied_cidrs=["192.168.0.0/16"],
    )
    bare = kubernetes_orchestrator(
        kube_env.kubeconfig, kube_namespace, kube_baseline_network_policy=False
    )
    try:
        agent = await tuned.spawn(spec("aptest-tuned"), owner="alice", resources=SMALL)
        policy = policies(kube_api, kube_namespace)[agent.id]
        ingress = policy["spec"]["ingress"][0]["from"]
        assert ingress[1:] == [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}}
        ]
        v4 = next(
            p["ipBlock"]
            for p in policy["spec"]["egress"][2]["to"]
            if p["ipBlock"]["cidr"] == "0.0.0.0/0"
        )
        assert v4["except"] == ["169.254.169.254/32", "192.168.0.0/16"]

        plain = await bare.spawn(spec("aptest-bare"), owner="alice", resources=SMALL)
        assert plain.id not in policies(kube_api, kube_namespace)
        await bare.delete(plain.id)
    finally:
        await tuned.close()
        await bare.close()


async def test_network_none_is_refused_unless_a_policy_engine_is_declared(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    with pytest.raises(PolicyViolation) as refused:
        await kube_backend.spawn(
            spec("aptest-offline", network="none", secrets={"TOKEN": "t0k3n"}, workspace=True),
            owner="alice",
            resources=SMALL,
            idempotency_key="offline-1",
        )
    assert "network policy engine" in refused.value.detail
    assert "t0k3n" not in refused.value.detail
    assert await kube_backend.list() == []
    assert leftovers(kube_api, kube_namespace) == []


async def test_the_sweep_of_the_narrow_role_leaves_secrets_to_their_owner_reference(
    service_account: ServiceAccountAccess,
    service_account_namespace: str,
    kube_api: client.ApiClient,
) -> None:
    namespace = service_account_namespace
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    backend = kubernetes_orchestrator(service_account.kubeconfig, namespace)
    try:
        kept = await backend.spawn(
            spec("aptest-kept", secrets={"A": "1"}), owner="alice", resources=SMALL
        )
        # What a spawn cut off between its Deployment and its Secret can leave: a Secret
        # owned by a Deployment that no longer exists.
        gone = read(
            apps.create_namespaced_deployment,
            namespace,
            {
                "metadata": {"name": f"{TEST_PREFIX}gone"},
                "spec": {
                    "replicas": 0,
                    "selector": {"matchLabels": {"app": "gone"}},
                    "template": {
                        "metadata": {"labels": {"app": "gone"}},
                        "spec": {"containers": [{"name": "c", "image": "x"}]},
                    },
                },
            },
        )
        apps.delete_namespaced_deployment(gone["metadata"]["name"], namespace)
        labels = L.owned_labels(
            instance=L.instance_name(TEST_PREFIX),
            agent_id="e" * 32,
            owner="alice",
            kind=L.Kind.SECRET,
        )
        orphan = f"{TEST_PREFIX}secret-{'e' * 32}"
        core.create_namespaced_secret(
            namespace,
            {  # type: ignore[arg-type]
                "metadata": {
                    "name": orphan,
                    "labels": labels,
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "Deployment",
                            "name": gone["metadata"]["name"],
                            "uid": gone["metadata"]["uid"],
                        }
                    ],
                },
                "stringData": {"A": "1"},
            },
        )

        # The service's own sweep, with the Role of deployment/kubernetes: it never needs
        # to read a Secret (the old sweep listed them, which the Role no longer allows).
        report = await backend.sweep(now=datetime.now(UTC) + timedelta(hours=1))
        assert report.stopped == []
        assert [a.id for a in await backend.list()] == [kept.id]

        def secret_names() -> set[str]:
            return {
                s["metadata"]["name"] for s in read(core.list_namespaced_secret, namespace)["items"]
            }

        wait_until(
            "the garbage collector to remove the orphaned secret",
            lambda: orphan not in secret_names(),
        )
        assert f"{TEST_PREFIX}secret-{kept.id}" in secret_names()
    finally:
        await backend.close()


async def test_a_user_label_cannot_pass_for_another_owner(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    bobs = await kube_backend.spawn(spec("aptest-target"), owner="bob", resources=SMALL)
    # Alice labels her agent as if it were Bob's, with every spelling the schema admits.
    await kube_backend.spawn(
        spec("aptest-mimic", labels={"owner": "bob", "agents.hive.io.owner": "bob"}),
        owner="alice",
        resources=SMALL,
    )
    policy = policies(kube_api, kube_namespace)[bobs.id]
    (owners_agents,) = [p for p in policy["spec"]["ingress"][0]["from"] if "podSelector" in p]
    assert selected(kube_api, kube_namespace, owners_agents["podSelector"]) == {bobs.id}

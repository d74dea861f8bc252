"""deployment/kubernetes/: what the manifests say, and what they allow once applied.

That the Role is *enough* is shown by the contract suite's ``kubernetes-sa`` backend (the
orchestrator with this ServiceAccount's token, in a namespace where only this Role is
bound); here, that it is *minimal*: SubjectAccessReviews for the account, as the API
server's authorizer answers them.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Any

import pytest
from kubernetes import client

from testenv.kube_fixture import (
    MANIFESTS,
    ROOT,
    ServiceAccountAccess,
    can,
    load_manifests,
    pdb_resource,
)

JSON = dict[str, Any]


def read_json(method: Any, *args: Any) -> JSON:
    response = method(*args, _preload_content=False, _request_timeout=30)
    try:
        answer: JSON = json.loads(response.data)
    finally:
        response.release_conn()
    return answer


def by_kind() -> dict[str, list[JSON]]:
    found: dict[str, list[JSON]] = {}
    for document in load_manifests():
        found.setdefault(document["kind"], []).append(document)
    return found


def test_the_directory_has_the_whole_deployment_and_nothing_cluster_wide() -> None:
    kinds = by_kind()
    assert sorted(kinds) == [
        "Deployment",
        "Namespace",
        "NetworkPolicy",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
    ]
    assert [n["metadata"]["name"] for n in kinds["Namespace"]] == ["agent-platform", "agents"]
    for namespace in kinds["Namespace"]:
        labels = namespace["metadata"]["labels"]
        # Enforced as of one pinned version of the standard: an upgrade of the cluster
        # does not change what is admitted; the newest one warns and audits meanwhile.
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        assert re.fullmatch(r"v1\.\d+", labels["pod-security.kubernetes.io/enforce-version"])
        for mode in ("warn", "audit"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
            assert labels[f"pod-security.kubernetes.io/{mode}-version"] == "latest"
    (role,) = kinds["Role"]
    (binding,) = kinds["RoleBinding"]
    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == "agents"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "agent-api",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "agent-api", "namespace": "agent-platform"}
    ]
    (secret,) = kinds["Secret"]
    assert "data" not in secret
    assert "stringData" not in secret


def test_the_role_grants_exactly_what_the_backend_calls() -> None:
    (role,) = by_kind()["Role"]
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        ("apps", "deployments", "list"),
        ("apps", "deployments", "watch"),
        ("apps", "deployments", "create"),
        ("apps", "deployments", "patch"),
        ("apps", "deployments", "delete"),
        ("", "pods", "list"),
        ("", "pods", "watch"),
        ("", "pods", "delete"),
        ("", "pods/log", "get"),
        ("", "secrets", "create"),
        ("", "secrets", "patch"),
        ("", "secrets", "delete"),
        ("", "persistentvolumeclaims", "list"),
        ("", "persistentvolumeclaims", "create"),
        ("", "persistentvolumeclaims", "delete"),
        ("networking.k8s.io", "networkpolicies", "list"),
        ("networking.k8s.io", "networkpolicies", "create"),
        ("networking.k8s.io", "networkpolicies", "delete"),
        ("metrics.k8s.io", "pods", "list"),
    }
    assert "*" not in json.dumps(role)


def test_the_service_runs_restricted_without_a_socket_and_with_probes() -> None:
    (deployment,) = by_kind()["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    text = json.dumps(deployment)
    for forbidden in ("hostPath", "docker.sock", "hostNetwork", 'privileged": true'):
        assert forbidden not in text
    assert pod["serviceAccountName"] == "agent-api"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"]
    assert container["resources"]["requests"]
    env = {e["name"]: e for e in container["env"]}
    assert env["ORCHESTRATOR"]["value"] == "kubernetes"
    assert env["AGENT_API_KUBE_NAMESPACE"]["value"] == "agents"
    assert env["AGENT_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "agent-api-keys"
    (service,) = by_kind()["Service"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (policy,) = by_kind()["NetworkPolicy"]
    assert policy["spec"]["podSelector"] == deployment["spec"]["selector"]


def test_the_image_is_pinned() -> None:
    (deployment,) = by_kind()["Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    image = container["image"]
    repository, _, tag = image.rpartition(":")
    assert "/" not in tag, f"{image} has no tag"
    assert repository
    assert tag not in ("", "latest")


def test_every_document_the_manifests_mention_exists() -> None:
    mentioned: set[str] = set()
    for path in MANIFESTS.glob("*.yaml"):
        mentioned.update(re.findall(r"[\w./-]+\.(?:md|ya?ml|txt|json)\b", path.read_text()))
    for name in sorted(mentioned):
        assert (ROOT / name).exists() or (MANIFESTS / name).exists(), f"{name} does not exist"


def test_a_drain_leaves_one_replica_of_the_service() -> None:
    (budget,) = by_kind()["PodDisruptionBudget"]
    (deployment,) = by_kind()["Deployment"]
    assert budget["apiVersion"] == "policy/v1"
    assert budget["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]
    assert 1 <= budget["spec"]["minAvailable"] < deployment["spec"]["replicas"]


def test_the_services_network_policy_is_narrow() -> None:
    (policy,) = by_kind()["NetworkPolicy"]
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    # In: the API port only, and only from named sources (never from anywhere).
    (ingress,) = spec["ingress"]
    assert ingress["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert ingress["from"] == [
        {"podSelector": {}},
        {"namespaceSelector": {"matchLabels": {"agents.hive.io/agent-api-client": "true"}}},
    ]
    # Out: kube-dns on 53, and single addresses (the API server) on 443/6443; nothing else.
    dns, api_server = spec["egress"]
    assert dns["to"] == [
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
    ]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert {p["port"] for p in api_server["ports"]} == {443, 6443}
    for peer in api_server["to"]:
        assert set(peer) == {"ipBlock"}
        assert ipaddress.ip_network(peer["ipBlock"]["cidr"]).num_addresses == 1


@pytest.mark.kubernetes
def test_the_manifests_apply_and_the_service_account_gets_a_token(
    service_account: ServiceAccountAccess, kube_api: client.ApiClient
) -> None:
    apps = client.AppsV1Api(kube_api)
    deployment = apps.read_namespaced_deployment("agent-api", service_account.service_namespace)
    assert deployment.spec is not None
    assert deployment.spec.replicas == 2
    budget = pdb_resource(kube_api).get(
        name="agent-api", namespace=service_account.service_namespace
    )
    assert budget.to_dict()["spec"] == {
        "minAvailable": 1,
        "selector": {"matchLabels": {"app.kubernetes.io/name": "agent-api"}},
    }
    networking = client.NetworkingV1Api(kube_api)
    stored = read_json(
        networking.read_namespaced_network_policy, "agent-api", service_account.service_namespace
    )
    blocks = [
        p["ipBlock"]["cidr"] for r in stored["spec"]["egress"] for p in r["to"] if "ipBlock" in p
    ]
    assert blocks == ["192.0.2.1/32"]
    namespace = read_json(
        client.CoreV1Api(kube_api).read_namespace, service_account.agents_namespace
    )
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/audit"] == "restricted"


@pytest.mark.kubernetes
def test_the_role_is_minimal(
    service_account: ServiceAccountAccess, kube_api: client.ApiClient
) -> None:
    user, agents = service_account.user, service_account.agents_namespace
    service = service_account.service_namespace

    def allowed(namespace: str | None, verb: str, resource: str, sub: str | None = None) -> bool:
        return can(kube_api, user, namespace, verb, resource, sub)

    # What the backend does, in the agents' namespace.
    for verb in ("list", "watch", "create", "patch", "delete"):
        assert allowed(agents, verb, "apps/deployments")
    for verb in ("list", "watch", "delete"):
        assert allowed(agents, verb, "pods")
    assert allowed(agents, "get", "pods", "log")
    # Nothing more there: no exec, no bare pods, no roles, no reads it does not need.
    assert not allowed(agents, "create", "pods", "exec")
    assert not allowed(agents, "create", "pods")
    # Watched: Deployments and pods only (the informer); what an agent owns is not.
    for resource in ("persistentvolumeclaims", "networking.k8s.io/networkpolicies"):
        assert not allowed(agents, "watch", resource)
    assert not allowed(agents, "update", "apps/deployments")
    # Secrets are written and deleted, never read: get, list and watch return the values.
    assert allowed(agents, "create", "secrets")
    assert allowed(agents, "patch", "secrets")
    assert allowed(agents, "delete", "secrets")
    for verb in ("get", "list", "watch"):
        assert not allowed(agents, verb, "secrets")
    assert not allowed(agents, "create", "rbac.authorization.k8s.io/roles")
    assert not allowed(agents, "create", "rbac.authorization.k8s.io/rolebindings")
    assert not allowed(agents, "create", "serviceaccounts")
    # Nothing in any other namespace, its own included.
    for namespace in (service, "default", "kube-system"):
        assert not allowed(namespace, "list", "apps/deployments")
        assert not allowed(namespace, "watch", "apps/deployments")
        assert not allowed(namespace, "watch", "pods")
        assert not allowed(namespace, "create", "apps/deployments")
        assert not allowed(namespace, "list", "secrets")
        assert not allowed(namespace, "delete", "pods")
    # Nothing cluster-scoped, and nothing across all namespaces.
    assert not allowed(None, "list", "apps/deployments")
    assert not allowed(None, "watch", "apps/deployments")
    assert not allowed(None, "watch", "pods")
    assert not allowed(None, "list", "secrets")
    assert not allowed(None, "get", "nodes")
    assert not allowed(None, "list", "nodes")
    assert not allowed(None, "list", "namespaces")
    assert not allowed(None, "create", "namespaces")
    assert not allowed(None, "delete", "namespaces")
    assert not allowed(None, "create", "persistentvolumes")
    assert not allowed(None, "create", "rbac.authorization.k8s.io/clusterroles")
    assert not allowed(None, "create", "rbac.authorization.k8s.io/clusterrolebindings")

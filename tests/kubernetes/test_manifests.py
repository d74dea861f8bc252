"""deployment/kubernetes/: what the manifests say, and what they allow once applied.

That the Role is *enough* is shown by the contract suite's ``kubernetes-sa`` backend (the
orchestrator with this ServiceAccount's token, in a namespace where only this Role is
bound); here, that it is *minimal*: SubjectAccessReviews for the account, as the API
server's authorizer answers them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from ..support.kube_fixture import ServiceAccountAccess, can, load_manifests

JSON = dict[str, Any]


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
        "Role",
        "RoleBinding",
        "Secret",
        "Service",
        "ServiceAccount",
    ]
    assert [n["metadata"]["name"] for n in kinds["Namespace"]] == ["agent-platform", "agents"]
    for namespace in kinds["Namespace"]:
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
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
        ("apps", "deployments", "create"),
        ("apps", "deployments", "patch"),
        ("apps", "deployments", "delete"),
        ("", "pods", "list"),
        ("", "pods", "delete"),
        ("", "pods/log", "get"),
        ("", "secrets", "list"),
        ("", "secrets", "create"),
        ("", "secrets", "delete"),
        ("", "persistentvolumeclaims", "list"),
        ("", "persistentvolumeclaims", "create"),
        ("", "persistentvolumeclaims", "delete"),
        ("networking.k8s.io", "networkpolicies", "list"),
        ("networking.k8s.io", "networkpolicies", "create"),
        ("networking.k8s.io", "networkpolicies", "delete"),
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


@pytest.mark.kubernetes
def test_the_manifests_apply_and_the_service_account_gets_a_token(
    service_account: ServiceAccountAccess, kube_api: client.ApiClient
) -> None:
    apps = client.AppsV1Api(kube_api)
    deployment = apps.read_namespaced_deployment("agent-api", service_account.service_namespace)
    assert deployment.spec is not None
    assert deployment.spec.replicas == 2
    role = client.RbacAuthorizationV1Api(kube_api).read_namespaced_role(
        "agent-api", service_account.agents_namespace
    )
    assert role.rules
    assert service_account.token


@pytest.mark.kubernetes
def test_the_role_is_minimal(
    service_account: ServiceAccountAccess, kube_api: client.ApiClient
) -> None:
    user, agents = service_account.user, service_account.agents_namespace
    service = service_account.service_namespace

    def allowed(namespace: str | None, verb: str, resource: str, sub: str | None = None) -> bool:
        return can(kube_api, user, namespace, verb, resource, sub)

    # What the backend does, in the agents' namespace.
    for verb in ("list", "create", "patch", "delete"):
        assert allowed(agents, verb, "apps/deployments")
    assert allowed(agents, "get", "pods", "log")
    # Nothing more there: no exec, no bare pods, no roles, no reads it does not need.
    assert not allowed(agents, "create", "pods", "exec")
    assert not allowed(agents, "create", "pods")
    assert not allowed(agents, "watch", "apps/deployments")
    assert not allowed(agents, "update", "apps/deployments")
    assert not allowed(agents, "get", "secrets")
    assert not allowed(agents, "create", "rbac.authorization.k8s.io/roles")
    assert not allowed(agents, "create", "rbac.authorization.k8s.io/rolebindings")
    assert not allowed(agents, "create", "serviceaccounts")
    # Nothing in any other namespace, its own included.
    for namespace in (service, "default", "kube-system"):
        assert not allowed(namespace, "list", "apps/deployments")
        assert not allowed(namespace, "create", "apps/deployments")
        assert not allowed(namespace, "list", "secrets")
        assert not allowed(namespace, "delete", "pods")
    # Nothing cluster-scoped, and nothing across all namespaces.
    assert not allowed(None, "list", "apps/deployments")
    assert not allowed(None, "list", "secrets")
    assert not allowed(None, "get", "nodes")
    assert not allowed(None, "list", "nodes")
    assert not allowed(None, "list", "namespaces")
    assert not allowed(None, "create", "namespaces")
    assert not allowed(None, "delete", "namespaces")
    assert not allowed(None, "create", "persistentvolumes")
    assert not allowed(None, "create", "rbac.authorization.k8s.io/clusterroles")
    assert not allowed(None, "create", "rbac.authorization.k8s.io/clusterrolebindings")

"""The real Kubernetes API server for tests: one control plane per session, a namespace per test.

``kube_env`` starts the control plane of :mod:`testenv.kube_env` once per session,
whichever test directory asks first (the binaries are built by
``scripts/kube-testenv-build.sh`` when missing; ``KUBE_TESTENV_NO_BUILD=1`` prevents it).
With ``CI=true`` an environment that cannot be built or started fails the tests; elsewhere
they are skipped with the reason.

``kube_namespace`` gives each test a fresh namespace. After the test, every agent still in
it is deleted through the backend, then the namespace must hold nothing the backend makes
(Deployments, ReplicaSets, pods, Secrets, claims, network policies): a delete that leaves
anything behind fails the test that made it. ``service_account_namespace`` is the same,
with the Role of ``deployment/kubernetes/`` bound there to the ServiceAccount those
manifests create, applied once per session: a backend using that token passes only if the
Role is enough.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from kubernetes import client, dynamic, utils
from kubernetes.client.exceptions import ApiException

from orchestrators.config import KubernetesConfig
from orchestrators.kubernetes import KubernetesOrchestrator

from .engine import TEST_PREFIX
from .kube_env import KubeTestEnv, KubeTestEnvError, default_bin_dir, missing_binaries

__all__ = [
    "MANIFESTS",
    "ServiceAccountAccess",
    "apply_manifests",
    "can",
    "fresh_namespace",
    "kube_api",
    "kube_backend",
    "kube_env",
    "kube_namespace",
    "kubernetes_orchestrator",
    "leftovers",
    "load_manifests",
    "pdb_resource",
    "service_account_namespace",
    "wait_until",
]

ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = ROOT / "scripts" / "kube-testenv-build.sh"
MANIFESTS = ROOT / "deployment" / "kubernetes"
# The namespaces the manifests name, replaced by per-session test namespaces.
SERVICE_NAMESPACE, AGENTS_NAMESPACE = "agent-platform", "agents"
SERVICE_ACCOUNT = "agent-api"
_shared: dict[str, Any] = {}


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"Kubernetes test environment unavailable in CI: {reason}", pytrace=False)
    pytest.skip(f"Kubernetes test environment unavailable: {reason}")


def _start() -> KubeTestEnv:
    if missing_binaries() and os.environ.get("KUBE_TESTENV_NO_BUILD") != "1":
        try:
            result = subprocess.run(
                ["bash", str(BUILD_SCRIPT)],
                capture_output=True,
                text=True,
                timeout=3600,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise KubeTestEnvError(f"{BUILD_SCRIPT.name} did not complete: {exc}") from exc
        if result.returncode != 0:
            raise KubeTestEnvError(f"{BUILD_SCRIPT.name} failed:\n{result.stderr[-3000:]}")
    missing = missing_binaries()
    if missing:
        raise KubeTestEnvError(f"missing {', '.join(missing)} (bin dir {default_bin_dir()})")
    return KubeTestEnv().start()


@pytest.fixture(scope="session")
def kube_env(pytestconfig: pytest.Config) -> KubeTestEnv:
    """The session's control plane with a fake kubelet node, started on first use."""
    if "error" in _shared:
        _unavailable(_shared["error"])
    if "env" not in _shared:
        try:
            env = _start()
        except KubeTestEnvError as exc:
            _shared["error"] = str(exc)
            _unavailable(str(exc))
        _shared["env"] = env
        pytestconfig.add_cleanup(env.stop)
    shared: KubeTestEnv = _shared["env"]
    return shared


def wait_until(what: str, probe: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def kubernetes_orchestrator(
    kubeconfig: Path, namespace: str, **overrides: Any
) -> KubernetesOrchestrator:
    """The backend as the tests use it: the test prefix, a one-second stop grace."""
    settings: dict[str, Any] = {
        "kube_namespace": namespace,
        "kubeconfig": str(kubeconfig),
        "resource_prefix": TEST_PREFIX,
        "stop_timeout": 1,
        "engine_timeout": 30.0,
        "spawn_wait_seconds": 30.0,
    }
    settings.update(overrides)
    return KubernetesOrchestrator(KubernetesConfig(**settings))


def _items(method: Callable[..., Any], namespace: str) -> list[dict[str, Any]]:
    response = method(namespace, _preload_content=False, _request_timeout=30)
    try:
        items: list[dict[str, Any]] = json.loads(response.data)["items"]
    finally:
        response.release_conn()
    return items


def leftovers(api: client.ApiClient, namespace: str) -> list[str]:
    """What the backend may have made that is still in ``namespace``."""
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    networking = client.NetworkingV1Api(api)
    kinds: list[tuple[str, Callable[..., Any]]] = [
        ("deployment", apps.list_namespaced_deployment),
        ("replicaset", apps.list_namespaced_replica_set),
        ("pod", core.list_namespaced_pod),
        ("secret", core.list_namespaced_secret),
        ("pvc", core.list_namespaced_persistent_volume_claim),
        ("networkpolicy", networking.list_namespaced_network_policy),
    ]
    return [
        f"{kind}/{item['metadata']['name']}"
        for kind, method in kinds
        for item in _items(method, namespace)
        if item.get("type") != "kubernetes.io/service-account-token"
    ]


def _create_namespace(env: KubeTestEnv, api: client.ApiClient) -> str:
    name = f"{TEST_PREFIX}{secrets.token_hex(4)}"
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name))
    )
    env.wait_for_service_account(name)
    return name


def _empty_namespace(env: KubeTestEnv, api: client.ApiClient, namespace: str) -> None:
    """Delete the agents a test left through the backend, then require an empty namespace."""

    async def delete_agents() -> None:
        backend = kubernetes_orchestrator(env.kubeconfig, namespace)
        try:
            for agent in await backend.list():
                await backend.delete(agent.id)
        finally:
            await backend.close()

    asyncio.run(delete_agents())
    remaining: list[str] = []

    def empty() -> bool:
        remaining[:] = leftovers(api, namespace)
        return not remaining

    try:
        wait_until(f"namespace {namespace} to be empty", empty, timeout=30)
    except AssertionError:
        raise AssertionError(f"left in {namespace} after the test: {remaining}") from None
    finally:
        try:
            client.CoreV1Api(api).delete_namespace(namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise


@contextlib.contextmanager
def fresh_namespace(env: KubeTestEnv) -> Iterator[str]:
    """A new namespace; on exit its agents are deleted through the backend, it must then be
    empty of the backend's objects, and it is deleted."""
    api = env.api_client()
    name = _create_namespace(env, api)
    try:
        yield name
    finally:
        _empty_namespace(env, api, name)


@pytest.fixture
def kube_namespace(kube_env: KubeTestEnv) -> Iterator[str]:
    """A fresh namespace, required to be empty of the backend's objects after the test."""
    with fresh_namespace(kube_env) as name:
        yield name


@pytest.fixture
def kube_api(kube_env: KubeTestEnv) -> client.ApiClient:
    """The cluster admin's client (closed with the environment)."""
    return kube_env.api_client()


@pytest.fixture
async def kube_backend(
    kube_env: KubeTestEnv, kube_namespace: str
) -> AsyncIterator[KubernetesOrchestrator]:
    """The backend, as the cluster admin, in the test's namespace."""
    orchestrator = kubernetes_orchestrator(kube_env.kubeconfig, kube_namespace)
    yield orchestrator
    await orchestrator.close()


# -- the manifests of deployment/kubernetes -----------------------------------------------------


def _rename(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {key: _rename(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [_rename(item, names) for item in value]
    if isinstance(value, str):
        return names.get(value, value)
    return value


def load_manifests(names: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every object of ``deployment/kubernetes/*.yaml`` in file order, with the namespaces
    (any string value equal to one) renamed by ``names``."""
    documents: list[dict[str, Any]] = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append(_rename(document, names or {}))
    return documents


def _serves(api: client.ApiClient, group_version: str) -> bool:
    group, version = group_version.split("/")
    groups = client.ApisApi(api).get_api_versions().groups or []
    return any(
        g.name == group and any(v.version == version for v in g.versions or []) for g in groups
    )


def pdb_resource(api: client.ApiClient) -> Any:
    """PodDisruptionBudgets of the test server (v1.20): ``policy/v1`` came in 1.21 with the
    same fields; the manifests use it, as every supported AKS version serves it."""
    version = "policy/v1" if _serves(api, "policy/v1") else "policy/v1beta1"
    discovery = dynamic.DynamicClient(api)  # type: ignore[no-untyped-call]
    return discovery.resources.get(api_version=version, kind="PodDisruptionBudget")


def apply_manifests(api: client.ApiClient, documents: list[dict[str, Any]]) -> None:
    for document in documents:
        namespace = document.get("metadata", {}).get("namespace", "default")
        if document["kind"] == "PodDisruptionBudget":
            resource = pdb_resource(api)
            resource.create({**document, "apiVersion": resource.group_version}, namespace=namespace)
            continue
        utils.create_from_dict(api, document, namespace=namespace)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class ServiceAccountAccess:
    """The manifests as applied for the session: where the service runs and its token."""

    service_namespace: str
    agents_namespace: str
    token: str
    kubeconfig: Path
    user: str


def _service_account_token(api: client.ApiClient, namespace: str) -> str:
    core = client.CoreV1Api(api)
    found: list[str] = []

    def issued() -> bool:
        account = core.read_namespaced_service_account(SERVICE_ACCOUNT, namespace)
        for ref in account.secrets or []:
            secret = core.read_namespaced_secret(str(ref.name), namespace)
            if secret.data and "token" in secret.data:
                found.append(base64.b64decode(secret.data["token"]).decode())
                return True
        return False

    wait_until("the service account's token", issued)
    return found[0]


@pytest.fixture(scope="session")
def service_account(kube_env: KubeTestEnv) -> Iterator[ServiceAccountAccess]:
    """``deployment/kubernetes/`` applied once (service namespace renamed), and a kubeconfig
    with its ServiceAccount's token."""
    api = kube_env.api_client()
    suffix = secrets.token_hex(3)
    service_ns = f"{TEST_PREFIX}svc-{suffix}"
    agents_ns = f"{TEST_PREFIX}agents-{suffix}"
    apply_manifests(
        api, load_manifests({SERVICE_NAMESPACE: service_ns, AGENTS_NAMESPACE: agents_ns})
    )
    token = _service_account_token(api, service_ns)
    yield ServiceAccountAccess(
        service_namespace=service_ns,
        agents_namespace=agents_ns,
        token=token,
        kubeconfig=kube_env.kubeconfig_for_token(token),
        user=f"system:serviceaccount:{service_ns}:{SERVICE_ACCOUNT}",
    )
    for namespace in (agents_ns, service_ns):
        try:
            client.CoreV1Api(api).delete_namespace(namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise


def can(
    api: client.ApiClient,
    user: str,
    namespace: str | None,
    verb: str,
    resource: str,
    subresource: str | None = None,
) -> bool:
    """A SubjectAccessReview: may ``user`` do ``verb`` on ``group/resource`` there?"""
    group, _, plural = resource.rpartition("/")
    # The groups the API server gives a service account's token, so that the review sees
    # every binding the real token would get.
    account_namespace = user.split(":")[2]
    review = client.V1SubjectAccessReview(
        spec=client.V1SubjectAccessReviewSpec(
            user=user,
            groups=[
                "system:serviceaccounts",
                f"system:serviceaccounts:{account_namespace}",
                "system:authenticated",
            ],
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace,
                verb=verb,
                group=group,
                resource=plural,
                subresource=subresource,
            ),
        )
    )
    answer = client.AuthorizationV1Api(api).create_subject_access_review(review)
    return bool(answer.status and answer.status.allowed)


@pytest.fixture
def service_account_namespace(
    kube_env: KubeTestEnv, service_account: ServiceAccountAccess
) -> Iterator[str]:
    """A fresh namespace with the manifests' Role and RoleBinding (and nothing more)."""
    api = kube_env.api_client()
    name = _create_namespace(kube_env, api)
    names = {SERVICE_NAMESPACE: service_account.service_namespace, AGENTS_NAMESPACE: name}
    rbac = [d for d in load_manifests(names) if d["kind"] in ("Role", "RoleBinding")]
    apply_manifests(api, rbac)
    wait_until(
        "the Role to apply",
        lambda: can(api, service_account.user, name, "create", "apps/deployments"),
    )
    yield name
    _empty_namespace(kube_env, api, name)

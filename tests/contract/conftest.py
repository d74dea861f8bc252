"""The backends the contract suite runs against; each one is a real engine.

``kubernetes`` runs as the cluster's admin; ``kubernetes-sa`` with the token of the
ServiceAccount that ``deployment/kubernetes/`` creates, in a namespace where only that
directory's Role is bound: the suite passing there is what shows the Role is enough.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable

import pytest

from orchestrators.base import Orchestrator
from testenv.backends import docker_orchestrator
from testenv.images import BUSYBOX_IMAGE
from testenv.kube_env import KubeTestEnv
from testenv.kube_fixture import (  # noqa: F401 - fixtures used through getfixturevalue
    ServiceAccountAccess,
    kube_env,
    kube_namespace,
    kubernetes_orchestrator,
    service_account,
    service_account_namespace,
)

BACKENDS = [
    pytest.param("docker", marks=pytest.mark.docker),
    pytest.param("kubernetes", marks=pytest.mark.kubernetes),
    pytest.param("kubernetes-sa", marks=pytest.mark.kubernetes),
]


@pytest.fixture(params=BACKENDS)
def backend_factory(request: pytest.FixtureRequest) -> Callable[[], Orchestrator]:
    """Builds fresh instances of one backend, all talking to the same engine."""
    if request.param == "docker":
        request.getfixturevalue("clean_docker")
        return docker_orchestrator
    if request.param == "kubernetes":
        env: KubeTestEnv = request.getfixturevalue("kube_env")
        namespace: str = request.getfixturevalue("kube_namespace")
        return functools.partial(kubernetes_orchestrator, env.kubeconfig, namespace)
    if request.param == "kubernetes-sa":
        access: ServiceAccountAccess = request.getfixturevalue("service_account")
        namespace = request.getfixturevalue("service_account_namespace")
        return functools.partial(kubernetes_orchestrator, access.kubeconfig, namespace)
    raise AssertionError(f"unknown backend {request.param}")


@pytest.fixture
async def backend(backend_factory: Callable[[], Orchestrator]) -> AsyncIterator[Orchestrator]:
    orchestrator = backend_factory()
    yield orchestrator
    await orchestrator.close()


@pytest.fixture
def image(backend: Orchestrator, request: pytest.FixtureRequest) -> str:
    """An image the backend can run (the fake kubelet runs any name; nothing is pulled)."""
    if backend.name == "kubernetes":
        return BUSYBOX_IMAGE
    busybox: str = request.getfixturevalue("busybox")
    return busybox

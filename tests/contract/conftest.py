"""The backends the contract suite runs against; each one is a real engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from orchestrators.base import Orchestrator

from ..support.backends import docker_orchestrator

BACKENDS = ["docker"]


@pytest.fixture(params=BACKENDS)
def backend_factory(request: pytest.FixtureRequest) -> Callable[[], Orchestrator]:
    """Builds fresh instances of one backend, all talking to the same engine."""
    if request.param == "docker":
        request.getfixturevalue("clean_docker")
        return docker_orchestrator
    raise AssertionError(f"unknown backend {request.param}")


@pytest.fixture
async def backend(backend_factory: Callable[[], Orchestrator]) -> AsyncIterator[Orchestrator]:
    orchestrator = backend_factory()
    yield orchestrator
    await orchestrator.close()


@pytest.fixture
def image(backend: Orchestrator, request: pytest.FixtureRequest) -> str:
    """An image the backend can run."""
    busybox: str = request.getfixturevalue("busybox")
    return busybox

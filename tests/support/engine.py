"""The real Docker engine for tests: required in CI, and cleaned of everything tests made."""

from __future__ import annotations

import contextlib
import os

import docker
import pytest

from orchestrators import labels as L

__all__ = ["TEST_NETWORK", "TEST_PREFIX", "docker_or_fail", "remove_test_resources"]

# Overridable so that two test runs on one engine never remove each other's containers.
TEST_PREFIX = os.environ.get("AGENT_PLATFORM_TEST_PREFIX", "aptest-")
TEST_NETWORK = f"{TEST_PREFIX}net"


def docker_or_fail() -> docker.DockerClient:
    """A client for the engine; in CI a missing engine fails the run instead of skipping."""
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except docker.errors.DockerException as exc:
        message = f"no Docker engine answers ({type(exc).__name__}); run scripts/test.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return client


def remove_test_resources(client: docker.DockerClient, *, networks: bool = False) -> None:
    """Remove every container and volume carrying the test prefix (and networks if asked)."""
    for container in client.api.containers(all=True, filters={"name": TEST_PREFIX}):
        if any(name.lstrip("/").startswith(TEST_PREFIX) for name in container["Names"]):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(container["Id"], force=True)
    volumes = client.api.volumes(filters={"label": [f"{L.MANAGED_BY}={L.MANAGED_BY_VALUE}"]})
    for volume in (volumes or {}).get("Volumes") or []:
        if volume["Name"].startswith(TEST_PREFIX):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_volume(volume["Name"], force=True)
    if networks:
        for network in client.api.networks(names=[TEST_PREFIX]):
            if network["Name"].startswith(TEST_PREFIX):
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    client.api.remove_network(network["Id"])

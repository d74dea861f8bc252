"""Small helpers shared by the reliability tests."""

from __future__ import annotations

from typing import Any

import docker
import httpx

from orchestrators import labels as L
from testenv.engine import TEST_PREFIX

__all__ = ["agent_containers", "client", "instance_volumes"]


def client(url: str, key: str, timeout: float = 30) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=timeout)


def agent_containers(engine: docker.DockerClient) -> list[dict[str, Any]]:
    """Every container of the test instance, as the engine lists them."""
    instance = L.instance_name(TEST_PREFIX)
    found: list[dict[str, Any]] = engine.api.containers(
        all=True, filters={"label": [f"{L.INSTANCE}={instance}"]}
    )
    return found


def instance_volumes(engine: docker.DockerClient) -> list[dict[str, Any]]:
    instance = L.instance_name(TEST_PREFIX)
    answer = engine.api.volumes(filters={"label": [f"{L.INSTANCE}={instance}"]}) or {}
    volumes: list[dict[str, Any]] = answer.get("Volumes") or []
    return volumes

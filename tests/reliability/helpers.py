"""Small helpers shared by the reliability tests."""

from __future__ import annotations

import time
from typing import Any

import docker
import httpx

from orchestrators import labels as L

from ..support.engine import TEST_PREFIX

__all__ = ["agent_containers", "client", "instance_volumes", "wait_ready"]


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


def wait_ready(url: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not become ready within {seconds} s")

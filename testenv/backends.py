"""Orchestrators under test, built the way the service builds them."""

from __future__ import annotations

from orchestrators.base import Orchestrator
from orchestrators.docker import DockerConfig, DockerOrchestrator
from orchestrators.models import Resources

from .engine import TEST_NETWORK, TEST_PREFIX

__all__ = ["SMALL", "docker_orchestrator"]

SMALL = Resources(cpus=0.5, memory_mb=64, pids=64)


def docker_orchestrator() -> Orchestrator:
    return DockerOrchestrator(
        DockerConfig(
            network=TEST_NETWORK,
            resource_prefix=TEST_PREFIX,
            pull_missing_images=False,
            stop_timeout=1,
            engine_timeout=60,
        )
    )

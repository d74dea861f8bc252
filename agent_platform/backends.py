"""Build the orchestrator the settings name: the one place that knows every backend."""

from __future__ import annotations

from orchestrators.base import Orchestrator
from orchestrators.docker import DockerConfig, DockerOrchestrator

from .settings import Settings

__all__ = ["build_orchestrator"]


def build_orchestrator(settings: Settings) -> Orchestrator:
    if settings.orchestrator == "docker":
        return DockerOrchestrator(
            DockerConfig(
                base_url=settings.docker_host,
                timeout=settings.engine_timeout,
                network=settings.network,
                resource_prefix=settings.resource_prefix,
                pull_missing_images=settings.pull_missing_images,
                workspace_path=settings.workspace_path,
                stop_timeout=settings.stop_timeout,
                max_workers=settings.engine_threads,
                max_log_streams=settings.max_log_streams,
                read_only_rootfs=settings.read_only_rootfs,
                orphan_grace_seconds=settings.orphan_grace_seconds,
            )
        )
    raise ValueError("ORCHESTRATOR=kubernetes is not available in this version yet")

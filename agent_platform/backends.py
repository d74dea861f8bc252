"""Build the orchestrator the settings name: the one place that knows every backend."""

from __future__ import annotations

from orchestrators.base import Orchestrator
from orchestrators.config import DockerConfig, KubernetesConfig
from orchestrators.docker import DockerOrchestrator

from .settings import Settings

__all__ = ["build_orchestrator"]


def build_orchestrator(settings: Settings) -> Orchestrator:
    """The backend ``settings.orchestrator`` names, given its section of the settings whole."""
    if settings.orchestrator == "docker":
        return DockerOrchestrator(DockerConfig.section(settings))
    # Imported here: a Docker deployment never loads the Kubernetes client.
    from orchestrators.kubernetes import KubernetesOrchestrator

    return KubernetesOrchestrator(KubernetesConfig.section(settings))

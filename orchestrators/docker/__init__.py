"""The Docker backend."""

from .orchestrator import DockerConfig, DockerOrchestrator

__all__ = ["DockerConfig", "DockerOrchestrator"]

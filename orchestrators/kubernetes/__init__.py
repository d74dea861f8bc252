"""The Kubernetes backend: agents as Deployments in one namespace (AKS or any cluster)."""

from .orchestrator import KubernetesConfig, KubernetesOrchestrator

__all__ = ["KubernetesConfig", "KubernetesOrchestrator"]

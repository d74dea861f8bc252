"""ORCHESTRATOR=kubernetes: the settings reach the backend (no server needed)."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from agent_platform.backends import build_orchestrator
from agent_platform.settings import Settings
from orchestrators.kubernetes import KubernetesConfig, KubernetesOrchestrator

pytestmark = pytest.mark.anyio
KEY = secrets.token_urlsafe(32)  # a repeated character is refused as a weak key


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("ORCHESTRATOR", "KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGENT_API_KEY", KEY)
    return monkeypatch


async def test_the_kubernetes_settings_build_the_kubernetes_backend(
    clean_env: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "ORCHESTRATOR": "kubernetes",
        "AGENT_API_KUBE_NAMESPACE": "hive-agents",
        "AGENT_API_KUBECONFIG": "/etc/agent-api/kubeconfig",
        "AGENT_API_KUBE_IMAGE_PULL_SECRET": "acr-pull",
        "AGENT_API_KUBE_NODE_SELECTOR": '{"agentpool": "agents"}',
        "AGENT_API_KUBE_TOLERATIONS": '[{"key": "sandbox", "operator": "Exists"}]',
        "AGENT_API_KUBE_RUN_AS_USER": "10001",
        "AGENT_API_KUBE_STORAGE_CLASS": "managed-csi",
        "AGENT_API_KUBE_WORKSPACE_SIZE": "5Gi",
        "AGENT_API_SPAWN_WAIT_SECONDS": "12",
        "AGENT_API_ENGINE_TIMEOUT": "7",
        "AGENT_API_RESOURCE_PREFIX": "prod-",
    }.items():
        clean_env.setenv(name, value)
    backend = build_orchestrator(Settings())
    try:
        assert isinstance(backend, KubernetesOrchestrator)
        assert backend.name == "kubernetes"
        assert backend.config == KubernetesConfig(
            namespace="hive-agents",
            kubeconfig="/etc/agent-api/kubeconfig",
            timeout=7.0,
            resource_prefix="prod-",
            workspace_size="5Gi",
            storage_class="managed-csi",
            run_as_user=10001,
            image_pull_secret="acr-pull",
            node_selector={"agentpool": "agents"},
            tolerations=({"key": "sandbox", "operator": "Exists"},),
            spawn_wait_seconds=12.0,
        )
    finally:
        await backend.close()


def test_the_defaults_are_the_restricted_profile(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ORCHESTRATOR", "kubernetes")
    settings = Settings()
    assert settings.kube_namespace == "agents"
    assert settings.kube_run_as_non_root is True
    assert settings.kubeconfig is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AGENT_API_KUBE_NAMESPACE", "Not_A_Namespace"),
        ("AGENT_API_KUBE_WORKSPACE_SIZE", "lots"),
        ("AGENT_API_KUBE_RUN_AS_USER", "0"),
        ("AGENT_API_KUBE_NODE_SELECTOR", "[1, 2]"),
        ("AGENT_API_SPAWN_WAIT_SECONDS", "-1"),
    ],
)
def test_bad_kubernetes_settings_are_refused(
    clean_env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    clean_env.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_an_unknown_toleration_field_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ORCHESTRATOR", "kubernetes")
    clean_env.setenv("AGENT_API_KUBE_TOLERATIONS", '[{"key": "a", "privileged": true}]')
    with pytest.raises(ValueError, match="privileged"):
        build_orchestrator(Settings())

"""ORCHESTRATOR=kubernetes: the settings reach the backend (no server needed)."""

from __future__ import annotations

import secrets
from pathlib import Path

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
        "AGENT_API_KUBE_WORKSPACE_ACCESS_MODE": "ReadWriteOnce",
        "AGENT_API_KUBE_RUNTIME_CLASS": "kata-vm-isolation",
        "AGENT_API_KUBE_USER_NAMESPACES": "true",
    }.items():
        clean_env.setenv(name, value)
    backend = build_orchestrator(Settings())
    try:
        assert isinstance(backend, KubernetesOrchestrator)
        assert backend.name == "kubernetes"
        assert backend.config == KubernetesConfig(
            kube_namespace="hive-agents",
            kubeconfig=Path("/etc/agent-api/kubeconfig"),
            engine_timeout=7.0,
            resource_prefix="prod-",
            kube_workspace_size="5Gi",
            kube_storage_class="managed-csi",
            kube_run_as_user=10001,
            kube_image_pull_secret="acr-pull",
            kube_node_selector={"agentpool": "agents"},
            kube_tolerations=[{"key": "sandbox", "operator": "Exists"}],
            spawn_wait_seconds=12.0,
            kube_workspace_access_mode="ReadWriteOnce",
            kube_runtime_class="kata-vm-isolation",
            kube_user_namespaces=True,
        )
    finally:
        await backend.close()


def test_the_defaults_are_the_restricted_profile(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ORCHESTRATOR", "kubernetes")
    settings = Settings()
    assert settings.kube_namespace == "agents"
    assert settings.kube_run_as_non_root is True
    assert settings.kubeconfig is None
    assert settings.kube_workspace_access_mode == "auto"
    assert settings.kube_runtime_class is None
    assert settings.kube_user_namespaces is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AGENT_API_KUBE_NAMESPACE", "Not_A_Namespace"),
        ("AGENT_API_KUBE_WORKSPACE_SIZE", "lots"),
        ("AGENT_API_KUBE_WORKSPACE_ACCESS_MODE", "ReadWriteMany"),
        ("AGENT_API_KUBE_RUNTIME_CLASS", "Kata VM"),
        ("AGENT_API_KUBE_RUN_AS_USER", "0"),
        ("AGENT_API_KUBE_NODE_SELECTOR", "[1, 2]"),
        ("AGENT_API_SPAWN_WAIT_SECONDS", "-1"),
        ("AGENT_API_KUBE_FS_GROUP", "0"),
        ("AGENT_API_KUBE_INGRESS_NAMESPACES", '["Not_A_Namespace"]'),
        ("AGENT_API_KUBE_EGRESS_DENIED_CIDRS", '["10.0.0.1/8"]'),
        ("AGENT_API_KUBE_EGRESS_DENIED_CIDRS", '["not-a-range"]'),
        ("AGENT_API_KUBE_EGRESS_DENIED_CIDRS", '["0.0.0.0/0"]'),
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


async def test_the_isolation_settings_reach_the_backend(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("ORCHESTRATOR", "kubernetes")
    defaults = build_orchestrator(Settings())
    try:
        assert isinstance(defaults, KubernetesOrchestrator)
        assert defaults.config.kube_fs_group == 10001
        assert defaults.config.kube_baseline_network_policy is True
        assert defaults.config.kube_network_policy_enforced is False
        assert defaults.config.kube_ingress_namespaces == ["agent-platform"]
    finally:
        await defaults.close()
    for name, value in {
        "AGENT_API_KUBE_FS_GROUP": "3000",
        "AGENT_API_KUBE_BASELINE_NETWORK_POLICY": "false",
        "AGENT_API_KUBE_INGRESS_NAMESPACES": '["gateway", "agent-platform"]',
        "AGENT_API_KUBE_EGRESS_DENIED_CIDRS": '["192.168.0.0/16", "fd00::/8"]',
        "AGENT_API_KUBE_NETWORK_POLICY_ENFORCED": "true",
    }.items():
        clean_env.setenv(name, value)
    backend = build_orchestrator(Settings())
    try:
        assert isinstance(backend, KubernetesOrchestrator)
        config = backend.config
        assert config.kube_fs_group == 3000
        assert config.kube_baseline_network_policy is False
        assert config.kube_ingress_namespaces == ["gateway", "agent-platform"]
        assert config.kube_egress_denied_cidrs == ["192.168.0.0/16", "fd00::/8"]
        assert config.kube_network_policy_enforced is True
    finally:
        await backend.close()

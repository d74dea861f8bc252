"""The workspace claim is never mounted twice, and the operator's isolation settings reach
the pod: the builders compared as data (no API server needed)."""

from __future__ import annotations

from typing import Any

from orchestrators.config import KubernetesConfig
from orchestrators.kubernetes.api import parse_version
from orchestrators.kubernetes.objects import (
    READ_WRITE_ONCE,
    READ_WRITE_ONCE_POD,
    build_claim,
    build_deployment,
    claim_access_mode,
    deployment_name,
    dropped_pod_fields,
)
from orchestrators.models import AgentSpec, Resources

from .test_objects import AGENT_ID, RESOURCES, agent_spec, schema_of


def pod_of(settings: KubernetesConfig) -> dict[str, Any]:
    spec = agent_spec(workspace=True)
    deployment = build_deployment(
        spec,
        labels=schema_of(spec),
        name=deployment_name("hive-", "sol", spec.name),
        prefix="hive-",
        resources=RESOURCES,
        settings=settings,
    )
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    return pod


def test_auto_is_read_write_once_pod_from_kubernetes_1_27_only() -> None:
    assert claim_access_mode("auto", (1, 27)) == READ_WRITE_ONCE_POD
    assert claim_access_mode("auto", (1, 31)) == READ_WRITE_ONCE_POD
    assert claim_access_mode("auto", (2, 0)) == READ_WRITE_ONCE_POD
    assert claim_access_mode("auto", (1, 26)) == READ_WRITE_ONCE
    assert claim_access_mode("auto", (1, 20)) == READ_WRITE_ONCE
    assert claim_access_mode("auto", None) == READ_WRITE_ONCE
    # The operator's choice wins over the version, both ways.
    assert claim_access_mode(READ_WRITE_ONCE, (1, 30)) == READ_WRITE_ONCE
    assert claim_access_mode(READ_WRITE_ONCE_POD, (1, 20)) == READ_WRITE_ONCE_POD


def test_managed_clusters_versions_are_read() -> None:
    assert parse_version({"major": "1", "minor": "20"}) == (1, 20)
    assert parse_version({"major": "1", "minor": "29+", "gitVersion": "v1.29.4-eks"}) == (1, 29)
    assert parse_version({"major": "", "minor": ""}) is None
    assert parse_version({}) is None


def test_the_claim_carries_the_access_mode_asked_for() -> None:
    created = {"metadata": {"name": "hive-researcher-x", "uid": "u-1"}}
    schema = schema_of(agent_spec())
    claim = build_claim(
        prefix="hive-",
        deployment=created,
        labels=schema,
        size="1Gi",
        storage_class=None,
        access_mode=READ_WRITE_ONCE_POD,
    )
    assert claim["spec"]["accessModes"] == ["ReadWriteOncePod"]
    assert claim["metadata"]["name"] == f"hive-ws-{AGENT_ID}"
    default = build_claim(
        prefix="hive-", deployment=created, labels=schema, size="1Gi", storage_class=None
    )
    assert default["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_runtime_class_and_user_namespaces_only_when_the_operator_asks() -> None:
    plain = pod_of(KubernetesConfig())
    assert "runtimeClassName" not in plain
    assert "hostUsers" not in plain
    isolated = pod_of(
        KubernetesConfig(kube_runtime_class="kata-vm-isolation", kube_user_namespaces=True)
    )
    assert isolated["runtimeClassName"] == "kata-vm-isolation"
    assert isolated["hostUsers"] is False
    # The rest of the pod is the same restricted pod.
    assert {k: v for k, v in isolated.items() if k not in ("runtimeClassName", "hostUsers")} == (
        plain
    )


def test_a_field_the_server_dropped_is_found() -> None:
    spec = AgentSpec(name="researcher", image="hive/nanobot:1")
    sent = build_deployment(
        spec,
        labels=schema_of(spec),
        name="hive-researcher-x",
        prefix="hive-",
        resources=Resources(cpus=0.5, memory_mb=96, pids=64),
        settings=KubernetesConfig(kube_runtime_class="kata", kube_user_namespaces=True),
    )
    assert dropped_pod_fields(sent, sent) == []
    older = {"spec": {"template": {"spec": {"runtimeClassName": "kata"}}}}
    assert dropped_pod_fields(sent, older) == ["hostUsers"]
    assert dropped_pod_fields(sent, {}) == ["runtimeClassName", "hostUsers"]
    plain = build_deployment(
        spec,
        labels=schema_of(spec),
        name="hive-researcher-x",
        prefix="hive-",
        resources=Resources(cpus=0.5, memory_mb=96, pids=64),
        settings=KubernetesConfig(),
    )
    assert dropped_pod_fields(plain, {}) == []

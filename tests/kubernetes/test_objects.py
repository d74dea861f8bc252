"""The manifests the Kubernetes backend sends, compared as data (no API server needed)."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

import orchestrators.kubernetes
from orchestrators import labels as L
from orchestrators.config import KubernetesConfig
from orchestrators.kubernetes.objects import (
    SPAWNING,
    STARTED_AT,
    STOPPED_BY,
    build_claim,
    build_deployment,
    build_network_policy,
    build_secret,
    deadline_patch,
    deployment_name,
    is_label_value,
    read_metadata,
    replicas_patch,
    restart_patch,
    split_metadata,
)
from orchestrators.models import AgentSpec, Resources, StoredSpec

RESOURCES = Resources(cpus=0.5, memory_mb=96, pids=64)
AGENT_ID = "0123456789abcdef0123456789abcdef"
CREATED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
USER_TEAM = "user.agents.hive.io/team"
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def agent_spec(**extra: Any) -> AgentSpec:
    return AgentSpec.model_validate(
        {
            "name": "researcher",
            "image": "hive/nanobot:1",
            "command": ["python", "-m", "worker"],
            "env": {"LOG_LEVEL": "info"},
            "secrets": {"OPENAI_API_KEY": "sk-never-in-a-deployment"},
            "labels": {"team": "research"},
            **extra,
        }
    )


def schema_of(spec: AgentSpec, **extra: Any) -> dict[str, str]:
    return L.system_labels(
        instance="hive",
        agent_id=AGENT_ID,
        owner="sol",
        created_at=CREATED,
        spec=StoredSpec.from_spec(spec, RESOURCES),
        idempotency=None,
        **extra,
    )


def deployment_of(spec: AgentSpec, settings: KubernetesConfig | None = None) -> dict[str, Any]:
    return build_deployment(
        spec,
        labels=schema_of(spec),
        name=deployment_name("hive-", "sol", spec.name),
        prefix="hive-",
        resources=RESOURCES,
        settings=settings or KubernetesConfig(),
    )


def test_the_package_exports_the_backend_only() -> None:
    assert orchestrators.kubernetes.__all__ == ["KubernetesConfig", "KubernetesOrchestrator"]


def test_the_deployment_is_the_restricted_pod_of_the_spec() -> None:
    spec = agent_spec()
    schema = schema_of(spec)
    deployment = deployment_of(spec)
    name = deployment_name("hive-", "sol", "researcher")
    identity = {
        L.MANAGED_BY: "agent-platform",
        L.INSTANCE: "hive",
        L.ID: AGENT_ID,
    }
    labels = {
        **identity,
        L.NAME: "researcher",
        L.OWNER: "sol",
        L.CREATED_AT: "20261120T100000.000000Z",
        USER_TEAM: "research",
    }
    assert deployment == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {L.SPEC: schema[L.SPEC], SPAWNING: "true"},
        },
        "spec": {
            "replicas": 0,
            "revisionHistoryLimit": 0,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": identity},
            "template": {
                # User labels only on the Deployment: a relabel is not a rollout.
                "metadata": {"labels": {k: v for k, v in labels.items() if k != USER_TEAM}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "hostname": "researcher",
                    "restartPolicy": "Always",
                    "terminationGracePeriodSeconds": 10,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                        "fsGroup": 10001,
                        "fsGroupChangePolicy": "OnRootMismatch",
                    },
                    "containers": [
                        {
                            "name": "agent",
                            "image": "hive/nanobot:1",
                            "imagePullPolicy": "IfNotPresent",
                            "args": ["python", "-m", "worker"],
                            "env": [
                                {"name": "LOG_LEVEL", "value": "info"},
                                {
                                    "name": "OPENAI_API_KEY",
                                    "valueFrom": {
                                        "secretKeyRef": {
                                            "name": f"hive-secret-{AGENT_ID}",
                                            "key": "OPENAI_API_KEY",
                                        }
                                    },
                                },
                            ],
                            "resources": {
                                "limits": {
                                    "cpu": "500m",
                                    "memory": "96Mi",
                                    "ephemeral-storage": "2Gi",
                                },
                                "requests": {
                                    "cpu": "500m",
                                    "memory": "96Mi",
                                    "ephemeral-storage": "256Mi",
                                },
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "privileged": False,
                                "capabilities": {"drop": ["ALL"]},
                                "readOnlyRootFilesystem": False,
                                "runAsNonRoot": True,
                            },
                            "volumeMounts": [],
                        }
                    ],
                    "volumes": [],
                },
            },
        },
    }
    assert "sk-never-in-a-deployment" not in json.dumps(deployment)


def test_nothing_of_the_host_is_ever_asked_for() -> None:
    text = json.dumps(deployment_of(agent_spec(workspace=True, network="none")))
    for forbidden in (
        "hostPath",
        "hostNetwork",
        "hostPID",
        "hostIPC",
        "hostPort",
        'privileged": true',
        "serviceAccountName",
        "docker.sock",
        "Unconfined",
    ):
        assert forbidden not in text


def test_operator_settings_reach_the_pod() -> None:
    settings = KubernetesConfig(
        workspace_path="/data",
        stop_timeout=3,
        read_only_rootfs=True,
        kube_run_as_non_root=True,
        kube_run_as_user=2000,
        kube_fs_group=3000,
        kube_image_pull_secret="acr-pull",
        pull_missing_images=False,
        kube_node_selector={"agentpool": "agents"},
        kube_tolerations=[{"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}],
    )
    pod = deployment_of(agent_spec(workspace=True), settings)["spec"]["template"]["spec"]
    container = pod["containers"][0]

    assert pod["securityContext"] == {
        "seccompProfile": {"type": "RuntimeDefault"},
        "runAsNonRoot": True,
        "runAsUser": 2000,
        "runAsGroup": 2000,
        "fsGroup": 3000,
        "fsGroupChangePolicy": "OnRootMismatch",
    }
    assert pod["terminationGracePeriodSeconds"] == 3
    assert pod["imagePullSecrets"] == [{"name": "acr-pull"}]
    assert pod["nodeSelector"] == {"agentpool": "agents"}
    assert pod["tolerations"] == [{"key": "sandbox", "operator": "Exists", "effect": "NoSchedule"}]
    assert container["imagePullPolicy"] == "Never"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["volumes"] == [
        {"name": "workspace", "persistentVolumeClaim": {"claimName": f"hive-ws-{AGENT_ID}"}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}},
    ]
    assert container["volumeMounts"] == [
        {"name": "workspace", "mountPath": "/data"},
        {"name": "tmp", "mountPath": "/tmp"},
    ]


def test_root_may_be_allowed_by_the_operator_only() -> None:
    pod = deployment_of(agent_spec(), KubernetesConfig(kube_run_as_non_root=False))["spec"][
        "template"
    ]
    assert pod["spec"]["securityContext"] == {
        "seccompProfile": {"type": "RuntimeDefault"},
        "fsGroup": 10001,
        "fsGroupChangePolicy": "OnRootMismatch",
    }
    assert "runAsNonRoot" not in pod["spec"]["containers"][0]["securityContext"]


def test_no_command_keeps_the_image_defaults() -> None:
    container = deployment_of(agent_spec(command=None))["spec"]["template"]["spec"]["containers"][0]
    assert "args" not in container
    assert "command" not in container


def test_a_tiny_cpu_limit_is_never_zero() -> None:
    spec = agent_spec()
    deployment = build_deployment(
        spec,
        labels=schema_of(spec),
        name="x",
        prefix="hive-",
        resources=Resources(cpus=0.0001, memory_mb=6, pids=1),
        settings=KubernetesConfig(),
    )
    limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"cpu": "1m", "memory": "6Mi", "ephemeral-storage": "2Gi"}


def test_the_deadline_is_on_the_deployment_but_not_on_its_pods() -> None:
    spec = agent_spec(ttl_seconds=60)
    schema = schema_of(spec, expires_at=CREATED)
    deployment = build_deployment(
        spec,
        labels=schema,
        name="x",
        prefix="hive-",
        resources=RESOURCES,
        settings=KubernetesConfig(),
    )
    assert deployment["metadata"]["labels"][L.EXPIRES_AT] == "20261120T100000.000000Z"
    assert L.EXPIRES_AT not in deployment["spec"]["template"]["metadata"]["labels"]
    assert deadline_patch("20261120T110000.000000Z") == {
        "metadata": {"labels": {L.EXPIRES_AT: "20261120T110000.000000Z"}}
    }


def test_what_the_agent_owns_points_back_to_its_deployment() -> None:
    spec = agent_spec()
    schema = schema_of(spec)
    created = {"metadata": {"name": "hive-researcher-x", "uid": "u-1"}}
    owner = [
        {"apiVersion": "apps/v1", "kind": "Deployment", "name": "hive-researcher-x", "uid": "u-1"}
    ]

    def owned(kind: str) -> dict[str, str]:
        return L.owned_labels(instance="hive", agent_id=AGENT_ID, owner="sol", kind=L.Kind(kind))

    secret = build_secret(spec.secrets, prefix="hive-", deployment=created, labels=schema)
    assert secret == {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": f"hive-secret-{AGENT_ID}",
            "labels": owned("secret"),
            "ownerReferences": owner,
        },
        "data": {"OPENAI_API_KEY": base64.b64encode(b"sk-never-in-a-deployment").decode()},
    }
    claim = build_claim(
        prefix="hive-", deployment=created, labels=schema, size="2Gi", storage_class="managed-csi"
    )
    assert claim == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": f"hive-ws-{AGENT_ID}",
            "labels": owned("workspace"),
            "ownerReferences": owner,
        },
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "2Gi"}},
            "storageClassName": "managed-csi",
        },
    }
    default_class = build_claim(
        prefix="hive-", deployment=created, labels=schema, size="1Gi", storage_class=None
    )
    assert "storageClassName" not in default_class["spec"]
    policy = build_network_policy(prefix="hive-", deployment=created, labels=schema)
    assert policy == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": f"hive-isolate-{AGENT_ID}",
            "labels": owned("network-policy"),
            "ownerReferences": owner,
        },
        "spec": {
            "podSelector": {
                "matchLabels": {
                    L.MANAGED_BY: "agent-platform",
                    L.INSTANCE: "hive",
                    L.ID: AGENT_ID,
                }
            },
            "policyTypes": ["Ingress", "Egress"],
        },
    }


def test_names_are_stable_unique_per_owner_and_valid() -> None:
    assert deployment_name("hive-", "sol", "researcher") == deployment_name(
        "hive-", "sol", "researcher"
    )
    assert deployment_name("hive-", "sol", "researcher").startswith("hive-researcher-")
    names = {
        deployment_name("hive-", owner, name)
        for owner in ("sol", "bob", "a" * 63)
        for name in ("x", "researcher", "r" * 63, "r" * 62 + "s")
    }
    assert len(names) == 12
    longest = deployment_name("a" * 20, "o" * 63, "n" * 63)
    assert len(longest) <= 63
    assert all(DNS_LABEL.match(name) for name in [*names, longest])


def test_values_that_do_not_fit_a_label_become_annotations() -> None:
    spec = agent_spec()
    schema = schema_of(spec)
    schema["agents.hive.io/long"] = "x" * 64
    schema["agents.hive.io/odd"] = "not a label value"
    labels, annotations = split_metadata(schema)

    assert set(annotations) == {L.SPEC, "agents.hive.io/long", "agents.hive.io/odd"}
    assert all(is_label_value(value) for value in labels.values())
    metadata = {
        "labels": labels,
        "annotations": {**annotations, "deployment.kubernetes.io/revision": "1"},
    }
    assert read_metadata(metadata) == schema


def test_patches() -> None:
    moment = datetime(2026, 11, 20, 10, 0, 0, 500_000, tzinfo=UTC)
    assert replicas_patch(0) == {"spec": {"replicas": 0}}
    assert replicas_patch(1, spawned=True) == {
        "spec": {"replicas": 1},
        "metadata": {"annotations": {SPAWNING: None}},
    }
    # Whole seconds, like the conditions it is compared with.
    assert replicas_patch(1, started_at=moment) == {
        "spec": {"replicas": 1},
        "metadata": {"annotations": {STARTED_AT: "2026-11-20T10:00:00Z", STOPPED_BY: None}},
    }
    assert replicas_patch(0, stopped_by="ttl") == {
        "spec": {"replicas": 0},
        "metadata": {"annotations": {STOPPED_BY: "ttl"}},
    }
    assert restart_patch("2026-11-20T10:00:00+00:00", started_at=moment) == {
        "metadata": {"annotations": {STARTED_AT: "2026-11-20T10:00:00Z", STOPPED_BY: None}},
        "spec": {
            "replicas": 1,
            "template": {
                "metadata": {
                    "annotations": {
                        "kubectl.kubernetes.io/restartedAt": "2026-11-20T10:00:00+00:00"
                    }
                }
            },
        },
    }


def test_secret_values_appear_only_in_the_secret() -> None:
    spec = agent_spec(secrets={"A": SecretStr("value-a"), "B": SecretStr("value-b")})
    text = json.dumps(deployment_of(spec))
    assert "value-a" not in text
    assert "value-b" not in text
    assert L.SPEC in deployment_of(spec)["metadata"]["annotations"]
    stored = json.loads(deployment_of(spec)["metadata"]["annotations"][L.SPEC])
    assert stored["secret_names"] == ["A", "B"]

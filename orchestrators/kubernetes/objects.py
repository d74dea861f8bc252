"""Pure functions that build what is sent to the Kubernetes API server; no I/O here.

This is the only place an agent's Kubernetes objects are described, as plain manifests
(dicts, the JSON the API server receives):

- a Deployment (one replica, ``Recreate``), named deterministically from its owner and
  name so that the API server's "already exists" makes names unique per owner atomically;
- a Secret with the agent's secret values, referenced from the pod (``secretKeyRef``),
  never written into the Deployment;
- a PersistentVolumeClaim for the workspace, never mounted by two pods at once: its access
  mode is ``ReadWriteOncePod`` where the cluster has it (Kubernetes >= 1.27,
  :func:`claim_access_mode`), else ``ReadWriteOnce``, which only keeps it on one node; the
  Deployment's ``Recreate`` strategy then keeps a rollout from running two pods (two pods
  on one node could share a ``ReadWriteOnce`` claim);
- a NetworkPolicy: the baseline of ``network`` (``"default"``), or one that denies all
  traffic, for ``"network": "none"``.

The pod always meets the Pod Security Standard "restricted": no privilege escalation, all
capabilities dropped, the runtime's default seccomp profile, no service-account token,
resource requests and limits, no host namespace, port or path; its workspace is owned by a
non-root group (``fsGroup``) so that it is writable whatever the disk was made with. The
operator may add a ``runtimeClassName`` (a sandboxed runtime such as Kata) and
``hostUsers: false`` (the pod in a user namespace of its own); a server that does not keep
what was asked for is found by :func:`dropped_pod_fields`. As on Docker
(``orchestrators.docker.objects``), a request can ask for nothing else and no part of it is
copied into a manifest as is.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import SecretStr

from .. import labels as L
from ..config import KubernetesConfig
from ..models import AgentSpec, Resources, StoredSpec
from ..timestamps import parse_rfc3339
from ..types import JSON

__all__ = [
    "CONTAINER",
    "READ_WRITE_ONCE",
    "READ_WRITE_ONCE_POD",
    "RESTARTED_AT",
    "SPAWNING",
    "STARTED_AT",
    "STOPPED_BY",
    "Manifest",
    "build_claim",
    "created_at",
    "build_deployment",
    "build_network_policy",
    "build_secret",
    "claim_access_mode",
    "claim_name",
    "deadline_patch",
    "deployment_name",
    "dropped_pod_fields",
    "encode_secrets",
    "is_label_value",
    "network_policy",
    "network_policy_name",
    "owned_metadata",
    "owner_reference",
    "read_metadata",
    "replicas_patch",
    "restart_patch",
    "secret_name",
    "selector_labels",
    "split_metadata",
]

Manifest = JSON  # what is sent to the API server

CONTAINER = "agent"
SPAWNING = L.SPAWNING
# The annotation ``kubectl rollout restart`` writes: changing it rolls out a new pod.
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
STARTED_AT = L.STARTED_AT
STOPPED_BY = L.STOPPED_BY
_TMP_SIZE = "64Mi"
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_OUR_KEYS = (L.SYSTEM_PREFIX, L.USER_PREFIX)
# Keys the pod template leaves out: a label that changes (the deadline, the revision, user
# labels) must not change the template, or every renewal or relabel would roll out a pod.
_NOT_ON_PODS = frozenset({L.EXPIRES_AT, L.REVISION})
READ_WRITE_ONCE_POD = "ReadWriteOncePod"
READ_WRITE_ONCE = "ReadWriteOnce"
# On by default from this version (beta in 1.27, GA in 1.29); 1.22 to 1.26 had it behind a
# feature gate that a managed cluster does not turn on.
_ONCE_POD_SINCE = (1, 27)


# -- names ----------------------------------------------------------------------------------


def deployment_name(prefix: str, owner: str, name: str) -> str:
    """Unique per owner and name, stable, and a DNS-1123 label (at most 63 characters).

    The readable part is the agent's name (cut to 30 characters); the digest of owner and
    name tells apart owners and names that share those 30 characters.
    """
    digest = hashlib.sha256(f"{owner}\x00{name}".encode()).hexdigest()[:12]
    return f"{prefix}{name[:30]}-{digest}"


def secret_name(prefix: str, agent_id: str) -> str:
    return f"{prefix}secret-{agent_id}"


def claim_name(prefix: str, agent_id: str) -> str:
    return f"{prefix}ws-{agent_id}"


def network_policy_name(prefix: str, agent_id: str) -> str:
    return f"{prefix}isolate-{agent_id}"


# -- labels and annotations -------------------------------------------------------------------


def created_at(obj: Manifest) -> datetime | None:
    """When the API server created ``obj`` (its ``creationTimestamp``), if it says."""
    return parse_rfc3339((obj.get("metadata") or {}).get("creationTimestamp"))


def is_label_value(value: str) -> bool:
    return len(value) <= 63 and _LABEL_VALUE.match(value) is not None


def split_metadata(labels: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The platform's labels as (labels, annotations): what does not fit a label is annotated."""
    fitting: dict[str, str] = {}
    annotations: dict[str, str] = {}
    for key, value in labels.items():
        if key in L.ANNOTATION_KEYS or not is_label_value(value):
            annotations[key] = value
        else:
            fitting[key] = value
    return fitting, annotations


def read_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    """The platform's labels back from an object's labels and the platform's annotations."""
    annotations = metadata.get("annotations") or {}
    labels = {k: str(v) for k, v in annotations.items() if k.startswith(_OUR_KEYS)}
    labels.update(metadata.get("labels") or {})
    return labels


def selector_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {key: labels[key] for key in (L.MANAGED_BY, L.INSTANCE, L.ID)}


def owner_reference(deployment: Manifest) -> dict[str, Any]:
    """Makes an object a dependent of the agent's Deployment: the garbage collector removes
    it with the Deployment even if an explicit delete never happens."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
        "uid": deployment["metadata"]["uid"],
    }


# -- the Deployment ---------------------------------------------------------------------------


def _quantities(resources: Resources) -> dict[str, str]:
    return {
        "cpu": f"{max(1, round(resources.cpus * 1000))}m",
        "memory": f"{resources.memory_mb}Mi",
    }


def _secret_names(spec: AgentSpec | StoredSpec) -> list[str]:
    return sorted(spec.secrets) if isinstance(spec, AgentSpec) else list(spec.secret_names)


def _env(spec: AgentSpec | StoredSpec, secret: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in spec.env.items()]
    env += [
        {"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}
        for key in _secret_names(spec)
    ]
    return env


def build_deployment(
    spec: AgentSpec | StoredSpec,
    *,
    labels: Mapping[str, str],
    name: str,
    prefix: str,
    resources: Resources,
    settings: KubernetesConfig,
) -> Manifest:
    """The agent's Deployment, created with zero replicas and the ``SPAWNING`` mark: the
    spawn scales it to one once the objects it refers to exist. A change builds it again
    from the stored spec (secret names only) and sends what differs."""
    fitting, annotations = split_metadata(labels)
    agent_id = labels[L.ID]
    pod_labels = {
        k: v
        for k, v in fitting.items()
        if k not in _NOT_ON_PODS and not k.startswith(L.USER_PREFIX)
    }
    quantities = _quantities(resources)
    requests = {**quantities, "ephemeral-storage": settings.kube_ephemeral_storage_request}
    limits = {**quantities, "ephemeral-storage": settings.kube_ephemeral_storage_limit}
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": spec.image,
        "imagePullPolicy": "IfNotPresent" if settings.pull_missing_images else "Never",
        "env": _env(spec, secret_name(prefix, agent_id)),
        "resources": {"limits": limits, "requests": requests},
        "securityContext": _container_security(settings),
        "volumeMounts": [],
    }
    if spec.command:
        # Like Docker's command: the image's entrypoint stays, its default arguments go.
        container["args"] = list(spec.command)
    volumes: list[dict[str, Any]] = []
    if spec.workspace:
        volumes.append(
            {
                "name": "workspace",
                "persistentVolumeClaim": {"claimName": claim_name(prefix, agent_id)},
            }
        )
        container["volumeMounts"].append(
            {"name": "workspace", "mountPath": settings.workspace_path}
        )
    if settings.read_only_rootfs:
        volumes.append({"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": _TMP_SIZE}})
        container["volumeMounts"].append({"name": "tmp", "mountPath": "/tmp"})  # noqa: S108
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostname": spec.name,
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": settings.stop_timeout,
        "securityContext": _pod_security(settings),
        "containers": [container],
        "volumes": volumes,
    }
    if settings.kube_image_pull_secret:
        pod["imagePullSecrets"] = [{"name": settings.kube_image_pull_secret}]
    if settings.kube_node_selector:
        pod["nodeSelector"] = dict(settings.kube_node_selector)
    if settings.kube_tolerations:
        pod["tolerations"] = [dict(t) for t in settings.kube_tolerations]
    if settings.kube_runtime_class:
        pod["runtimeClassName"] = settings.kube_runtime_class
    if settings.kube_user_namespaces:
        pod["hostUsers"] = False
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "labels": fitting,
            "annotations": {**annotations, SPAWNING: "true"},
        },
        "spec": {
            "replicas": 0,
            "revisionHistoryLimit": 0,
            # One pod at a time, also during a rollout: the old pod is gone before the new
            # one starts, so the workspace claim is never mounted twice (ReadWriteOnce alone
            # allows two pods on one node), and a restart is a stop then a start, as on Docker.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector_labels(labels)},
            "template": {"metadata": {"labels": pod_labels}, "spec": pod},
        },
    }


def dropped_pod_fields(sent: Manifest, stored: Manifest) -> list[str]:
    """The operator's optional pod fields that ``sent`` asked for and the API server did not
    keep in ``stored``: a server older than the field drops it without a word."""
    asked = sent["spec"]["template"]["spec"]
    kept = ((stored.get("spec") or {}).get("template") or {}).get("spec") or {}
    return [key for key in ("runtimeClassName", "hostUsers") if key in asked and key not in kept]


def _pod_security(settings: KubernetesConfig) -> dict[str, Any]:
    # The workspace belongs to the group ``fsGroup`` (the kubelet makes it group-writable
    # and adds the group to the agent's process), whatever user the image runs as: a fresh
    # cloud disk is owned by root. ``OnRootMismatch``: only a disk not yet owned by it is
    # walked, so a big workspace does not slow every start.
    security: dict[str, Any] = {
        "seccompProfile": {"type": "RuntimeDefault"},
        "fsGroup": settings.kube_fs_group,
        "fsGroupChangePolicy": "OnRootMismatch",
    }
    if settings.kube_run_as_non_root:
        security["runAsNonRoot"] = True
    if settings.kube_run_as_user is not None:
        security["runAsUser"] = settings.kube_run_as_user
        security["runAsGroup"] = settings.kube_run_as_user
    return security


def _container_security(settings: KubernetesConfig) -> dict[str, Any]:
    security: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": settings.read_only_rootfs,
    }
    if settings.kube_run_as_non_root:
        security["runAsNonRoot"] = True
    return security


# -- what the agent owns ----------------------------------------------------------------------


def owned_metadata(
    name: str, deployment: Manifest, labels: Mapping[str, str], kind: L.Kind
) -> dict[str, Any]:
    return {
        "name": name,
        "labels": L.owned_labels(
            instance=labels[L.INSTANCE],
            agent_id=labels[L.ID],
            owner=labels[L.OWNER],
            kind=kind,
        ),
        "ownerReferences": [owner_reference(deployment)],
    }


def encode_secrets(values: Mapping[str, SecretStr]) -> dict[str, str]:
    """Secret values as a Secret's ``data`` (base64), by name."""
    return {
        key: base64.b64encode(value.get_secret_value().encode()).decode()
        for key, value in sorted(values.items())
    }


def build_secret(
    values: Mapping[str, SecretStr],
    *,
    prefix: str,
    deployment: Manifest,
    labels: Mapping[str, str],
) -> Manifest:
    """The agent's secret values, owned by its Deployment."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": owned_metadata(
            secret_name(prefix, labels[L.ID]), deployment, labels, L.Kind.SECRET
        ),
        "data": encode_secrets(values),
    }


def claim_access_mode(setting: str, server_version: tuple[int, int] | None) -> str:
    """The access mode of workspace claims: the operator's, or for ``"auto"`` the strictest
    the server has (``None``: its version is unknown, so the one every server has)."""
    if setting != "auto":
        return setting
    if server_version is not None and server_version >= _ONCE_POD_SINCE:
        return READ_WRITE_ONCE_POD
    return READ_WRITE_ONCE


def build_claim(
    *,
    prefix: str,
    deployment: Manifest,
    labels: Mapping[str, str],
    size: str,
    storage_class: str | None,
    access_mode: str = READ_WRITE_ONCE,
) -> Manifest:
    """The workspace claim, owned by the Deployment; it survives stop and start."""
    spec: dict[str, Any] = {
        "accessModes": [access_mode],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class:
        spec["storageClassName"] = storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": owned_metadata(
            claim_name(prefix, labels[L.ID]), deployment, labels, L.Kind.WORKSPACE
        ),
        "spec": spec,
    }


def build_network_policy(
    *, prefix: str, deployment: Manifest, labels: Mapping[str, str]
) -> Manifest:
    """No traffic in or out of the agent's pod (``"network": "none"``)."""
    return network_policy(network_policy_name(prefix, labels[L.ID]), deployment, labels)


def network_policy(
    name: str, deployment: Manifest, labels: Mapping[str, str], **rules: list[Any]
) -> Manifest:
    """A NetworkPolicy owned by the agent, selecting its pod, for both directions: only
    what ``rules`` (``ingress``, ``egress``) allow passes, nothing without them."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": owned_metadata(name, deployment, labels, L.Kind.NETWORK_POLICY),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(labels)},
            "policyTypes": ["Ingress", "Egress"],
            **rules,
        },
    }


# -- patches ----------------------------------------------------------------------------------


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def replicas_patch(
    replicas: int,
    *,
    spawned: bool = False,
    started_at: datetime | None = None,
    stopped_by: str | None = None,
) -> Manifest:
    """Scale the agent (merge patch); ``spawned`` also drops the ``SPAWNING`` mark,
    ``started_at`` stamps ``STARTED_AT`` (and forgets who stopped it), ``stopped_by`` says
    who scales it to 0."""
    patch: Manifest = {"spec": {"replicas": replicas}}
    annotations: dict[str, str | None] = {}
    if spawned:
        annotations[SPAWNING] = None
    if started_at is not None:
        annotations |= {STARTED_AT: _stamp(started_at), STOPPED_BY: None}
    if stopped_by is not None:
        annotations[STOPPED_BY] = stopped_by
    if annotations:
        patch["metadata"] = {"annotations": annotations}
    return patch


def restart_patch(stamp: str, *, started_at: datetime) -> Manifest:
    """A new pod from the same template (what ``kubectl rollout restart`` does), running."""
    return {
        "metadata": {"annotations": {STARTED_AT: _stamp(started_at), STOPPED_BY: None}},
        "spec": {
            "replicas": 1,
            "template": {"metadata": {"annotations": {RESTARTED_AT: stamp}}},
        },
    }


def deadline_patch(deadline: str) -> Manifest:
    """A new TTL deadline: on the Deployment only, so that no new pod is rolled out."""
    return {"metadata": {"labels": {L.EXPIRES_AT: deadline}}}

"""What the operator configures about the backends: each knob declared once, here.

A field's name is its environment variable without the ``AGENT_API_`` prefix
(``stop_timeout`` is ``AGENT_API_STOP_TIMEOUT``), its default and its bounds are the only
ones: ``agent_platform.settings.Settings`` inherits these classes, reads them from the
environment, and hands each backend its section whole (``section``). A knob both backends
read is a field of ``EngineConfig``; one backend's, a field of ``DockerConfig`` or
``KubernetesConfig``.

This module is the Kubernetes backend's only part that a Docker deployment loads: it imports
no engine client.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from .models import DNS1123_LABEL

__all__ = ["DEFAULT_DENIED_CIDRS", "DockerConfig", "EngineConfig", "KubernetesConfig"]

# Private, shared (CGNAT) and link-local ranges, IPv4 and IPv6: what an agent on Kubernetes
# may not reach by default (the node's metadata endpoint is denied whatever this says).
DEFAULT_DENIED_CIDRS: tuple[str, ...] = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",  # carrier-grade NAT, also AKS's default overlay range for pods
    "169.254.0.0/16",  # link-local, the metadata endpoint among it
    "fc00::/7",  # unique local
    "fe80::/10",  # link-local
)
_TOLERATION_FIELDS = frozenset({"key", "operator", "value", "effect", "tolerationSeconds"})


def _mebibytes(quantity: str) -> int:
    """``256Mi`` or ``2Gi`` in MiB (the only forms the settings accept)."""
    return int(quantity[:-2]) * (1024 if quantity.endswith("Gi") else 1)


class EngineConfig(BaseModel):
    """What every backend reads."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    engine_timeout: float = Field(default=30.0, gt=0, description="seconds per engine call")
    engine_threads: int = Field(default=16, ge=1, le=256)
    max_log_streams: int = Field(
        default=64, ge=1, le=4096, description="log streams followed at once, in all"
    )
    resource_prefix: str = Field(default="hive-", pattern=r"^[a-z0-9][a-z0-9-]{0,19}$")
    pull_missing_images: bool = True
    workspace_path: str = Field(default="/workspace", pattern=r"^/[A-Za-z0-9_./-]*$")
    stop_timeout: int = Field(default=10, ge=0, le=3600)
    read_only_rootfs: bool = Field(
        default=False, description="agents get a read-only root filesystem (and a /tmp tmpfs)"
    )
    watch_heartbeat: float = Field(
        default=5.0,
        ge=0.5,
        le=300,
        description="seconds of silence on the engine's watch before the engine is pinged "
        "(a ping waits as long); no answer: the watch counts as broken and reads go to the "
        "engine, so reads are stale for at most twice this",
    )
    orphan_grace_seconds: float = Field(
        default=300.0,
        ge=0,
        description="age before a leftover without its agent is removed (an in-flight spawn's "
        "objects are younger)",
    )

    @classmethod
    def section(cls, source: EngineConfig) -> Self:
        """The part of ``source`` (a class that inherits this one) that this class declares,
        with the values already validated there."""
        return cls.model_construct(**{name: getattr(source, name) for name in cls.model_fields})


class DockerConfig(EngineConfig):
    """What the Docker backend reads: how to reach the engine and where agents go."""

    docker_host: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DOCKER_HOST", "AGENT_API_DOCKER_HOST", "docker_host"),
        description="engine address; default: the local socket",
    )
    network: str = Field(
        default="hive-net",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$",
        description="stem of the owners' agent networks: owner o's agents join <network>.<o>",
    )
    service_container: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="agent-api's own container; set, it joins every owner's agent network "
        "(as agent-api) so that agents can call the API; unset, agents cannot reach it",
    )
    agent_user: str = Field(
        default="10001:10001",
        pattern=r"^([0-9]{1,10}:[0-9]{1,10})?$",
        description="uid:gid Docker agents run as (their workspace is theirs); empty: the "
        "image's own user",
    )
    pull_timeout: float = Field(
        default=300.0, gt=0, le=3600, description="seconds one image pull may take, in all"
    )
    pull_threads: int = Field(default=4, ge=1, le=64, description="image pulls at once")
    max_pulls_per_owner: int = Field(
        default=1, ge=1, le=64, description="image pulls one owner's spawns may run at once"
    )
    allow_private_registries: bool = Field(
        default=False,
        description="allow pulls from loopback, private or link-local registry addresses",
    )
    agent_log_driver: Literal["json-file", "local"] = Field(
        default="json-file", description="log driver of Docker agents (both rotate)"
    )
    agent_log_max_size: str = Field(
        default="10m", pattern=r"^[1-9][0-9]{0,5}[kmg]$", description="size of one log file"
    )
    agent_log_max_files: int = Field(default=3, ge=1, le=100, description="log files kept")


class KubernetesConfig(EngineConfig):
    """What the Kubernetes backend reads: the cluster, the namespace, how pods are built and
    fenced."""

    kube_namespace: str = Field(
        default="agents", pattern=DNS1123_LABEL, description="namespace of the agents (Kubernetes)"
    )
    kubeconfig: Path | None = Field(
        default=None,
        description="kubeconfig file; default: in-cluster in a pod, else KUBECONFIG/~/.kube/config",
    )
    kube_context: str | None = Field(default=None, description="kubeconfig context to use")
    kube_image_pull_secret: str | None = Field(
        default=None, pattern=DNS1123_LABEL, description="pull secret in the namespace (ACR)"
    )
    kube_node_selector: dict[str, str] = Field(
        default_factory=dict, description="node labels agents must run on; JSON object"
    )
    kube_tolerations: list[dict[str, str | int]] = Field(
        default_factory=list, description="tolerations of agent pods; JSON list of objects"
    )
    kube_run_as_non_root: bool = Field(
        default=True, description="agent pods must run as a non-root user (restricted profile)"
    )
    kube_run_as_user: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="user (and group) id agent pods run as"
    )
    kube_fs_group: int = Field(
        default=10001,
        ge=1,
        le=2**31 - 1,
        description="group that owns agents' workspaces (fsGroup), so that they are writable",
    )
    kube_baseline_network_policy: bool = Field(
        default=True,
        description="every agent on the default network gets the baseline NetworkPolicy",
    )
    kube_ingress_namespaces: list[Annotated[str, Field(pattern=DNS1123_LABEL)]] = Field(
        default_factory=lambda: ["agent-platform"],
        description="namespaces whose pods may connect to agents (besides the owner's own "
        "agents); JSON list",
    )
    kube_egress_denied_cidrs: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DENIED_CIDRS),
        description="address ranges agents may not reach (the metadata endpoint always); JSON list",
    )
    kube_network_policy_enforced: bool = Field(
        default=False,
        description='a policy engine enforces NetworkPolicies; without it "network": "none" '
        "is refused",
    )
    kube_storage_class: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
        description="storage class of workspace claims; default: the cluster's default",
    )
    kube_workspace_size: str = Field(
        default="1Gi", pattern=r"^[1-9][0-9]{0,6}(Mi|Gi|Ti)$", description="size of a workspace"
    )
    kube_retries: int = Field(
        default=2, ge=0, le=10, description="retries of a failed idempotent Kubernetes API call"
    )
    spawn_wait_seconds: float = Field(
        default=30.0, ge=0, le=600, description="how long spawn/start wait for a ready pod"
    )
    # Scratch space (writable layer, logs, emptyDir): the kubelet evicts a pod past the
    # limit, before it can push its node into DiskPressure.
    kube_ephemeral_storage_request: str = Field(
        default="256Mi",
        pattern=r"^[1-9][0-9]{0,6}(Mi|Gi)$",
        description="ephemeral-storage request of agent pods",
    )
    kube_ephemeral_storage_limit: str = Field(
        default="2Gi",
        pattern=r"^[1-9][0-9]{0,6}(Mi|Gi)$",
        description="ephemeral-storage limit of agent pods (evicted past it)",
    )
    kube_workspace_access_mode: Literal["auto", "ReadWriteOncePod", "ReadWriteOnce"] = Field(
        default="auto",
        description="access mode of workspace claims; auto: ReadWriteOncePod where the "
        "cluster has it (Kubernetes >= 1.27), else ReadWriteOnce",
    )
    kube_runtime_class: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$",
        description="runtimeClassName of agent pods (e.g. kata-vm-isolation on AKS Pod "
        "Sandboxing); unset: the cluster's default runtime",
    )
    kube_user_namespaces: bool = Field(
        default=False,
        description="agent pods in a user namespace of their own (hostUsers: false); needs "
        "a cluster and nodes that support it",
    )

    @field_validator("kube_tolerations")
    @classmethod
    def _tolerations(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for toleration in value:
            unknown = sorted(set(toleration) - _TOLERATION_FIELDS)
            if unknown:
                raise ValueError(f"unknown toleration field(s) {', '.join(unknown)}")
        return value

    @field_validator("kube_egress_denied_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                network = ipaddress.ip_network(cidr, strict=True)
            except ValueError as exc:
                raise ValueError(f"{cidr!r} is not a network address range: {exc}") from None
            if network.prefixlen == 0:
                raise ValueError(f"{cidr!r} would deny every address: use network none")
        return value

    @model_validator(mode="after")
    def _request_within_limit(self) -> Self:
        request = _mebibytes(self.kube_ephemeral_storage_request)
        if request > _mebibytes(self.kube_ephemeral_storage_limit):
            raise ValueError("AGENT_API_KUBE_EPHEMERAL_STORAGE_REQUEST exceeds its limit")
        return self

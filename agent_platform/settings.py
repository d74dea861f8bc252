"""The one settings class of agent-api, read from the environment and an optional ``.env``.

Unsafe configurations are refused here, before anything starts: no key at all, a weak or
placeholder key (``keyrules``), or an unknown orchestrator.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrators.models import DNS1123_LABEL, Resources

from .keyrules import MIN_KEY_LENGTH, weakness

__all__ = ["Settings"]

# Private, shared (CGNAT) and link-local ranges, IPv4 and IPv6: what an agent on Kubernetes
# may not reach by default (the node's metadata endpoint is denied whatever this says).
DENIED_CIDRS = (
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "fc00::/7",
    "fe80::/10",
)


def _mebibytes(quantity: str) -> int:
    """``256Mi`` or ``2Gi`` in MiB (the only forms the settings accept)."""
    return int(quantity[:-2]) * (1024 if quantity.endswith("Gi") else 1)


class Settings(BaseSettings):
    """Every variable the service reads. Names are ``AGENT_API_<FIELD>`` unless noted."""

    model_config = SettingsConfigDict(
        env_prefix="AGENT_API_", env_file=".env", extra="ignore", frozen=True
    )

    key: SecretStr | None = Field(
        default=None,
        description=f"the admin API key (AGENT_API_KEY); at least {MIN_KEY_LENGTH} random "
        "characters, never the .env.example placeholder",
    )
    owner: str = Field(
        default="admin", pattern=DNS1123_LABEL, description="owner recorded for the admin key"
    )
    keys_file: Path | None = Field(
        default=None, description="JSON or YAML file of further keys (hashed), see README"
    )
    orchestrator: Literal["docker", "kubernetes"] = Field(
        default="docker", validation_alias=AliasChoices("ORCHESTRATOR", "AGENT_API_ORCHESTRATOR")
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    docker_host: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DOCKER_HOST", "AGENT_API_DOCKER_HOST"),
        description="engine address; default: the local socket",
    )
    engine_timeout: float = Field(default=30.0, gt=0, description="seconds per engine call")
    engine_threads: int = Field(default=16, ge=1, le=256)
    max_log_streams: int = Field(
        default=64, ge=1, le=4096, description="log streams followed at once, in all"
    )
    max_follows_per_key: int = Field(
        default=4, ge=1, description="log streams one key may follow at once (429 past it)"
    )
    max_follows_per_owner: int = Field(
        default=8, ge=1, description="log streams one owner's keys may follow at once"
    )
    follow_max_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="how long one follow may last; then it ends and clients reconnect with since=",
    )
    retry_after: int = Field(default=5, ge=1, description="Retry-After seconds on 503")

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
    reserved_names: list[str] = Field(
        default_factory=list,
        description="agent names refused besides agent-api and sol (the platform's services); "
        "JSON list",
    )
    resource_prefix: str = Field(default="hive-", pattern=r"^[a-z0-9][a-z0-9-]{0,19}$")
    pull_missing_images: bool = True
    workspace_path: str = Field(default="/workspace", pattern=r"^/[A-Za-z0-9_./-]*$")
    stop_timeout: int = Field(default=10, ge=0, le=3600)
    agent_user: str = Field(
        default="10001:10001",
        pattern=r"^([0-9]{1,10}:[0-9]{1,10})?$",
        description="uid:gid Docker agents run as (their workspace is theirs); empty: the "
        "image's own user",
    )

    default_cpus: float = Field(default=1.0, gt=0)
    default_memory_mb: int = Field(default=512, ge=6)
    default_pids: int = Field(default=256, ge=1)
    max_cpus: float = Field(default=4.0, gt=0)
    max_memory_mb: int = Field(default=8192, ge=6)
    max_pids: int = Field(default=4096, ge=1)
    allowed_images: list[str] = Field(
        default_factory=lambda: ["*"], description="glob patterns; JSON list in the env"
    )

    sweep_interval: float = Field(
        default=10.0, ge=0, description="seconds between TTL/leftover sweeps; 0: never sweep"
    )
    orphan_grace_seconds: float = Field(
        default=300.0, ge=0, description="age before a volume without its agent is removed"
    )
    max_agents_per_owner: int = Field(
        default=100, ge=0, description="agents one owner may have at once; 0: no limit"
    )
    read_only_rootfs: bool = Field(
        default=False, description="agents get a read-only root filesystem (and a /tmp tmpfs)"
    )
    max_body_bytes: int = Field(default=262_144, ge=1024, description="request body limit")
    max_spawn_env_bytes: int = Field(
        default=65_536,
        ge=1024,
        description="bytes of env, secrets and labels (names and values) in one spawn; 422 past it",
    )
    agent_cache_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=0,
        description="budget of the built agent views kept in memory (least recently used go)",
    )
    keep_alive: int = Field(
        default=30,
        ge=1,
        description="seconds an idle HTTP keep-alive connection stays open; above any client's "
        "pool idle time, so a client never reuses a connection the server is closing",
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="seconds a client has to send a request's headers (then it is disconnected)",
    )
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="seconds a client has to send a request's body, from the end of its headers",
    )
    max_connections: int = Field(
        default=500,
        ge=1,
        description="open HTTP connections; past it a new one is answered 503 and closed",
    )
    rate_limit_per_minute: float = Field(
        default=0, ge=0, description="requests a minute per key; 0: no limit"
    )
    rate_limit_burst: int = Field(default=30, ge=1)
    audit_file: Path | None = Field(
        default=None, description="also append audit records (JSON lines) to this file"
    )

    # -- limits that keep one key or owner from starving the others (README "Limits") ----
    max_slow_calls_per_key: int = Field(
        default=4, ge=1, le=1024, description="stops/restarts one key may have in flight"
    )
    max_slow_calls_per_owner: int = Field(
        default=8, ge=1, le=4096, description="stops/restarts in flight on one owner's agents"
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
    max_cpus_per_owner: float | None = Field(
        default=None, gt=0, description="CPUs all of one owner's agents may ask for; unset: off"
    )
    max_memory_mb_per_owner: int | None = Field(
        default=None, ge=6, description="MiB all of one owner's agents may ask for; unset: off"
    )

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
        default_factory=lambda: list(DENIED_CIDRS),
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

    log_level: str = "INFO"
    log_json: bool = True

    cursor_secret: SecretStr | None = Field(
        default=None,
        description="signs list cursors; default: derived from AGENT_API_KEY (the same on "
        "every replica), or random per process without an admin key",
    )
    expose_metrics: bool = Field(default=True, description="serve /metrics without a key")
    expose_openapi: bool = Field(default=True, description="serve /openapi.json without a key")
    expose_docs: bool = Field(
        default=False, description="serve /docs and /redoc (needs AGENT_API_EXPOSE_OPENAPI)"
    )

    @field_validator("key")
    @classmethod
    def _key_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        reason = weakness(value.get_secret_value())
        if reason is not None:
            raise ValueError(f"AGENT_API_KEY is refused: {reason}")
        return value

    @field_validator("cursor_secret")
    @classmethod
    def _cursor_secret_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (reason := weakness(value.get_secret_value())) is not None:
            raise ValueError(f"AGENT_API_CURSOR_SECRET is refused: {reason}")
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
    def _needs_a_key(self) -> Settings:
        if self.key is None and self.keys_file is None:
            raise ValueError(
                "no API key configured: set AGENT_API_KEY (or AGENT_API_KEYS_FILE); "
                "the service does not run without authentication"
            )
        if self.expose_docs and not self.expose_openapi:
            raise ValueError(
                "AGENT_API_EXPOSE_DOCS needs AGENT_API_EXPOSE_OPENAPI: the docs page reads it"
            )
        for field in ("cpus", "memory_mb", "pids"):
            if getattr(self, f"default_{field}") > getattr(self, f"max_{field}"):
                raise ValueError(f"AGENT_API_DEFAULT_{field.upper()} exceeds its maximum")
        if _mebibytes(self.kube_ephemeral_storage_request) > _mebibytes(
            self.kube_ephemeral_storage_limit
        ):
            raise ValueError("AGENT_API_KUBE_EPHEMERAL_STORAGE_REQUEST exceeds its limit")
        return self

    @property
    def default_resources(self) -> Resources:
        return Resources(
            cpus=self.default_cpus, memory_mb=self.default_memory_mb, pids=self.default_pids
        )

    @property
    def max_resources(self) -> Resources:
        return Resources(cpus=self.max_cpus, memory_mb=self.max_memory_mb, pids=self.max_pids)

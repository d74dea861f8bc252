"""Pure functions that build what is sent to the Docker engine; no I/O here.

This is the only place a container is described. The hardened settings are not options:
every agent gets all capabilities dropped, no-new-privileges, memory (without extra swap),
CPU and pids limits, the platform's network and no mount but its own named volume. The
request schema cannot express anything else, and nothing from a request is forwarded as is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..models import AgentSpec, Resources

__all__ = [
    "ContainerRequest",
    "LogRotation",
    "build_container",
    "container_name",
    "volume_name",
]

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ContainerRequest:
    """Keyword arguments for ``APIClient.create_container``."""

    image: str
    name: str
    command: list[str] | None
    environment: list[str]
    labels: dict[str, str]
    hostname: str
    host_config: dict[str, Any]
    networking_config: dict[str, Any]
    user: str | None = None

    def kwargs(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "name": self.name,
            "command": self.command,
            "environment": self.environment,
            "labels": self.labels,
            "hostname": self.hostname,
            "host_config": self.host_config,
            "networking_config": self.networking_config,
            "user": self.user,
        }


@dataclass(frozen=True, slots=True)
class LogRotation:
    """How the engine keeps an agent's output: ``max_files`` files of ``max_size`` at most,
    so that one chatty agent cannot fill the host's disk."""

    driver: str = "json-file"  # or "local"; both rotate
    max_size: str = "10m"
    max_files: int = 3

    def log_config(self) -> dict[str, Any]:
        return {
            "Type": self.driver,
            "Config": {"max-size": self.max_size, "max-file": str(self.max_files)},
        }


def container_name(prefix: str, owner: str, name: str) -> str:
    """Unique per owner and name; '.' cannot occur in either part, so no two pairs collide."""
    return f"{prefix}{owner}.{name}"


def volume_name(prefix: str, agent_id: str) -> str:
    return f"{prefix}ws-{agent_id}"


def build_container(
    spec: AgentSpec,
    *,
    labels: dict[str, str],
    owner: str,
    resources: Resources,
    prefix: str,
    network: str,
    volume: str | None,
    workspace_path: str,
    read_only_rootfs: bool = False,
    user: str | None = None,
    log: LogRotation | None = None,
) -> ContainerRequest:
    """The full container description for one agent."""
    environment = [f"{key}={value}" for key, value in spec.env.items()]
    environment += [f"{key}={value.get_secret_value()}" for key, value in spec.secrets.items()]
    memory = resources.memory_mb * _MIB
    network_mode = "none" if spec.network == "none" else network
    host_config: dict[str, Any] = {
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges"],
        "Privileged": False,
        "NanoCpus": int(resources.cpus * 1e9),
        "Memory": memory,
        "MemorySwap": memory,
        "PidsLimit": resources.pids,
        "RestartPolicy": {"Name": spec.restart_policy, "MaximumRetryCount": 0},
        "NetworkMode": network_mode,
        "Mounts": [],
    }
    if log is not None:
        host_config["LogConfig"] = log.log_config()
    if read_only_rootfs:
        host_config["ReadonlyRootfs"] = True
        host_config["Tmpfs"] = {"/tmp": "rw,nosuid,nodev,size=64m"}  # noqa: S108
    if volume is not None:
        host_config["Mounts"] = [
            {"Type": "volume", "Source": volume, "Target": workspace_path, "ReadOnly": False}
        ]
    return ContainerRequest(
        image=spec.image,
        name=container_name(prefix, owner, spec.name),
        command=list(spec.command) if spec.command else None,
        environment=environment,
        labels=labels,
        hostname=spec.name,
        host_config=host_config,
        networking_config=(
            {"EndpointsConfig": {}}
            if network_mode == "none"
            else {"EndpointsConfig": {network: {"Aliases": [spec.name]}}}
        ),
        user=user or None,
    )

"""The typed shapes every backend speaks: what to spawn, what an agent looks like, log options.

The spawn schema is strict and closed: it has no field for privileged mode, host paths,
devices, capabilities, host namespaces, security options, cgroup parent, host ports or extra
networks, so none of them can be asked for, and unknown fields are rejected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = [
    "DNS1123_LABEL",
    "MAX_TTL_SECONDS",
    "Agent",
    "AgentName",
    "AgentSpec",
    "AgentStatus",
    "LogOptions",
    "NetworkChoice",
    "ResourceRequest",
    "Resources",
    "RestartPolicy",
    "StoredSpec",
    "SweepReport",
]

MAX_TTL_SECONDS = 365 * 24 * 3600
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Kubernetes label name and value rules, so a user label fits both backends unchanged.
_LABEL_KEY = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")

AgentName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)]
RestartPolicy = Literal["no", "on-failure", "unless-stopped", "always"]
# "default": the platform's network; "none": no network at all. Nothing else can be named.
NetworkChoice = Literal["default", "none"]
ImageRef = Annotated[
    str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")
]
CommandArg = Annotated[str, Field(max_length=4096, pattern=r"^[^\x00]*$")]
EnvValue = Annotated[str, Field(max_length=32768, pattern=r"^[^\x00]*$")]


class AgentStatus(StrEnum):
    """The contract's statuses; each backend maps its engine's states onto these."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPED = "stopped"
    RESTARTING = "restarting"
    EXITED = "exited"
    FAILED = "failed"
    UNKNOWN = "unknown"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResourceRequest(_Strict):
    """Limits a caller asks for; anything left out takes the operator's default."""

    cpus: float | None = Field(default=None, gt=0, le=256)
    memory_mb: int | None = Field(default=None, ge=6, le=1_048_576)
    pids: int | None = Field(default=None, ge=1, le=4_194_304)


class Resources(_Strict):
    """Limits as enforced on the agent, after the policy filled and capped them."""

    cpus: float
    memory_mb: int
    pids: int


def _check_names(values: dict[str, str] | dict[str, SecretStr], what: str) -> None:
    for key in values:
        if not _ENV_NAME.match(key):
            raise ValueError(f"{what} name {key!r} is not a valid variable name")


class AgentSpec(_Strict):
    """A spawn request as the orchestrator receives it (secret values included)."""

    name: AgentName
    image: ImageRef
    command: list[CommandArg] | None = Field(default=None, min_length=1, max_length=256)
    env: dict[str, EnvValue] = Field(default_factory=dict, max_length=256)
    secrets: dict[str, SecretStr] = Field(default_factory=dict, max_length=64)
    labels: dict[str, str] = Field(default_factory=dict, max_length=64)
    resources: ResourceRequest = Field(default_factory=ResourceRequest)
    restart_policy: RestartPolicy = "unless-stopped"
    workspace: bool = False
    network: NetworkChoice = "default"
    ttl_seconds: int | None = Field(
        default=None, ge=1, le=MAX_TTL_SECONDS, description="stopped automatically after this"
    )

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: dict[str, str]) -> dict[str, str]:
        _check_names(value, "env")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_names(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        _check_names(value, "secret")
        for secret in value.values():
            if len(secret.get_secret_value()) > 32768 or "\x00" in secret.get_secret_value():
                raise ValueError("a secret value is too long or holds a NUL byte")
        return value

    @field_validator("labels")
    @classmethod
    def _label_syntax(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not _LABEL_KEY.match(key):
                raise ValueError(
                    f"label key {key!r} must be 1-63 characters [A-Za-z0-9-_.], "
                    "starting and ending alphanumeric"
                )
            if not _LABEL_VALUE.match(item):
                raise ValueError(
                    f"label value for {key!r} must be at most 63 characters [A-Za-z0-9-_.], "
                    "starting and ending alphanumeric"
                )
        return value

    @model_validator(mode="after")
    def _env_and_secrets_disjoint(self) -> AgentSpec:
        both = sorted(set(self.env) & set(self.secrets))
        if both:
            raise ValueError(f"names used both as env and as secret: {', '.join(both)}")
        return self


class StoredSpec(_Strict):
    """What is kept on the engine about a spawn: the spec minus secret values.

    Serialised into the spec label (annotation on Kubernetes); comparing two of these is
    how a repeated Idempotency-Key is told apart from a different request.
    """

    name: str
    image: str
    command: list[str] | None
    env: dict[str, str]
    secret_names: list[str]
    labels: dict[str, str]
    resources: Resources
    restart_policy: RestartPolicy
    workspace: bool
    network: NetworkChoice = "default"
    ttl_seconds: int | None = None

    @classmethod
    def from_spec(cls, spec: AgentSpec, resources: Resources) -> StoredSpec:
        return cls(
            name=spec.name,
            image=spec.image,
            command=spec.command,
            env=dict(spec.env),
            secret_names=sorted(spec.secrets),
            labels=dict(spec.labels),
            resources=resources,
            restart_policy=spec.restart_policy,
            workspace=spec.workspace,
            network=spec.network,
            ttl_seconds=spec.ttl_seconds,
        )


class Agent(BaseModel):
    """An agent as every route returns it, rebuilt from the engine's labels and state."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    owner: str
    image: str
    status: AgentStatus
    detail: str | None = Field(default=None, description="why the agent is in its status")
    created_at: datetime
    labels: dict[str, str]
    env: dict[str, str]
    secret_names: list[str]
    resources: Resources
    restart_policy: RestartPolicy
    workspace: bool
    network: NetworkChoice
    command: list[str] | None
    expires_at: datetime | None = Field(
        default=None, description="when the agent is stopped automatically (ttl_seconds)"
    )
    orchestrator: str


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did: agents stopped at their deadline, orphaned objects removed."""

    stopped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class LogOptions:
    """What part of an agent's output to return."""

    tail: int | None = None
    since: datetime | None = None
    timestamps: bool = False
    follow: bool = False

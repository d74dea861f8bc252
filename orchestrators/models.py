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

from .images import id_shaped

__all__ = [
    "AGENT_ID",
    "DNS1123_LABEL",
    "IMAGE_REFERENCE",
    "MAX_TTL_SECONDS",
    "Agent",
    "AgentAddress",
    "AgentChange",
    "AgentName",
    "AgentSpec",
    "AgentStats",
    "AgentStatus",
    "ChangeResult",
    "EventAgent",
    "EventType",
    "FailureReason",
    "Health",
    "StoppedBy",
    "AgentEvent",
    "LogOptions",
    "NetworkChoice",
    "ResourceRequest",
    "Resources",
    "RestartPolicy",
    "Revision",
    "RevisionList",
    "StoredSpec",
    "SweepReport",
    "is_agent_id",
]

MAX_TTL_SECONDS = 365 * 24 * 3600
DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# The shape of an agent id on every backend (uuid4().hex). A ref of this shape is only ever
# looked up as an id, and a name may not take it, so an id and a name never meet.
AGENT_ID = r"^[0-9a-f]{32}$"
_AGENT_ID = re.compile(AGENT_ID)
# Docker's image reference grammar: [domain[:port]/]path[:tag][@digest], path lower case.
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_PORT = r"(?::[0-9]{1,5})"
# A domain has a dot or a port, or is localhost; anything else is the first path part.
_DOMAIN = rf"(?:(?:{_HOST}(?:\.{_HOST})+|localhost){_PORT}?/|{_HOST}{_PORT}/)"
_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
IMAGE_REFERENCE = (
    rf"^{_DOMAIN}?{_PATH}(?:/{_PATH})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)

AgentName = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)]
RestartPolicy = Literal["no", "on-failure", "unless-stopped", "always"]
# "default": the platform's network; "none": no network at all. Nothing else can be named.
NetworkChoice = Literal["default", "none"]
ImageRef = Annotated[str, Field(min_length=1, max_length=255, pattern=IMAGE_REFERENCE)]
CommandArg = Annotated[str, Field(max_length=4096, pattern=r"^[^\x00]*$")]
VarName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
EnvValue = Annotated[str, Field(max_length=32768, pattern=r"^[^\x00]*$")]
SecretValue = Annotated[SecretStr, Field(max_length=32768)]
# Kubernetes label name and value rules, so a user label fits both backends unchanged.
LabelKey = Annotated[str, Field(pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")]
LabelValue = Annotated[str, Field(pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")]


def is_agent_id(ref: str) -> bool:
    """True when ``ref`` has the shape of an agent id (and so is never read as a name)."""
    return _AGENT_ID.fullmatch(ref) is not None


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

    # At least 0.01: a smaller value would round to 0, which Docker reads as "no limit".
    cpus: float | None = Field(default=None, ge=0.01, le=256)
    memory_mb: int | None = Field(default=None, ge=6, le=1_048_576)
    pids: int | None = Field(default=None, ge=1, le=4_194_304)


class Resources(_Strict):
    """Limits as enforced on the agent, after the policy filled and capped them."""

    cpus: float
    memory_mb: int
    pids: int


class AgentSpec(_Strict):
    """A spawn request as the orchestrator receives it (secret values included)."""

    name: AgentName
    image: ImageRef
    command: list[CommandArg] | None = Field(default=None, min_length=1, max_length=256)
    env: dict[VarName, EnvValue] = Field(default_factory=dict, max_length=256)
    secrets: dict[VarName, SecretValue] = Field(default_factory=dict, max_length=64)
    labels: dict[LabelKey, LabelValue] = Field(default_factory=dict, max_length=64)
    resources: ResourceRequest = Field(default_factory=ResourceRequest)
    restart_policy: RestartPolicy = "unless-stopped"
    workspace: bool = False
    network: NetworkChoice = "default"
    ttl_seconds: int | None = Field(
        default=None, ge=1, le=MAX_TTL_SECONDS, description="stopped automatically after this"
    )

    @field_validator("name")
    @classmethod
    def _name_is_not_an_id(cls, value: str) -> str:
        if is_agent_id(value):
            raise ValueError("a name may not have the shape of an agent id (32 hex characters)")
        return value

    @field_validator("image")
    @classmethod
    def _image_not_an_id(cls, value: str) -> str:
        if id_shaped(value):
            raise ValueError("an image id is not accepted: name the image (repository and tag)")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_values(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if any("\x00" in secret.get_secret_value() for secret in value.values()):
            raise ValueError("a secret value holds a NUL byte")
        return value

    @model_validator(mode="after")
    def _env_and_secrets_disjoint(self) -> AgentSpec:
        if set(self.env) & set(self.secrets):
            # Not which: no part of the secrets map is ever echoed.
            raise ValueError("a name is used both in env and in secrets")
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


class AgentAddress(BaseModel):
    """How the agent's owner reaches it: a DNS name on a network the owner's services join."""

    model_config = ConfigDict(frozen=True)

    network: str = Field(description="the network (on Docker: <AGENT_API_NETWORK>.<owner>)")
    host: str = Field(description="the agent's DNS name on that network (its name)")


class Agent(BaseModel):
    """An agent as every route returns it, rebuilt from the engine's labels and state."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    owner: str
    image: str
    status: AgentStatus
    detail: str | None = Field(default=None, description="why the agent is in its status")
    exit_code: int | None = Field(
        default=None, description="the code its process last exited with; null while it never has"
    )
    created_at: datetime
    started_at: datetime | None = Field(
        default=None,
        description="when its current run began (a restart begins a new one); null when "
        "it is not running",
    )
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
    address: AgentAddress | None = Field(
        default=None,
        description="how its owner reaches it; null without a network or where the backend "
        "gives agents no name of their own",
    )
    orchestrator: str
    revision: int = Field(
        default=1, ge=1, description="the agent's revision; GET sends it as the ETag"
    )


class AgentChange(_Strict):
    """A ``PATCH`` body: only the fields given change.

    ``env``, ``labels`` and ``secrets`` merge by name: a value sets or replaces that name,
    ``null`` removes it. ``resources`` merges field by field. Secret values are never kept
    anywhere but the agent itself (never in a revision, a response or a log line).
    """

    image: ImageRef | None = None
    command: list[CommandArg] | None = Field(default=None, min_length=1, max_length=256)
    env: dict[VarName, EnvValue | None] | None = Field(default=None, max_length=256)
    secrets: dict[VarName, SecretValue | None] | None = Field(default=None, max_length=64)
    labels: dict[LabelKey, LabelValue | None] | None = Field(default=None, max_length=64)
    resources: ResourceRequest | None = None
    restart_policy: RestartPolicy | None = None
    ttl_seconds: int | None = Field(
        default=None, ge=1, le=MAX_TTL_SECONDS, description="stopped this long after the change"
    )

    @field_validator("image")
    @classmethod
    def _image_not_an_id(cls, value: str | None) -> str | None:
        if value is not None and id_shaped(value):
            raise ValueError("an image id is not accepted: name the image (repository and tag)")
        return value

    @field_validator("secrets")
    @classmethod
    def _secret_values(
        cls, value: dict[str, SecretStr | None] | None
    ) -> dict[str, SecretStr | None] | None:
        if value and any(s is not None and "\x00" in s.get_secret_value() for s in value.values()):
            raise ValueError("a secret value holds a NUL byte")
        return value

    @model_validator(mode="after")
    def _says_something(self) -> AgentChange:
        if all(getattr(self, name) is None for name in self.model_fields_set):
            raise ValueError("the change is empty: name at least one field to change")
        return self


class ChangeResult(BaseModel):
    """The answer to a change or a rollback."""

    model_config = ConfigDict(frozen=True)

    agent: Agent
    revision: int = Field(description="the agent's revision after the change")
    restarted: bool = Field(description="whether the agent's process was restarted")
    changes: list[str] = Field(description="what changed, by field (secret names only)")


class Revision(BaseModel):
    """One revision of an agent: what it was after a change, never a secret value."""

    model_config = ConfigDict(frozen=True)

    number: int
    created_at: datetime
    changes: list[str] = Field(description="what changed from the revision before, by field")
    restarted: bool
    spec: StoredSpec = Field(description="the agent's spec at this revision (secret names only)")


class RevisionList(BaseModel):
    """An agent's revisions, newest first; only the newest ``kept`` are kept."""

    model_config = ConfigDict(frozen=True)

    items: list[Revision]
    kept: int


class AgentStats(BaseModel):
    """One sample of what an agent uses; a field the backend cannot tell is null."""

    model_config = ConfigDict(frozen=True)

    read_at: datetime
    cpu_percent: float | None = Field(
        default=None, description="of one CPU: 100 is one CPU busy, 200 two"
    )
    memory_bytes: int | None = None
    memory_limit_bytes: int | None = None
    pids: int | None = None
    network_rx_bytes: int | None = None
    network_tx_bytes: int | None = None
    block_read_bytes: int | None = None
    block_write_bytes: int | None = None


class EventType(StrEnum):
    """What happened to an agent (``GET /v1/events``)."""

    CREATED = "created"
    STARTED = "started"
    STOPPED = "stopped"  # ``by`` says who or what stopped it
    EXITED = "exited"  # its process ended on its own with code 0; ``exit_code``
    FAILED = "failed"  # ``reason`` says why; ``exit_code`` when it exited
    RESTARTED = "restarted"  # running again after exiting (restart policy or a call)
    DELETED = "deleted"
    HEALTH = "health"  # its healthcheck changed: ``health``
    RESET = "reset"  # history before this is gone: list again; no agent


class StoppedBy(StrEnum):
    """Who or what stopped an agent."""

    CALL = "call"  # a stop (or restart) through the API
    TTL = "ttl"  # its deadline passed and the service stopped it
    ENGINE = "engine"  # the engine itself (shutdown, eviction), not through the API


class FailureReason(StrEnum):
    """Why an agent failed, where the engine tells."""

    OOM_KILLED = "oom_killed"  # its memory limit was reached
    CRASH_LOOP = "crash_loop"  # it keeps exiting and being restarted, backing off
    IMAGE_PULL = "image_pull"  # its image cannot be pulled
    UNSCHEDULABLE = "unschedulable"  # no node can take it
    EVICTED = "evicted"  # the node evicted it
    KILLED = "killed"  # a signal it did not ask for, not through the API
    EXIT_CODE = "exit_code"  # its process exited with a code other than 0
    ERROR = "error"  # the engine reported an error starting or running it


Health = Literal["starting", "healthy", "unhealthy"]


class EventAgent(BaseModel):
    """The agent an event is about."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    owner: str


class AgentEvent(BaseModel):
    """One lifecycle event as ``GET /v1/events`` sends it (the ``data:`` of an SSE event).

    ``id`` is also the SSE ``id:``: send it back as ``Last-Event-ID`` (or ``since=``) to
    resume after it. A ``reset`` event has no agent: what happened before it is lost, so
    list the agents again.
    """

    model_config = ConfigDict(frozen=True)

    id: str
    type: EventType
    time: datetime
    agent: EventAgent | None = None
    status: AgentStatus | None = Field(default=None, description="the agent's status after it")
    detail: str | None = Field(default=None, description="why, in words")
    reason: FailureReason | None = Field(default=None, description="failed: why")
    by: StoppedBy | None = Field(default=None, description="stopped: who or what stopped it")
    exit_code: int | None = None
    health: Health | None = Field(default=None, description="health: the new state")


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

"""The contract's request and response bodies, as the clients see them.

These are the client's own models: they do not import the server, so the clients need
only httpx, tenacity and pydantic. The server stays the authority on the rules (name
syntax, limits, policy): a spawn request is checked here only for its shape and unknown
fields, and the server's answer says what it refused and why. Responses ignore fields
they do not know, so a newer server does not break an older client.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = [
    "Agent",
    "AgentAddress",
    "AgentEvent",
    "EventAgent",
    "EventType",
    "WaitUntil",
    "AgentChange",
    "AgentPage",
    "AgentStats",
    "AgentStatus",
    "ChangeResult",
    "Health",
    "NetworkChoice",
    "ResourceRequest",
    "Resources",
    "RestartPolicy",
    "Revision",
    "RevisionList",
    "SpawnRequest",
    "Whoami",
]

RestartPolicy = Literal["no", "on-failure", "unless-stopped", "always"]
# "default": the platform's network; "none": no network at all.
NetworkChoice = Literal["default", "none"]


class AgentStatus(StrEnum):
    """The statuses an agent can report."""

    PENDING = "pending"
    RUNNING = "running"
    STOPPED = "stopped"
    RESTARTING = "restarting"
    EXITED = "exited"
    FAILED = "failed"
    UNKNOWN = "unknown"


class EventType(StrEnum):
    """What happened to an agent (``GET /v1/events``); ``reset``: list again."""

    CREATED = "created"
    STARTED = "started"
    STOPPED = "stopped"
    EXITED = "exited"
    FAILED = "failed"
    RESTARTED = "restarted"
    DELETED = "deleted"
    HEALTH = "health"
    RESET = "reset"


# What ``wait`` waits for: running; exited (exited or failed); stopped (not running).
WaitUntil = Literal["running", "exited", "stopped"]


class ResourceRequest(BaseModel):
    """Limits asked for at spawn; anything left out takes the server's default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpus: float | None = None
    memory_mb: int | None = None
    pids: int | None = None


class SpawnRequest(BaseModel):
    """The body of ``POST /v1/agents``. Secret values are hidden from ``repr`` and dumps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    image: str
    command: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    labels: dict[str, str] = Field(default_factory=dict)
    resources: ResourceRequest | None = None
    restart_policy: RestartPolicy | None = None
    workspace: bool | None = None
    network: NetworkChoice | None = None
    ttl_seconds: int | None = None

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send: secret values revealed, unset options left to the server."""
        body = self.model_dump(mode="json", exclude_none=True, exclude={"secrets"})
        if self.secrets:
            body["secrets"] = {k: v.get_secret_value() for k, v in self.secrets.items()}
        return body


class Resources(BaseModel):
    """Limits as enforced on the agent."""

    model_config = ConfigDict(frozen=True)

    cpus: float
    memory_mb: int
    pids: int


class AgentAddress(BaseModel):
    """How the owner reaches an agent: its DNS name on a network the owner's services join."""

    model_config = ConfigDict(frozen=True)

    network: str
    host: str


class Agent(BaseModel):
    """An agent as the server returns it."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    owner: str
    image: str
    status: AgentStatus
    detail: str | None = None
    exit_code: int | None = None
    created_at: datetime
    started_at: datetime | None = None  # when its current run began; None when not running
    labels: dict[str, str] = Field(default_factory=dict)
    env: dict[str, str] = Field(default_factory=dict)
    secret_names: list[str] = Field(default_factory=list)
    resources: Resources | None = None
    restart_policy: str | None = None
    workspace: bool = False
    network: str | None = None
    command: list[str] | None = None
    expires_at: datetime | None = None
    address: AgentAddress | None = None
    orchestrator: str | None = None
    revision: int = 1

    @property
    def short_id(self) -> str:
        """The first 12 characters of the id, as ``docker ps`` shows them."""
        return self.id[:12]


class AgentPage(BaseModel):
    """One page of ``GET /v1/agents``; ``next_cursor`` is None on the last page."""

    model_config = ConfigDict(frozen=True)

    items: list[Agent]
    next_cursor: str | None = None


class AgentChange(BaseModel):
    """The body of ``PATCH /v1/agents/{agent}``: only what is given changes. In ``env``,
    ``labels`` and ``secrets`` a value sets that name and None removes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str | None = None
    command: list[str] | None = None
    env: dict[str, str | None] | None = None
    secrets: dict[str, SecretStr | None] | None = None
    labels: dict[str, str | None] | None = None
    resources: ResourceRequest | None = None
    restart_policy: RestartPolicy | None = None
    ttl_seconds: int | None = None

    def to_body(self) -> dict[str, Any]:
        """The JSON body to send: secret values revealed, None kept inside the maps."""
        body: dict[str, Any] = {}
        for name in self.model_fields_set:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "secrets":
                value = {k: v.get_secret_value() if v else None for k, v in value.items()}
            elif name == "resources":
                value = value.model_dump(exclude_none=True)
            body[name] = value
        return body


class ChangeResult(BaseModel):
    """The answer to a change or a rollback: the agent, its new revision, and whether its
    process was restarted."""

    model_config = ConfigDict(frozen=True)

    agent: Agent
    revision: int
    restarted: bool
    changes: list[str] = Field(default_factory=list)


class Revision(BaseModel):
    """One revision of an agent (secret names only, never values)."""

    model_config = ConfigDict(frozen=True)

    number: int
    created_at: datetime
    changes: list[str] = Field(default_factory=list)
    restarted: bool = False
    spec: dict[str, Any] = Field(default_factory=dict)


class RevisionList(BaseModel):
    """An agent's revisions, newest first; the server keeps the newest ``kept``."""

    model_config = ConfigDict(frozen=True)

    items: list[Revision]
    kept: int | None = None


class AgentStats(BaseModel):
    """One sample of what an agent uses; None where the backend cannot tell."""

    model_config = ConfigDict(frozen=True)

    read_at: datetime
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    memory_limit_bytes: int | None = None
    pids: int | None = None
    network_rx_bytes: int | None = None
    network_tx_bytes: int | None = None
    block_read_bytes: int | None = None
    block_write_bytes: int | None = None


class Health(BaseModel):
    """The answer of ``/healthz`` (``ok``) and ``/readyz`` (``ready``)."""

    model_config = ConfigDict(frozen=True)

    status: str


class EventAgent(BaseModel):
    """The agent an event is about."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    owner: str


class AgentEvent(BaseModel):
    """One lifecycle event. ``reset`` has no agent: what came before it is lost."""

    model_config = ConfigDict(frozen=True)

    id: str
    type: str  # an EventType value; a newer server may add types
    time: datetime
    agent: EventAgent | None = None
    status: str | None = None
    detail: str | None = None
    reason: str | None = None
    by: str | None = None
    exit_code: int | None = None
    health: str | None = None


class Whoami(BaseModel):
    """Who a key is (``/v1/whoami``): its name, owner and role, never the key."""

    model_config = ConfigDict(frozen=True)

    key_name: str
    owner: str
    role: Literal["admin", "operator", "viewer"]

"""Request and response bodies of the HTTP API (the agent itself is ``orchestrators.Agent``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrators.models import MAX_TTL_SECONDS, Agent, AgentChange, AgentSpec

__all__ = [
    "ActionRequest",
    "AgentList",
    "ChangeRequest",
    "Health",
    "RenewRequest",
    "RollbackRequest",
    "SpawnRequest",
    "Whoami",
]


class SpawnRequest(AgentSpec):
    """The strict spawn body: unknown fields are refused with 422."""


class ChangeRequest(AgentChange):
    """The strict ``PATCH`` body: unknown fields (and ``name``, ``workspace``, ``network``,
    which never change) are refused with 422."""


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    revision: int | None = Field(
        default=None, ge=1, description="the revision to return to; the previous one if null"
    )


class AgentList(BaseModel):
    items: list[Agent]
    next_cursor: str | None


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    action: Literal["start", "stop", "restart"]
    timeout: int | None = Field(default=None, ge=0, le=3600, description="grace for stop/restart")


class RenewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    ttl_seconds: int = Field(ge=1, le=MAX_TTL_SECONDS, description="the new deadline, from now")


class Health(BaseModel):
    status: str
    watch: str | None = Field(
        default=None,
        description="readyz: live (reads from the watch-fed model), broken (reads go to the "
        "engine until the watch is back; the detail follows) or none (the backend has no watch)",
    )


class Whoami(BaseModel):
    """The caller behind a key: what a dashboard needs to show it and its buttons."""

    key_name: str = Field(description="the key's name in the keys file (admin: 'admin')")
    owner: str = Field(description="the owner whose agents the key sees and manages")
    role: Literal["admin", "operator", "viewer"] = Field(
        description="admin: every owner; operator: manage its owner's agents; viewer: read only"
    )

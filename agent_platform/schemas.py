"""Request and response bodies of the HTTP API (the agent itself is ``orchestrators.Agent``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrators.models import Agent, AgentSpec

__all__ = ["ActionRequest", "AgentList", "Health", "SpawnRequest"]


class SpawnRequest(AgentSpec):
    """The strict spawn body: unknown fields are refused with 422."""

    ttl_seconds: int | None = Field(
        default=None,
        description="not supported yet: any value other than null is refused",
    )

    @field_validator("ttl_seconds")
    @classmethod
    def _ttl_not_yet(cls, value: int | None) -> int | None:
        if value is not None:
            raise ValueError(
                "ttl_seconds is not supported by this server yet; send null or omit it"
            )
        return value


class AgentList(BaseModel):
    items: list[Agent]
    next_cursor: str | None


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Literal["start", "stop", "restart"]
    timeout: int | None = Field(default=None, ge=0, le=3600, description="grace for stop/restart")


class Health(BaseModel):
    status: str

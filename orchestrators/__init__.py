"""Orchestrator backends behind agent-api: the abstract contract, one error hierarchy, one
label schema, the spawn policy, and the Docker and Kubernetes backends."""

from .base import Orchestrator
from .errors import (
    AgentConflict,
    AgentExpired,
    AgentNotFound,
    AgentQuotaExceeded,
    AmbiguousAgentName,
    EngineError,
    IdempotencyKeyReused,
    ImageNotFound,
    InvalidSpec,
    OrchestratorError,
    OrchestratorUnavailable,
    PolicyViolation,
    SpawnFailed,
    TooManyCalls,
)
from .models import (
    Agent,
    AgentSpec,
    AgentStatus,
    LogOptions,
    ResourceRequest,
    Resources,
    RestartPolicy,
    StoredSpec,
    SweepReport,
)
from .policy import OwnerCeilings, SpawnPolicy

__all__ = [
    "Agent",
    "AgentConflict",
    "AgentExpired",
    "AgentQuotaExceeded",
    "AgentNotFound",
    "AgentSpec",
    "AgentStatus",
    "AmbiguousAgentName",
    "EngineError",
    "IdempotencyKeyReused",
    "ImageNotFound",
    "InvalidSpec",
    "LogOptions",
    "Orchestrator",
    "OwnerCeilings",
    "OrchestratorError",
    "OrchestratorUnavailable",
    "PolicyViolation",
    "ResourceRequest",
    "Resources",
    "RestartPolicy",
    "SpawnFailed",
    "SpawnPolicy",
    "StoredSpec",
    "SweepReport",
    "TooManyCalls",
]

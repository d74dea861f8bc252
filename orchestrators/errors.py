"""The one error hierarchy shared by every orchestrator backend.

Backends translate their engine's exceptions into these where they cross the boundary
(``raise AgentNotFound(...) from exc``); the HTTP layer maps each class onto one status
code in exactly one place (``agent_platform.problems``).

    OrchestratorError                 code
    ├── AgentNotFound                 agent_not_found
    ├── AgentConflict                 agent_name_conflict
    │   ├── AmbiguousAgentName        agent_name_ambiguous
    │   ├── AgentExpired              agent_expired
    │   ├── IdempotencyKeyReused      idempotency_key_reused
    │   └── ChangeInFlight            change_in_flight
    ├── RevisionMismatch              revision_mismatch
    ├── InvalidSpec                   invalid_spec
    │   ├── ImageNotFound             image_not_found
    │   └── SpawnFailed               spawn_failed
    ├── PolicyViolation               policy_violation
    │   └── AgentQuotaExceeded        agent_quota_exceeded
    ├── TooManyCalls                  rate_limited
    ├── NotSupported                  not_supported
    ├── EngineError                   engine_error
    └── OrchestratorUnavailable       orchestrator_unavailable

    WatchExpired                      (never an HTTP answer: the event stream turns it
                                       into a ``reset`` event)

Messages never carry secret values, environment values or API keys.
"""

from __future__ import annotations

__all__ = [
    "AgentConflict",
    "AgentExpired",
    "AgentQuotaExceeded",
    "AgentNotFound",
    "AmbiguousAgentName",
    "ChangeInFlight",
    "EngineError",
    "IdempotencyKeyReused",
    "ImageNotFound",
    "InvalidSpec",
    "NotSupported",
    "OrchestratorError",
    "OrchestratorUnavailable",
    "PolicyViolation",
    "RevisionMismatch",
    "SpawnFailed",
    "TooManyCalls",
    "WatchExpired",
]


class OrchestratorError(Exception):
    """Base of every error an orchestrator raises on purpose."""

    code = "orchestrator_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class AgentNotFound(OrchestratorError):
    """No managed agent with that id or name is visible to the caller."""

    code = "agent_not_found"


class AgentConflict(OrchestratorError):
    """The owner already has an agent with that name."""

    code = "agent_name_conflict"


class AmbiguousAgentName(AgentConflict):
    """A name matched agents of several owners (admin callers only); use the id."""

    code = "agent_name_ambiguous"


class AgentExpired(AgentConflict):
    """The agent's TTL has passed: renew it before starting it again."""

    code = "agent_expired"


class IdempotencyKeyReused(AgentConflict):
    """An Idempotency-Key was sent again with a different spawn request."""

    code = "idempotency_key_reused"


class ChangeInFlight(AgentConflict):
    """Another change of the agent is under way; retry once it is done."""

    code = "change_in_flight"


class RevisionMismatch(OrchestratorError):
    """The agent is no longer at the revision the caller expected (``If-Match``)."""

    code = "revision_mismatch"


class InvalidSpec(OrchestratorError):
    """The engine refused the spawn request as given."""

    code = "invalid_spec"


class ImageNotFound(InvalidSpec):
    """The image is neither present on the engine nor pullable."""

    code = "image_not_found"


class SpawnFailed(InvalidSpec):
    """The agent was created but could not start; nothing was left behind."""

    code = "spawn_failed"


class PolicyViolation(OrchestratorError):
    """The request is well formed but the operator's policy does not allow it."""

    code = "policy_violation"


class AgentQuotaExceeded(PolicyViolation):
    """The owner already has as many agents as the policy allows."""

    code = "agent_quota_exceeded"


class TooManyCalls(OrchestratorError):
    """The caller already has as many slow calls (e.g. image pulls) in flight as allowed."""

    code = "rate_limited"


class NotSupported(OrchestratorError):
    """This backend (or its cluster) cannot do what was asked."""

    code = "not_supported"


class EngineError(OrchestratorError):
    """The engine answered with an error of its own that no other class describes."""

    code = "engine_error"


class OrchestratorUnavailable(OrchestratorError):
    """The engine or cluster did not answer in time, or refused the connection."""

    code = "orchestrator_unavailable"


class WatchExpired(Exception):
    """A watch was asked to resume from a token the engine no longer holds history for.

    Not an ``OrchestratorError``: no route answers it. The caller lists again (a
    ``snapshot``) and tells its own clients so with a ``reset`` event.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

"""Clients of agent-api: the Python library, ``agentctl``, the agent tool, the MCP server.

The library is ``AgentClient`` (sync) and ``AsyncAgentClient`` (async), typed with the
models below and raising the errors below. ``agentctl`` lives in ``clients.cli`` (it
needs typer and rich, which importing this package does not load). The tool's nanobot
plugin (``clients.nanobot_plugin``) and the MCP server (``clients.mcp_server``) need
their extras and are imported only by nanobot and ``agentctl mcp``.
"""

from .async_client import AsyncAgentClient
from .client import AgentClient
from .errors import (
    AgentAPIError,
    APIStatusError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    NotSupportedError,
    PolicyViolationError,
    PreconditionFailedError,
    RateLimitedError,
    ServerUnavailableError,
    TransportError,
    UnauthorizedError,
    ValidationError,
    WaitTimeoutError,
)
from .models import Agent, AgentPage, AgentStatus, Health, ResourceRequest, Resources, SpawnRequest
from .nanobot_tool import RemoteAgentManager
from .retry import RetryPolicy

__all__ = [
    "AgentClient",
    "AsyncAgentClient",
    "RetryPolicy",
    "Agent",
    "AgentPage",
    "AgentStatus",
    "Health",
    "ResourceRequest",
    "Resources",
    "SpawnRequest",
    "AgentAPIError",
    "APIStatusError",
    "ConflictError",
    "ForbiddenError",
    "NotFoundError",
    "NotSupportedError",
    "PolicyViolationError",
    "PreconditionFailedError",
    "RateLimitedError",
    "ServerUnavailableError",
    "TransportError",
    "UnauthorizedError",
    "ValidationError",
    "WaitTimeoutError",
    "RemoteAgentManager",
]

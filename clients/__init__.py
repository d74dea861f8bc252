"""Clients of agent-api (Python library, CLI, the RemoteAgentManager tool)."""

__all__: list[str] = []

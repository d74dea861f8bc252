"""The agent-api process under test: started as a user runs it, measured from outside.

It is :class:`testenv.server.ServerProcess` with a random admin key, the run's prefix and
network, no image pulls and no agent quota, in an empty working directory (so no ``.env`` is
read) and without any ``AGENT_API_*`` variable of the calling shell. Its memory is read from
``/proc`` (current and peak resident set).
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from pathlib import Path

from testenv.server import ServerProcess, free_port, resident_mb

__all__ = ["Service", "free_port", "resident_mb"]

_SLOW_CALLBACK = re.compile(r"Executing .* took (\d+\.\d+) seconds")


class Service(ServerProcess):
    """One agent-api process; ``extra_env`` adds variables (e.g. ``PYTHONASYNCIODEBUG``)."""

    def __init__(self, *, prefix: str, network: str, extra_env: dict[str, str] | None = None):
        self.key = secrets.token_urlsafe(32)
        self._workdir = tempfile.TemporaryDirectory(prefix="agent-api-bench-")
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AGENT_API_") and k not in ("ORCHESTRATOR", "PYTHONASYNCIODEBUG")
        }
        env = {
            **inherited,
            "AGENT_API_KEY": self.key,
            "AGENT_API_RESOURCE_PREFIX": prefix,
            "AGENT_API_NETWORK": network,
            "AGENT_API_PULL_MISSING_IMAGES": "false",
            "AGENT_API_MAX_AGENTS_PER_OWNER": "0",
            "AGENT_API_HOST": "127.0.0.1",
            "ORCHESTRATOR": "docker",
            **(extra_env or {}),
        }
        super().__init__(env, Path(self._workdir.name) / "agent-api.log", inherit=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def start(self, *, wait_ready: bool = True, timeout: float = 60.0) -> None:
        super().start(wait_ready=wait_ready, timeout=timeout)

    def slow_callbacks(self) -> list[float]:
        """Durations of the event-loop callbacks asyncio's debug mode reported as slow."""
        return [float(m.group(1)) for m in _SLOW_CALLBACK.finditer(self.logs())]

    def close(self) -> None:
        self.stop()
        self._workdir.cleanup()

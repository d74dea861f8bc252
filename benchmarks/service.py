"""The agent-api process under test: started as a user runs it, measured from outside.

It runs ``python -m agent_platform serve`` with a random admin key, the run's prefix and
network, no image pulls and no agent quota, on a free port of 127.0.0.1, in an empty
working directory (so no ``.env`` is read) and without any ``AGENT_API_*`` variable of the
calling shell. Its memory is read from ``/proc`` (current and peak resident set).
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

__all__ = ["Service", "free_port", "resident_mb"]

_SLOW_CALLBACK = re.compile(r"Executing .* took (\d+\.\d+) seconds")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def resident_mb(pid: int) -> tuple[float, float]:
    """Current and peak resident set size of ``pid`` in MiB (NaN where /proc lacks them)."""
    values = {"VmRSS": float("nan"), "VmHWM": float("nan")}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in values:
                values[key] = int(rest.split()[0]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return values["VmRSS"], values["VmHWM"]


class Service:
    """One agent-api process; ``extra_env`` adds variables (e.g. ``PYTHONASYNCIODEBUG``)."""

    def __init__(self, *, prefix: str, network: str, extra_env: dict[str, str] | None = None):
        self.key = secrets.token_urlsafe(32)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._workdir = tempfile.TemporaryDirectory(prefix="agent-api-bench-")
        self.log_path = Path(self._workdir.name) / "agent-api.log"
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("AGENT_API_") and k not in ("ORCHESTRATOR", "PYTHONASYNCIODEBUG")
        }
        self._env = {
            **inherited,
            "AGENT_API_KEY": self.key,
            "AGENT_API_RESOURCE_PREFIX": prefix,
            "AGENT_API_NETWORK": network,
            "AGENT_API_PULL_MISSING_IMAGES": "false",
            "AGENT_API_MAX_AGENTS_PER_OWNER": "0",
            "AGENT_API_HOST": "127.0.0.1",
            "AGENT_API_PORT": str(self.port),
            "ORCHESTRATOR": "docker",
            **(extra_env or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the service is not running")
        return self._process.pid

    def start(self, timeout: float = 60.0) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "agent_platform", "serve"],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._workdir.name,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"agent-api exited:\n{self.logs()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"agent-api was not ready within {timeout:.0f} s")

    @property
    def returncode(self) -> int | None:
        """The exit status if the process ended on its own, else None."""
        return None if self._process is None else self._process.poll()

    def memory_mb(self) -> tuple[float, float]:
        """Current and peak (since start) resident set size of the service, MiB."""
        return resident_mb(self.pid)

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def slow_callbacks(self) -> list[float]:
        """Durations of the event-loop callbacks asyncio's debug mode reported as slow."""
        return [float(m.group(1)) for m in _SLOW_CALLBACK.finditer(self.logs())]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        self.stop()
        self._workdir.cleanup()

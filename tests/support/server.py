"""agent-api as a real process on 127.0.0.1, as a user runs it (``agent-platform serve``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["ServerProcess", "free_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """Start, stop and restart one service process; its output goes to ``log_path``."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._env = {**os.environ, **env, "AGENT_API_PORT": str(self.port)}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_ready: bool = True) -> None:
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "agent_platform", "serve"],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.log_path.parent,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"agent-api exited: {self.log_path.read_text()[-2000:]}")
            try:
                healthy = httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
                if healthy and (not wait_ready or self._ready()):
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError("agent-api did not become healthy within 30 s")

    def _ready(self) -> bool:
        return httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown, no cleanup, as a crash would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def rss_bytes(self) -> int:
        """The process's resident memory now."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS for the service process")

    def send_signal(self, sig: int) -> None:
        assert self._process is not None
        self._process.send_signal(sig)

    def restart(self) -> None:
        self.stop()
        self.start()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

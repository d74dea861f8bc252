"""agent-api as a real process on 127.0.0.1, as a user runs it (``agent-platform serve``).

The one launcher of the tests and the benchmarks: it starts ``python -m agent_platform serve``
on a free port with the given environment, waits until ``/healthz`` and then ``/readyz``
answer 200, and stops it with SIGTERM (SIGKILL after 15 s). Its output goes to ``log_path``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

__all__ = ["ServerProcess", "free_port", "resident_mb", "wait_until_ready"]


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


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def wait_until_ready(
    url: str,
    timeout: float = 30.0,
    *,
    ready: bool = True,
    process: subprocess.Popen[bytes] | None = None,
    log_path: Path | None = None,
) -> None:
    """Wait until the service at ``url`` is healthy (and, with ``ready``, ready).

    Raises RuntimeError if ``process`` exits first (with the tail of ``log_path``) or the
    timeout passes.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:] if log_path else ""
            raise RuntimeError(f"agent-api exited with status {process.returncode}:\n{tail}")
        if _answers(f"{url}/healthz") and (not ready or _answers(f"{url}/readyz")):
            return
        time.sleep(0.1)
    raise RuntimeError(f"agent-api at {url} was not {'ready' if ready else 'healthy'} in time")


class ServerProcess:
    """Start, stop and restart one service process.

    ``env`` is added to the calling shell's environment, or replaces it when ``inherit`` is
    False (then ``PATH`` and the like must be passed in ``env``). The process runs in
    ``log_path``'s directory.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        log_path: Path,
        port: int | None = None,
        *,
        inherit: bool = True,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        base = dict(os.environ) if inherit else {}
        self._env = {**base, **env, "AGENT_API_PORT": str(self.port)}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, *, wait_ready: bool = True, timeout: float = 30.0) -> None:
        """Start the process; return once it is healthy and (with ``wait_ready``) ready."""
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "agent_platform", "serve"],
                env=self._env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.log_path.parent,
            )
        wait_until_ready(
            self.url, timeout, ready=wait_ready, process=self._process, log_path=self.log_path
        )

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Wait until the running service answers ``/readyz`` 200 again (after an outage)."""
        wait_until_ready(self.url, timeout, process=self._process, log_path=self.log_path)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the service is not running")
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """The exit status if the process ended on its own, else None."""
        return None if self._process is None else self._process.poll()

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

    def memory_mb(self) -> tuple[float, float]:
        """Current and peak (since start) resident set size of the service, MiB."""
        return resident_mb(self.pid)

    def send_signal(self, sig: int) -> None:
        if self._process is None:
            raise RuntimeError("the service is not running")
        self._process.send_signal(sig)

    def restart(self) -> None:
        self.stop()
        self.start()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

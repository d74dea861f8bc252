"""Small helpers for API tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

__all__ = [
    "PROBLEM",
    "EventStream",
    "assert_problem",
    "body",
    "eventually",
    "run_cli",
    "serve",
    "wait_status",
]

PROBLEM = "application/problem+json"


def body(name: str, image: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": image,
        "command": ["sh", "-c", "echo agent-says-hi; exec sleep 3600"],
        "restart_policy": "no",
        **extra,
    }


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["code"] == code
    assert {"type", "title", "detail", "instance"} <= problem.keys()
    assert "Traceback" not in response.text
    return problem


T = TypeVar("T")


def eventually(probe: Callable[[], T], within: float, what: str) -> T:
    """What ``probe`` returns once it is true, asked every 0.1 s for at most ``within``
    seconds; ``what`` says what never happened."""
    deadline = time.monotonic() + within
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def wait_status(client: httpx.Client, ref: str, status: str) -> dict[str, Any]:
    agent: dict[str, Any] = {}
    for _ in range(100):
        agent = client.get(f"/v1/agents/{ref}").json()
        if agent.get("status") == status:
            return agent
        time.sleep(0.1)
    raise AssertionError(
        f"{ref} never became {status}: last {agent.get('status')} ({agent.get('detail')})"
    )


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``agent-platform <args>`` as a process (not checked: tests read its exit code)."""
    return subprocess.run(
        [sys.executable, "-m", "agent_platform", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def serve(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``agent-platform serve`` with only ``env`` set; it must refuse before listening."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_API_")}
    return subprocess.run(
        [sys.executable, "-m", "agent_platform", "serve", "--port", "1"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


class EventStream:
    """``GET /v1/events`` read on a thread of its own: the events so far, and a wait for one."""

    def __init__(self, client: httpx.Client, *, params: Any = None, last_id: str | None = None):
        self.events: list[dict[str, Any]] = []
        self.status: int | None = None
        self._headers = {"Last-Event-ID": last_id} if last_id else {}
        self._client, self._params = client, params
        self._stop = threading.Event()
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        assert self._opened.wait(30), "the event stream did not open"

    def _read(self) -> None:
        try:
            with self._client.stream(
                "GET", "/v1/events", params=self._params, headers=self._headers, timeout=None
            ) as response:
                self.status = response.status_code
                self._opened.set()
                data: list[str] = []
                for line in response.iter_lines():
                    if self._stop.is_set():
                        return
                    if line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif not line and data:
                        self.events.append(json.loads("\n".join(data)))
                        data = []
        except httpx.HTTPError:
            pass
        finally:
            self._opened.set()

    def wait_for(
        self, timeout: float = 30, after: dict[str, Any] | None = None, **wanted: Any
    ) -> dict[str, Any]:
        """The first event (after the event ``after``) whose fields are ``wanted``
        (``agent`` compared by id)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = list(self.events)
            if after is not None:
                seen = seen[seen.index(after) + 1 :]
            for event in seen:
                if _matches(event, wanted):
                    return event
            time.sleep(0.05)
        raise AssertionError(f"no event {wanted} in {self.events}")

    def close(self) -> None:
        self._stop.set()


def _matches(event: dict[str, Any], wanted: dict[str, Any]) -> bool:
    for key, value in wanted.items():
        got = event.get(key)
        if key == "agent":
            got = (got or {}).get("id")
        if got != value:
            return False
    return True

"""Small helpers for API tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

__all__ = ["PROBLEM", "assert_problem", "body", "run_cli", "serve", "wait_status"]

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

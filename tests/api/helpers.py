"""Small helpers for API tests."""

from __future__ import annotations

import time
from typing import Any

import httpx

__all__ = ["PROBLEM", "assert_problem", "body", "wait_status"]

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

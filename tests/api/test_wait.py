"""``GET /v1/agents/{agent}/wait``: run an agent to completion and get its result."""

from __future__ import annotations

from ..conftest import Api
from .helpers import assert_problem, body


def test_wait_returns_the_exit_code_once_the_agent_exits(api: Api, busybox: str) -> None:
    agent = api.alice.post(
        "/v1/agents",
        json=body("wait-three", busybox, command=["sh", "-c", "sleep 1; exit 3"]),
    ).json()
    done = api.alice.get(f"/v1/agents/{agent['id']}/wait", params={"until": "exited"})
    assert done.status_code == 200, done.text
    assert (done.json()["status"], done.json()["exit_code"]) == ("failed", 3)
    # It holds already: answered at once, also by name.
    again = api.alice.get("/v1/agents/wait-three/wait", params={"until": "stopped"})
    assert again.json()["exit_code"] == 3


def test_wait_times_out_with_408_and_is_owner_scoped(api: Api, busybox: str) -> None:
    agent = api.alice.post("/v1/agents", json=body("wait-long", busybox)).json()
    running = api.alice.get(f"/v1/agents/{agent['id']}/wait", params={"until": "running"})
    assert running.json()["status"] == "running"
    late = api.alice.get(f"/v1/agents/{agent['id']}/wait", params={"until": "exited", "timeout": 1})
    assert "running" in assert_problem(late, 408, "wait_timeout")["detail"]
    assert_problem(api.bob.get(f"/v1/agents/{agent['id']}/wait"), 404, "agent_not_found")
    assert_problem(
        api.alice.get(f"/v1/agents/{agent['id']}/wait", params={"until": "gone"}),
        422,
        "validation_error",
    )
    # A stop wakes a waiter for "stopped".
    api.alice.post(f"/v1/agents/{agent['id']}/stop", params={"timeout": 0})
    stopped = api.alice.get(f"/v1/agents/{agent['id']}/wait", params={"until": "stopped"})
    assert stopped.json()["status"] == "stopped"

"""A get of one agent answered from the read model before the router answers exactly as the
route does, and holds the same boundaries: owner scope, roles, the rate limit.

``GET /v1/agents/{agent}`` without a query is answered by ``ModelReads``; with ``owner=``
(which names the key's own owner, so the scope is the same) it goes through the router.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from ..conftest import Api, Keys, StartServer
from .helpers import assert_problem, body

_OWN_HEADERS = {"date", "x-request-id"}  # differ between any two answers


def _running(client: httpx.Client, ref: str) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        agent: dict[str, object] = client.get(f"/v1/agents/{ref}/wait?until=running").json()
        if agent.get("status") == "running":
            return agent
    raise AssertionError(f"{ref} never ran")


def test_a_get_from_the_model_answers_as_the_route_does(api: Api, busybox: str) -> None:
    spawned = api.alice.post("/v1/agents", json=body("fast-read", busybox, labels={"a": "b"}))
    agent = _running(api.alice, spawned.json()["id"])
    for client in (api.alice, api.viewer, api.admin):
        for ref in (agent["id"], "fast-read"):
            fast = client.get(f"/v1/agents/{ref}")
            routed = client.get(f"/v1/agents/{ref}", params={"owner": "alice"})
            assert fast.status_code == routed.status_code == 200
            assert fast.content == routed.content
            assert fast.json()["id"] == agent["id"]
            assert fast.json()["status"] == "running"
            same = {k: v for k, v in fast.headers.items() if k not in _OWN_HEADERS}
            assert same == {k: v for k, v in routed.headers.items() if k not in _OWN_HEADERS}
            assert set(same) >= {"content-type", "content-length", "etag"}
            assert fast.headers["x-request-id"] != routed.headers["x-request-id"]
    # The scope holds: another owner's agent is not found, by id or by name.
    for ref in (agent["id"], "fast-read"):
        assert_problem(api.bob.get(f"/v1/agents/{ref}"), 404, "agent_not_found")
    assert_problem(api.anonymous.get(f"/v1/agents/{agent['id']}"), 401, "unauthorized")
    assert_problem(api.alice.get("/v1/agents/Not-A-Ref"), 422, "validation_error")
    # After a change, the fast answer is the new one (read-your-writes).
    stopped = api.alice.post(f"/v1/agents/{agent['id']}/stop", params={"timeout": 0}).json()
    fast = api.alice.get(f"/v1/agents/{agent['id']}")
    assert fast.json() == stopped
    assert fast.headers["etag"] == f'"{stopped["revision"]}"'
    assert 'route="/v1/agents/{agent}"' in api.anonymous.get("/metrics").text


def test_the_rate_limit_holds_for_reads_from_the_model(
    start_server: StartServer, keys: tuple[Keys, Path], busybox: str
) -> None:
    server = start_server(AGENT_API_RATE_LIMIT_PER_MINUTE="6", AGENT_API_RATE_LIMIT_BURST="4")
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {keys[0].alice}"}, timeout=60
    ) as alice:
        ref = alice.post("/v1/agents", json=body("fast-limited", busybox)).json()["id"]
        answers = [alice.get(f"/v1/agents/{ref}").status_code for _ in range(3)]
        assert answers == [200, 200, 200]
        limited = alice.get(f"/v1/agents/{ref}")
        assert_problem(limited, 429, "rate_limited")
        assert 1 <= int(limited.headers["retry-after"]) <= 10

"""TTL through the API: the deadline on spawn, renewal, and a stop that happens even when
the deadline passed while the service was down."""

from __future__ import annotations

import time
from datetime import datetime

from ..conftest import Api
from .helpers import assert_problem, body, wait_status


def test_spawn_with_ttl_and_renew(api: Api, busybox: str) -> None:
    agent = api.alice.post("/v1/agents", json=body("aptest-ttl", busybox, ttl_seconds=300)).json()
    created = datetime.fromisoformat(agent["created_at"])
    expires = datetime.fromisoformat(agent["expires_at"])
    assert 295 <= (expires - created).total_seconds() <= 305

    renewed = api.alice.post(f"/v1/agents/{agent['id']}/ttl", json={"ttl_seconds": 3600})
    assert renewed.status_code == 200
    assert datetime.fromisoformat(renewed.json()["expires_at"]) > expires
    assert (
        api.alice.get(f"/v1/agents/{agent['id']}").json()["expires_at"]
        == renewed.json()["expires_at"]
    )

    plain = api.alice.post("/v1/agents", json=body("aptest-plain", busybox)).json()
    assert plain["expires_at"] is None
    assert_problem(
        api.alice.post(f"/v1/agents/{plain['id']}/ttl", json={"ttl_seconds": 60}),
        422,
        "invalid_spec",
    )
    assert_problem(
        api.alice.post(f"/v1/agents/{agent['id']}/ttl", json={"ttl_seconds": 0}),
        422,
        "validation_error",
    )
    assert_problem(
        api.viewer.post(f"/v1/agents/{agent['id']}/ttl", json={"ttl_seconds": 60}), 403, "forbidden"
    )
    assert_problem(
        api.bob.post(f"/v1/agents/{agent['id']}/ttl", json={"ttl_seconds": 60}),
        404,
        "agent_not_found",
    )


def test_a_deadline_that_passed_while_the_service_was_down(api: Api, busybox: str) -> None:
    agent = api.alice.post("/v1/agents", json=body("aptest-late", busybox, ttl_seconds=2)).json()
    assert agent["status"] == "running"
    api.server.stop()
    time.sleep(2.5)
    api.server.start()

    stopped = wait_status(api.alice, agent["id"], "stopped")
    assert datetime.fromisoformat(stopped["expires_at"]) <= datetime.now(
        datetime.fromisoformat(stopped["expires_at"]).tzinfo
    )
    refused = api.alice.post(f"/v1/agents/{agent['id']}/start")
    assert "renew" in assert_problem(refused, 409, "agent_expired")["detail"]
    api.alice.post(f"/v1/agents/{agent['id']}/ttl", json={"ttl_seconds": 600})
    assert api.alice.post(f"/v1/agents/{agent['id']}/start").json()["status"] == "running"

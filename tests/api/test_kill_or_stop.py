"""A kill behind the service's back and a stop that needed SIGKILL: the events, ``get`` and
``list`` say the same, live or read from the engine by a replica that saw neither."""

from __future__ import annotations

from typing import Any

import docker
import httpx

from ..conftest import Api, StartServer
from .helpers import EventStream, body, wait_status

_DEAF = ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]  # ignores SIGTERM


def _views(client: httpx.Client, ref: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The agent as ``get`` and as ``list`` show it."""
    got = client.get(f"/v1/agents/{ref}").json()
    listed = [a for a in client.get("/v1/agents").json()["items"] if a["id"] == ref]
    assert len(listed) == 1
    return got, listed[0]


def test_a_kill_is_a_failure_and_a_stop_past_its_grace_a_stop_everywhere(
    api: Api, busybox: str, clean_docker: docker.DockerClient, start_server: StartServer
) -> None:
    events = EventStream(api.alice, params={"type": ["stopped", "failed"]})
    killed = api.alice.post("/v1/agents", json=body("ks-killed", busybox)).json()
    deaf = api.alice.post("/v1/agents", json=body("ks-deaf", busybox, command=_DEAF)).json()
    wait_status(api.alice, killed["id"], "running")
    wait_status(api.alice, deaf["id"], "running")

    # Behind the service's back: a plain `docker kill` (SIGKILL, exit 137).
    found = clean_docker.containers.list(
        all=True, filters={"label": f"agents.hive.io/id={killed['id']}"}
    )
    found[0].kill()
    failed = events.wait_for(type="failed", agent=killed["id"])
    assert (failed["status"], failed["reason"], failed["exit_code"]) == ("failed", "killed", 137)

    # A stop by call whose process ignores SIGTERM: SIGKILL after a grace of 1 s.
    answer = api.alice.post(f"/v1/agents/{deaf['id']}/stop", params={"timeout": 1}).json()
    assert (answer["status"], answer["exit_code"]) == ("stopped", 137)
    stopped = events.wait_for(type="stopped", agent=deaf["id"])
    assert (stopped["by"], stopped["exit_code"]) == ("call", 137)
    events.close()

    # A replica started now, reading from the engine: no memory of the stop, the same answer.
    other = start_server(AGENT_API_LIVE_READS="false")
    fresh = api.client(api.keys.alice)
    fresh.base_url = httpx.URL(other.url)
    for client in (api.alice, fresh):
        for view in _views(client, killed["id"]):
            assert (view["status"], view["exit_code"]) == ("failed", 137), view
            assert "killed outside the API" in view["detail"]
        for view in _views(client, deaf["id"]):
            assert (view["status"], view["exit_code"]) == ("stopped", 137), view

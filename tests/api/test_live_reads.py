"""Reads from the watch-fed model: read-your-writes on a replica, the same agents on the
other, readiness and the metrics the model feeds."""

from __future__ import annotations

import time

import httpx

from ..conftest import Api, StartServer
from .helpers import assert_problem, body


def _eventually(client: httpx.Client, ref: str, status: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if client.get(f"/v1/agents/{ref}").json().get("status") == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"{ref} never read {status}")


def test_each_replica_reads_its_writes_and_the_others_soon(
    start_server: StartServer, api: Api, busybox: str
) -> None:
    one, two = start_server(), start_server()
    key = {"Authorization": f"Bearer {api.keys.alice}"}
    with (
        httpx.Client(base_url=one.url, headers=key) as a,
        httpx.Client(base_url=two.url, headers=key) as b,
    ):
        assert a.get("/readyz").json()["watch"] == "live"
        spawned = a.post("/v1/agents", json=body("live-rw", busybox)).json()
        ref = spawned["id"]
        assert a.get(f"/v1/agents/{ref}").json()["status"] == "running"
        assert [x["id"] for x in a.get("/v1/agents").json()["items"]] == [ref]
        _eventually(b, ref, "running")

        assert b.post(f"/v1/agents/{ref}/stop", params={"timeout": 0}).status_code == 200
        assert b.get(f"/v1/agents/{ref}").json()["status"] == "stopped"
        assert b.get("/v1/agents", params={"status": "stopped"}).json()["items"][0]["id"] == ref
        _eventually(a, ref, "stopped")

        assert a.post(f"/v1/agents/{ref}/start").json()["status"] == "running"
        assert a.get(f"/v1/agents/{ref}").json()["status"] == "running"
        assert a.delete(f"/v1/agents/{ref}").status_code == 204
        assert_problem(a.get(f"/v1/agents/{ref}"), 404, "agent_not_found")
        assert a.get("/v1/agents").json()["items"] == []
        deadline = time.monotonic() + 10
        while b.get(f"/v1/agents/{ref}").status_code != 404:
            assert time.monotonic() < deadline, "the other replica still reads a deleted agent"
            time.sleep(0.05)


def test_the_metrics_the_model_feeds(api: Api, busybox: str) -> None:
    agent = api.alice.post("/v1/agents", json=body("live-metrics", busybox)).json()
    api.alice.get(f"/v1/agents/{agent['id']}/wait", params={"until": "running"})
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        text = api.anonymous.get("/metrics").text
        if 'agent_api_events_total{type="started"}' in text:
            break
        time.sleep(0.1)
    assert 'agent_api_agents{owner="alice",status="running"} 1.0' in text
    assert "agent_api_spawn_to_running_seconds_count" in text
    assert "agent_api_watch_live 1.0" in text
    assert "agent_api_watch_reconnects_total" in text
    assert "agent_api_ttl_stops_total" in text

"""``GET /v1/events`` against the real engine: what a client watching its agents sees."""

from __future__ import annotations

import docker

from ..conftest import Api
from .helpers import EventStream, assert_problem, body


def _container(engine: docker.DockerClient, agent_id: str) -> docker.models.containers.Container:
    found = engine.containers.list(all=True, filters={"label": f"agents.hive.io/id={agent_id}"})
    assert len(found) == 1
    return found[0]


def test_an_agents_life_as_events_and_only_to_its_owner(
    api: Api, busybox: str, clean_docker: docker.DockerClient
) -> None:
    alice, bob = EventStream(api.alice), EventStream(api.bob)
    assert alice.status == 200
    agent = api.alice.post("/v1/agents", json=body("ev-life", busybox)).json()
    ref = agent["id"]
    created = alice.wait_for(type="created", agent=ref)
    assert created["agent"] == {"id": ref, "name": "ev-life", "owner": "alice"}
    alice.wait_for(type="started", agent=ref, status="running")

    api.alice.post(f"/v1/agents/{ref}/stop", params={"timeout": 0})
    stopped = alice.wait_for(type="stopped", agent=ref, by="call")
    assert stopped["status"] == "stopped"
    api.alice.post(f"/v1/agents/{ref}/start")
    alice.wait_for(after=stopped, type="started", agent=ref)

    # Behind the service's back: not a stop, a kill, with its code.
    _container(clean_docker, ref).kill()
    killed = alice.wait_for(type="failed", agent=ref, reason="killed")
    assert killed["exit_code"] == 137

    assert api.alice.delete(f"/v1/agents/{ref}").status_code == 204
    alice.wait_for(type="deleted", agent=ref)
    assert all(e["agent"]["owner"] == "alice" for e in alice.events if e["agent"])
    assert not [e for e in bob.events if e["agent"] and e["agent"]["id"] == ref]
    alice.close()
    bob.close()


def test_exits_say_their_code_and_an_oom_kill_says_so(api: Api, busybox: str) -> None:
    events = EventStream(api.alice, params={"type": ["exited", "failed"]})
    three = api.alice.post(
        "/v1/agents", json=body("ev-three", busybox, command=["sh", "-c", "sleep 1; exit 3"])
    ).json()
    zero = api.alice.post(
        "/v1/agents", json=body("ev-zero", busybox, command=["sh", "-c", "sleep 1"])
    ).json()
    hog = api.alice.post(
        "/v1/agents",
        json=body(
            "ev-hog",
            busybox,
            command=["sh", "-c", "sleep 1; x=aaaaaaaa; while true; do x=$x$x; done"],
            resources={"memory_mb": 8},
        ),
    ).json()
    failed = events.wait_for(type="failed", agent=three["id"])
    assert (failed["exit_code"], failed["reason"], failed["status"]) == (3, "exit_code", "failed")
    exited = events.wait_for(type="exited", agent=zero["id"])
    assert (exited["exit_code"], exited["status"]) == (0, "exited")
    oom = events.wait_for(type="failed", agent=hog["id"])
    assert oom["reason"] == "oom_killed"
    assert {e["type"] for e in events.events} <= {"exited", "failed"}
    assert api.alice.get(f"/v1/agents/{three['id']}").json()["exit_code"] == 3
    events.close()


def test_a_ttl_stop_says_so(api: Api, busybox: str) -> None:
    events = EventStream(api.alice, params={"type": "stopped"})
    agent = api.alice.post("/v1/agents", json=body("ev-ttl", busybox, ttl_seconds=1)).json()
    stopped = events.wait_for(timeout=60, type="stopped", agent=agent["id"])
    assert stopped["by"] == "ttl"
    events.close()


def test_a_resumed_stream_loses_nothing_and_a_lost_history_says_reset(
    api: Api, busybox: str
) -> None:
    first = EventStream(api.alice)
    agent = api.alice.post("/v1/agents", json=body("ev-resume", busybox)).json()
    seen = first.wait_for(type="started", agent=agent["id"])
    first.close()
    api.alice.post(f"/v1/agents/{agent['id']}/stop", params={"timeout": 0})
    api.alice.delete(f"/v1/agents/{agent['id']}")

    resumed = EventStream(api.alice, last_id=seen["id"])
    resumed.wait_for(type="deleted", agent=agent["id"])
    kinds = [e["type"] for e in resumed.events if e["agent"] and e["agent"]["id"] == agent["id"]]
    assert kinds == ["stopped", "deleted"]
    by_query = EventStream(api.alice, params={"since": seen["id"]})
    by_query.wait_for(type="deleted", agent=agent["id"])

    lost = EventStream(api.alice, last_id="1-0-0")
    reset = lost.wait_for(type="reset")
    assert reset["agent"] is None
    assert lost.events[0] == reset
    for stream in (resumed, by_query, lost):
        stream.close()


def test_filters_scopes_and_caps(api: Api, busybox: str) -> None:
    mine = api.alice.post("/v1/agents", json=body("ev-mine", busybox)).json()
    other = api.alice.post("/v1/agents", json=body("ev-other", busybox)).json()
    by_name = EventStream(api.alice, params={"agent": "ev-mine", "type": "stopped"})
    admin_for_bob = EventStream(api.admin, params={"owner": "bob"})
    for ref in (mine["id"], other["id"]):
        api.alice.post(f"/v1/agents/{ref}/stop", params={"timeout": 0})
    by_name.wait_for(type="stopped", agent=mine["id"])
    every = EventStream(api.admin, params={"agent": other["id"]})
    api.alice.post(f"/v1/agents/{other['id']}/start")
    every.wait_for(type="started", agent=other["id"])
    assert all(e["agent"]["id"] == mine["id"] for e in by_name.events)
    assert not admin_for_bob.events

    assert_problem(api.bob.get("/v1/events", params={"owner": "alice"}), 403, "forbidden")
    assert_problem(api.alice.get("/v1/events", params={"type": "bogus"}), 422, "validation_error")
    assert_problem(api.anonymous.get("/v1/events"), 401, "unauthorized")
    # One key cannot hold every stream: past its cap, 429, and its slots come back.
    held = [EventStream(api.viewer) for _ in range(4)]
    refused = assert_problem(api.viewer.get("/v1/events"), 429, "too_many_event_streams")
    assert "event streams" in refused["detail"]
    assert EventStream(api.bob).status == 200
    for stream in (*held, by_name, admin_for_bob, every):
        stream.close()

"""Faults: the engine going away or hanging, the service killed mid-operation, two service
instances at once, races on one name, and changes made behind the service's back."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import httpx

from orchestrators import labels as L
from testenv.engine import TEST_PREFIX

from ..api.helpers import assert_problem, body, eventually, wait_status
from ..conftest import Keys, StartServer
from .conftest import EngineControl, Recorder
from .helpers import agent_containers, client, instance_volumes


def outage_calls(agent_id: str, busybox: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", "/v1/agents", None),
        ("GET", f"/v1/agents/{agent_id}", None),
        ("POST", "/v1/agents", body("aptest-during-outage", busybox)),
        ("POST", f"/v1/agents/{agent_id}/stop", None),
        ("POST", f"/v1/agents/{agent_id}/start", None),
        ("POST", f"/v1/agents/{agent_id}/restart", None),
        ("GET", f"/v1/agents/{agent_id}/logs", None),
        ("DELETE", f"/v1/agents/{agent_id}", None),
        ("GET", "/readyz", None),
    ]


def assert_all_unavailable(http: httpx.Client, agent_id: str, busybox: str) -> int:
    """Every call that needs the engine is 503, list and get included (the watch is broken:
    reads go to the engine)."""
    calls = outage_calls(agent_id, busybox)
    for method, path, payload in calls:
        answer = http.request(method, path, json=payload)
        assert_problem(answer, 503, "orchestrator_unavailable")
        assert answer.headers["retry-after"] == "5"
    assert http.get("/healthz").status_code == 200
    return len(calls)


def assert_everything_works(http: httpx.Client, agent_id: str, busybox: str) -> None:
    assert http.get(f"/v1/agents/{agent_id}").status_code == 200
    assert agent_id in {a["id"] for a in http.get("/v1/agents").json()["items"]}
    fresh = http.post("/v1/agents", json=body("aptest-after-outage", busybox))
    assert fresh.status_code == 201, fresh.text
    assert http.post(f"/v1/agents/{agent_id}/stop", params={"timeout": 0}).status_code == 200
    assert http.post(f"/v1/agents/{agent_id}/start").json()["status"] == "running"
    assert http.get(f"/v1/agents/{agent_id}/logs").status_code == 200
    assert http.delete("/v1/agents/aptest-after-outage").status_code == 204


def test_the_engine_stops_and_comes_back(
    start_server: StartServer,
    keys: tuple[Keys, Path],
    busybox: str,
    engine_control: EngineControl,
    reliability: Recorder,
) -> None:
    server = start_server(AGENT_API_ENGINE_TIMEOUT="3")
    with client(server.url, keys[0].alice) as alice:
        agent = alice.post("/v1/agents", json=body("aptest-survivor", busybox)).json()
        engine_control.stop()
        try:
            tried = assert_all_unavailable(alice, agent["id"], busybox)
        finally:
            engine_control.start()
        server.wait_ready()
        assert alice.get(f"/v1/agents/{agent['id']}").json()["name"] == "aptest-survivor"
        assert_everything_works(alice, agent["id"], busybox)
    reliability.record(
        "Docker engine stopped while the service runs",
        f"{tried} routes",
        "503 problem+json with Retry-After, readyz 503; engine back: every route works "
        "without restarting the service, the agent is still there",
    )


def test_the_engine_hangs_and_recovers(
    start_server: StartServer,
    keys: tuple[Keys, Path],
    busybox: str,
    engine_control: EngineControl,
    reliability: Recorder,
) -> None:
    server = start_server(AGENT_API_ENGINE_TIMEOUT="2", AGENT_API_WATCH_HEARTBEAT="1")
    with client(server.url, keys[0].alice, timeout=20) as alice:
        agent = alice.post("/v1/agents", json=body("aptest-frozen", busybox)).json()
        engine_control.freeze()
        try:
            started = time.monotonic()
            # The watch's connection stays open and silent: the heartbeat (a 1 s silence,
            # then a ping that waits 1 s) breaks it; until then a read may come from the
            # model as last seen (plus one 2 s read already on its way, plus slack).
            eventually(
                lambda: alice.get(f"/v1/agents/{agent['id']}").status_code == 503,
                2 * 1 + 1 + 2 + 5,
                "get still answered the agent as last seen",
            )
            noticed = time.monotonic() - started
            tried = assert_all_unavailable(alice, agent["id"], busybox)
            waited = time.monotonic() - started - noticed
        finally:
            engine_control.thaw()
        server.wait_ready()
        assert_everything_works(alice, agent["id"], busybox)
    reliability.record(
        "Docker engine frozen (SIGSTOP): calls hang",
        f"{tried} routes",
        f"the 1 s watch heartbeat broke the watch ({noticed:.0f} s after the freeze): list "
        "and get 503 like every call that needs the engine, each after the 2 s engine "
        f"timeout ({waited:.0f} s for all), none hung; readyz 503; thawed: every route works",
    )


def spawn_quietly(http: httpx.Client, index: int, busybox: str) -> httpx.Response | None:
    try:
        return http.post(
            "/v1/agents",
            json=body(f"aptest-crash-{index}", busybox, workspace=True),
            headers={"Idempotency-Key": f"crash-{index}"},
        )
    except httpx.TransportError:
        return None


def test_the_service_killed_during_spawns(
    start_server: StartServer,
    keys: tuple[Keys, Path],
    busybox: str,
    clean_docker: docker.DockerClient,
    reliability: Recorder,
) -> None:
    settings = {"AGENT_API_ORPHAN_GRACE_SECONDS": "2", "AGENT_API_SWEEP_INTERVAL": "1"}
    server = start_server(AGENT_API_MAX_AGENTS_PER_OWNER="0", **settings)
    count = 12
    with client(server.url, keys[0].alice) as alice:
        with ThreadPoolExecutor(count) as pool:
            futures = [pool.submit(spawn_quietly, alice, i, busybox) for i in range(count)]
            time.sleep(0.4)
            server.kill()
            first = [f.result() for f in futures]
        server.start()

        # Nothing the engine has is invisible to the API.
        engine_names = {c["Labels"][L.NAME] for c in agent_containers(clean_docker)}
        listed = {a["name"] for a in alice.get("/v1/agents").json()["items"]}
        assert engine_names == listed

        # Retrying with the same keys gives one agent per name, running.
        again = [spawn_quietly(alice, i, busybox) for i in range(count)]
        assert all(r is not None and r.status_code == 201 for r in again), [
            r.text for r in again if r is not None
        ]
        for done, retried in zip(first, again, strict=True):
            if done is not None and done.status_code == 201 and retried is not None:
                assert retried.json()["id"] == done.json()["id"]
        names = [c["Labels"][L.NAME] for c in agent_containers(clean_docker)]
        assert sorted(names) == sorted(f"aptest-crash-{i}" for i in range(count))
        for i in range(count):
            wait_status(alice, f"aptest-crash-{i}", "running")

        # The sweep removes volumes whose spawn was cut off before the container existed.
        time.sleep(4)
        live = {c["Labels"][L.ID] for c in agent_containers(clean_docker)}
        assert {v["Labels"][L.ID] for v in instance_volumes(clean_docker)} <= live
    answered = sum(1 for r in first if r is not None)
    reliability.record(
        "agent-api SIGKILLed during concurrent spawns (workspace volumes, Idempotency-Key)",
        f"{count} spawns, {answered} answered before the kill",
        "after restart the API lists exactly what the engine has; the retried spawns return "
        "the same agents (a created-but-not-started one is started), one per name; orphaned "
        "volumes swept",
    )


def test_the_service_killed_during_deletes(
    start_server: StartServer,
    keys: tuple[Keys, Path],
    busybox: str,
    clean_docker: docker.DockerClient,
    reliability: Recorder,
) -> None:
    settings = {"AGENT_API_ORPHAN_GRACE_SECONDS": "2", "AGENT_API_SWEEP_INTERVAL": "1"}
    server = start_server(**settings)
    count = 10
    with client(server.url, keys[0].alice) as alice:
        for i in range(count):
            created = alice.post(
                "/v1/agents", json=body(f"aptest-del-{i}", busybox, workspace=True)
            )
            assert created.status_code == 201

        def delete(index: int) -> int | None:
            try:
                return alice.delete(f"/v1/agents/aptest-del-{index}").status_code
            except httpx.TransportError:
                return None

        with ThreadPoolExecutor(count) as pool:
            futures = [pool.submit(delete, i) for i in range(count)]
            time.sleep(0.3)
            server.kill()
            first = [f.result() for f in futures]
        server.start()
        engine_names = {c["Labels"][L.NAME] for c in agent_containers(clean_docker)}
        assert engine_names == {a["name"] for a in alice.get("/v1/agents").json()["items"]}
        retried = [delete(i) for i in range(count)]
        assert set(retried) <= {204, 404}
        assert agent_containers(clean_docker) == []
        time.sleep(4)
        assert instance_volumes(clean_docker) == []
    reliability.record(
        "agent-api SIGKILLed during concurrent deletes",
        f"{count} deletes, {sum(1 for r in first if r)} answered before the kill",
        "after restart the list matches the engine; retried deletes answer 204 or 404; "
        "no container or volume left",
    )


def test_two_instances_share_the_same_agents(
    start_server: StartServer,
    keys: tuple[Keys, Path],
    busybox: str,
    reliability: Recorder,
) -> None:
    first, second = start_server(), start_server()
    names = [f"aptest-shared-{i}" for i in range(6)]
    with client(first.url, keys[0].alice) as one, client(second.url, keys[0].alice) as two:
        for name in names:
            assert one.post("/v1/agents", json=body(name, busybox)).status_code == 201
        statuses: list[int] = []
        lock = threading.Lock()

        def worker(http: httpx.Client, seed: int) -> None:
            chance = random.Random(seed)
            for _ in range(15):
                name = chance.choice(names)
                action = chance.choice(["stop", "start", "restart", "get"])
                if action == "get":
                    answer = http.get(f"/v1/agents/{name}")
                else:
                    answer = http.post(f"/v1/agents/{name}/{action}", params={"timeout": 0})
                with lock:
                    statuses.append(answer.status_code)

        threads = [
            threading.Thread(target=worker, args=(http, n))
            for n, http in enumerate([one, two, one, two])
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert set(statuses) == {200}, statuses
        assert one.get("/v1/agents").json() == two.get("/v1/agents").json()
        for name in names:
            assert one.post(f"/v1/agents/{name}/start").json()["status"] == "running"
    reliability.record(
        "two service instances, concurrent stop/start/restart/get on the same agents",
        f"{len(statuses)} operations from 4 clients",
        "all 200, both instances list the same agents",
    )


def test_twenty_concurrent_spawns_of_one_name(
    api_alice: httpx.Client, busybox: str, clean_docker: docker.DockerClient, reliability: Recorder
) -> None:
    with ThreadPoolExecutor(20) as pool:
        answers = list(
            pool.map(
                lambda _: api_alice.post("/v1/agents", json=body("aptest-one", busybox)), range(20)
            )
        )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201] + [409] * 19
    assert len(agent_containers(clean_docker)) == 1
    reliability.record(
        "20 concurrent spawns with the same name",
        20,
        "exactly one 201, nineteen 409, one container",
    )


def test_changes_behind_the_services_back(
    api_alice: httpx.Client, busybox: str, clean_docker: docker.DockerClient, reliability: Recorder
) -> None:
    for name in ("aptest-removed", "aptest-stopped", "aptest-renamed"):
        assert api_alice.post("/v1/agents", json=body(name, busybox)).status_code == 201
    clean_docker.api.remove_container(f"{TEST_PREFIX}alice.aptest-removed", force=True)
    clean_docker.api.stop(f"{TEST_PREFIX}alice.aptest-stopped", timeout=0)
    clean_docker.api.rename(f"{TEST_PREFIX}alice.aptest-renamed", f"{TEST_PREFIX}moved-away")

    assert_problem(api_alice.get("/v1/agents/aptest-removed"), 404, "agent_not_found")
    assert_problem(api_alice.delete("/v1/agents/aptest-removed"), 404, "agent_not_found")
    assert api_alice.get("/v1/agents/aptest-stopped").json()["status"] == "stopped"
    assert api_alice.get("/v1/agents/aptest-renamed").json()["status"] == "running"
    listed = sorted(a["name"] for a in api_alice.get("/v1/agents").json()["items"])
    assert listed == ["aptest-renamed", "aptest-stopped"]
    assert api_alice.delete("/v1/agents/aptest-renamed").status_code == 204
    assert api_alice.delete("/v1/agents/aptest-renamed").status_code == 404
    reliability.record(
        "container removed, stopped or renamed behind the service's back",
        3,
        "list and get tell the truth (gone, stopped, still found by name); delete stays idempotent",
    )


def test_agents_that_cannot_run(
    api_alice: httpx.Client, busybox: str, clean_docker: docker.DockerClient, reliability: Recorder
) -> None:
    missing = api_alice.post(
        "/v1/agents", json=body("aptest-ghost", "aptest/not-here:1", workspace=True)
    )
    assert_problem(missing, 422, "image_not_found")
    assert agent_containers(clean_docker) == []
    assert instance_volumes(clean_docker) == []
    quick = api_alice.post("/v1/agents", json=body("aptest-quick", busybox, command=["true"]))
    crash = api_alice.post(
        "/v1/agents", json=body("aptest-crash", busybox, command=["sh", "-c", "exit 7"])
    )
    oom = api_alice.post(
        "/v1/agents",
        json=body(
            "aptest-hog",
            busybox,
            command=["dd", "if=/dev/zero", "bs=64M", "count=1", "of=/dev/null"],
            resources={"memory_mb": 16},
        ),
    )
    assert {quick.status_code, crash.status_code, oom.status_code} == {201}
    assert wait_status(api_alice, "aptest-quick", "exited")["detail"] == "exited with code 0"
    assert wait_status(api_alice, "aptest-crash", "failed")["detail"] == "exited with code 7"
    assert "out of memory" in wait_status(api_alice, "aptest-hog", "failed")["detail"]
    reliability.record(
        "spawn of a missing image, a command that exits at once, an OOM kill",
        4,
        "422 image_not_found leaving nothing; statuses exited (code 0), failed (code 7), "
        "failed (out of memory)",
    )

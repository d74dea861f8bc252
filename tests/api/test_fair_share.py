"""One key cannot starve the others: long stops, stalled pulls, disk and aggregate limits.

Everything runs against the real engine through the service process. Nothing here asserts
a duration: a call that would starve the others shows up as a read that does not answer
(the client gives up and the test fails), not as a slow one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import docker
import httpx
import pytest

from testenv.engine import TEST_PREFIX
from testenv.registry import SilentRegistry

from ..conftest import Api, Keys, StartServer
from .helpers import assert_problem, body

# Ignores SIGTERM (it only says so), as a stuck agent would.
STUBBORN = ["sh", "-c", "trap 'echo got-term' TERM; echo up; while true; do sleep 1; done"]


def _clients(url: str, keys: Keys) -> dict[str, httpx.Client]:
    made = {
        name: httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=httpx.Timeout(60)
        )
        for name, key in (("admin", keys.admin), ("alice", keys.alice), ("bob", keys.bob))
    }
    made["anonymous"] = httpx.Client(base_url=url, timeout=60)
    return made


@contextlib.contextmanager
def clients_of(url: str, keys: Keys) -> Iterator[dict[str, httpx.Client]]:
    made = _clients(url, keys)
    try:
        yield made
    finally:
        for client in made.values():
            client.close()


def _container(docker_client: docker.DockerClient, owner: str, name: str) -> str:
    return f"{TEST_PREFIX}{owner}.{name}"


def _wait_for_log(docker_client: docker.DockerClient, container: str, text: bytes) -> None:
    for _ in range(600):
        if text in docker_client.api.logs(container):
            return
        time.sleep(0.1)
    raise AssertionError(f"{container} never logged {text!r}")


# -- stop and restart ---------------------------------------------------------------------


def test_long_grace_stops_starve_no_one_and_are_capped_per_key_and_owner(
    start_server: StartServer, keys: tuple[Keys, Path], busybox: str
) -> None:
    """N long-grace stops of agents that ignore SIGTERM are pending; another owner's list,
    get and /readyz are served meanwhile, and the next slow call is 429."""
    cap = 3
    server = start_server(
        AGENT_API_ENGINE_THREADS="2",  # fewer than the pending stops: none may hold one
        AGENT_API_MAX_SLOW_CALLS_PER_KEY=str(cap),
        AGENT_API_MAX_SLOW_CALLS_PER_OWNER=str(cap),
    )
    docker_client = docker.from_env()
    with clients_of(server.url, keys[0]) as c, ThreadPoolExecutor(cap) as pool:
        names = [f"stubborn-{i}" for i in range(cap + 1)]
        for name in names:
            spawned = c["alice"].post("/v1/agents", json=body(name, busybox, command=STUBBORN))
            assert spawned.status_code == 201, spawned.text
        mine = c["bob"].post("/v1/agents", json=body("steady", busybox))
        assert mine.status_code == 201, mine.text
        for name in names:
            _wait_for_log(docker_client, _container(docker_client, "alice", name), b"up")

        stopper = _clients(server.url, keys[0])
        pending: list[Future[httpx.Response]] = [
            pool.submit(stopper["alice"].post, f"/v1/agents/{name}/stop", params={"timeout": 3600})
            for name in names[:cap]
        ]
        try:
            for name in names[:cap]:
                _wait_for_log(docker_client, _container(docker_client, "alice", name), b"got-term")
            # The stops are waiting out their grace. Everyone else is served.
            assert c["bob"].get("/v1/agents").status_code == 200
            assert c["bob"].get("/v1/agents/steady").json()["status"] == "running"
            assert c["anonymous"].get("/readyz").status_code == 200
            assert c["admin"].get("/v1/agents").status_code == 200
            # The key has `cap` slow calls in flight: the next one is refused.
            refused = c["alice"].post(f"/v1/agents/{names[cap]}/stop", params={"timeout": 5})
            problem = assert_problem(refused, 429, "rate_limited")
            assert int(refused.headers["Retry-After"]) >= 1
            assert "key" in problem["detail"]
            restart = c["alice"].post(f"/v1/agents/{names[cap]}/restart")
            assert_problem(restart, 429, "rate_limited")
            # Another key acting on the same owner's agents meets the owner's cap.
            by_admin = c["admin"].post(
                f"/v1/agents/{names[cap]}/action",
                params={"owner": "alice"},
                json={"action": "stop", "timeout": 5},
            )
            assert "owner" in assert_problem(by_admin, 429, "rate_limited")["detail"]
            # Fast calls of the same key still go through.
            assert c["alice"].get(f"/v1/agents/{names[cap]}").json()["status"] == "running"
            assert all(not f.done() for f in pending)
        finally:
            for name in names:
                c["alice"].delete(f"/v1/agents/{name}")
            outcomes = [f.result(timeout=120) for f in pending]
            for client in stopper.values():
                client.close()
        # Deleted while their stop waited: the stops answer that the agent is gone.
        assert {r.status_code for r in outcomes} <= {200, 404}
        # The slots were given back.
        again = c["bob"].post("/v1/agents/steady/stop", params={"timeout": 0})
        assert again.status_code == 200, again.text
    docker_client.close()


def test_a_stop_still_kills_at_the_end_of_its_grace(api: Api, busybox: str) -> None:
    spawned = api.alice.post("/v1/agents", json=body("stubborn", busybox, command=STUBBORN))
    assert spawned.status_code == 201, spawned.text
    stopped = api.alice.post("/v1/agents/stubborn/stop", params={"timeout": 1})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["status"] == "stopped"  # SIGKILL: 137
    restarted = api.alice.post("/v1/agents/stubborn/restart", params={"timeout": 1})
    assert restarted.json()["status"] == "running"


# -- image pulls ----------------------------------------------------------------------------


@pytest.fixture
def silent_registry() -> Iterator[SilentRegistry]:
    registry = SilentRegistry()
    yield registry
    registry.close()


def test_a_stalled_pull_fails_by_its_deadline_while_others_are_served(
    start_server: StartServer, keys: tuple[Keys, Path], silent_registry: SilentRegistry
) -> None:
    server = start_server(
        AGENT_API_PULL_MISSING_IMAGES="true",
        AGENT_API_ALLOW_PRIVATE_REGISTRIES="true",  # the stalled registry is on 127.0.0.1
        AGENT_API_PULL_TIMEOUT="10",
        AGENT_API_MAX_PULLS_PER_OWNER="1",
    )
    image = f"127.0.0.1:{silent_registry.port}/stalled/agent:1"
    with clients_of(server.url, keys[0]) as c, ThreadPoolExecutor(1) as pool:
        first = pool.submit(c["alice"].post, "/v1/agents", json=body("pulled", image))
        assert silent_registry.connected.wait(60), "the engine never reached the registry"
        # The pull is stalled: other owners are served, the owner's next pull is refused.
        assert c["bob"].get("/v1/agents").status_code == 200
        assert c["anonymous"].get("/readyz").status_code == 200
        second = c["alice"].post("/v1/agents", json=body("pulled-2", f"{image}-other"))
        assert_problem(second, 429, "rate_limited")
        assert int(second.headers["Retry-After"]) >= 1
        failed = first.result(timeout=120)
        problem = assert_problem(failed, 422, "image_not_found")
        assert "did not finish within 10 s" in problem["detail"]
        assert_problem(c["alice"].get("/v1/agents/pulled"), 404, "agent_not_found")
        assert c["alice"].get("/v1/agents").json()["items"] == []


@pytest.mark.parametrize(
    "registry",
    ["127.0.0.1:{port}", "localhost:{port}", "10.20.30.40:5000", "169.254.169.254"],
)
def test_private_registries_are_refused_before_any_pull(
    start_server: StartServer,
    keys: tuple[Keys, Path],
    silent_registry: SilentRegistry,
    registry: str,
) -> None:
    server = start_server(AGENT_API_PULL_MISSING_IMAGES="true")
    image = registry.format(port=silent_registry.port) + "/team/agent:1"
    with clients_of(server.url, keys[0]) as c:
        refused = c["alice"].post("/v1/agents", json=body("private", image))
        problem = assert_problem(refused, 403, "policy_violation")
        assert "private or loopback" in problem["detail"]
        assert c["alice"].get("/v1/agents").json()["items"] == []
    assert not silent_registry.connected.is_set()


# -- disk -----------------------------------------------------------------------------------


def test_docker_agents_get_log_rotation_by_default(
    api: Api, busybox: str, clean_docker: docker.DockerClient
) -> None:
    assert api.alice.post("/v1/agents", json=body("chatty", busybox)).status_code == 201
    info = clean_docker.api.inspect_container(f"{TEST_PREFIX}alice.chatty")
    assert info["HostConfig"]["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "10m", "max-file": "3"},
    }


def test_log_rotation_comes_from_the_settings(
    start_server: StartServer,
    keys: tuple[Keys, Path],
    busybox: str,
    clean_docker: docker.DockerClient,
) -> None:
    server = start_server(
        AGENT_API_AGENT_LOG_DRIVER="local",
        AGENT_API_AGENT_LOG_MAX_SIZE="1m",
        AGENT_API_AGENT_LOG_MAX_FILES="2",
    )
    with clients_of(server.url, keys[0]) as c:
        spawned = c["alice"].post("/v1/agents", json=body("chatty", busybox))
        assert spawned.status_code == 201, spawned.text
        info = clean_docker.api.inspect_container(f"{TEST_PREFIX}alice.chatty")
        assert info["HostConfig"]["LogConfig"] == {
            "Type": "local",
            "Config": {"max-size": "1m", "max-file": "2"},
        }
        # Logs are still read through the API with the local driver.
        logs = c["alice"].get("/v1/agents/chatty/logs")
        assert logs.status_code == 200


# -- aggregate limits -----------------------------------------------------------------------


def test_per_owner_ceilings_on_cpus_and_memory(
    start_server: StartServer, keys: tuple[Keys, Path], busybox: str
) -> None:
    server = start_server(AGENT_API_MAX_CPUS_PER_OWNER="1", AGENT_API_MAX_MEMORY_MB_PER_OWNER="256")
    small = {"cpus": 0.5, "memory_mb": 128}
    with clients_of(server.url, keys[0]) as c:
        first = c["alice"].post("/v1/agents", json=body("one", busybox, resources=small))
        assert first.status_code == 201, first.text
        cpus = c["alice"].post(
            "/v1/agents", json=body("two", busybox, resources={"cpus": 0.75, "memory_mb": 64})
        )
        problem = assert_problem(cpus, 403, "agent_quota_exceeded")
        assert problem["detail"].startswith("cpus:")
        memory = c["alice"].post(
            "/v1/agents", json=body("three", busybox, resources={"cpus": 0.25, "memory_mb": 200})
        )
        problem = assert_problem(memory, 403, "agent_quota_exceeded")
        assert problem["detail"].startswith("memory_mb:")
        # A stopped agent still counts (it may be started again).
        assert c["alice"].post("/v1/agents/one/stop", params={"timeout": 0}).status_code == 200
        again = c["alice"].post(
            "/v1/agents", json=body("four", busybox, resources=small | {"cpus": 0.75})
        )
        assert_problem(again, 403, "agent_quota_exceeded")
        # What fits still fits, and other owners have ceilings of their own.
        fits = c["alice"].post("/v1/agents", json=body("five", busybox, resources=small))
        assert fits.status_code == 201, fits.text
        other = c["bob"].post(
            "/v1/agents", json=body("bobs", busybox, resources={"cpus": 1.0, "memory_mb": 256})
        )
        assert other.status_code == 201, other.text
        names = {a["name"] for a in c["alice"].get("/v1/agents").json()["items"]}
        assert names == {"one", "five"}

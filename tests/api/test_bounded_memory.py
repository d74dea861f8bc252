"""One key cannot grow the service's memory: the built agent views are bounded in bytes and
keyed on what never changes, and one spawn's env, secrets and labels are capped. Against
the service as a process, its RSS read from /proc."""

from __future__ import annotations

import re

import docker
import httpx

from testenv.engine import TEST_PREFIX

from ..conftest import Api, StartServer
from .helpers import assert_problem, body

MIB = 1024 * 1024
BUDGET = 2 * MIB


def _big_env(size: int) -> dict[str, str]:
    """``size`` bytes of env values, in values of 25,000 characters."""
    count = max(1, size // 25_000)
    return {f"BLOB_{index}": chr(ord("a") + index % 26) * 25_000 for index in range(count)}


def _gauge(client: httpx.Client, name: str) -> float:
    text = client.get("/metrics").text
    found = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} is not in /metrics"
    return float(found.group(1))


def test_ttl_renewals_of_a_big_agent_do_not_grow_memory(
    start_server: StartServer, api: Api, busybox: str
) -> None:
    server = start_server(
        AGENT_API_AGENT_CACHE_BYTES=str(BUDGET),
        AGENT_API_MAX_SPAWN_ENV_BYTES="240000",
        AGENT_API_SWEEP_INTERVAL="0",
    )
    alice = httpx.Client(base_url=server.url, headers={"X-API-Key": api.keys.alice}, timeout=60)
    with alice:
        spec = body("aptest-big", busybox, env=_big_env(200_000), ttl_seconds=3600)
        assert alice.post("/v1/agents", json=spec).status_code == 201
        for ttl in range(100, 110):  # warm up
            assert alice.post("/v1/agents/aptest-big/ttl", json={"ttl_seconds": ttl}).is_success
        rss_before = server.rss_bytes()

        renewals = 150
        for ttl in range(1000, 1000 + renewals):
            renewed = alice.post("/v1/agents/aptest-big/ttl", json={"ttl_seconds": ttl})
            assert renewed.status_code == 200
            assert alice.get("/v1/agents/aptest-big").json()["expires_at"] is not None

        growth = server.rss_bytes() - rss_before
        cached = _gauge(alice, "agent_api_view_cache_bytes")
        assert _gauge(alice, "agent_api_view_cache_max_bytes") == BUDGET
    assert 200_000 < cached <= BUDGET  # the one agent's view, once
    pushed = renewals * 200_000  # each renewal used to keep another copy of the spec, twice
    assert growth < pushed / 4, (growth, pushed)


def test_many_big_agents_stay_within_the_cache_budget(
    start_server: StartServer, api: Api, busybox: str
) -> None:
    server = start_server(
        AGENT_API_AGENT_CACHE_BYTES=str(BUDGET), AGENT_API_MAX_SPAWN_ENV_BYTES="240000"
    )
    with httpx.Client(
        base_url=server.url, headers={"X-API-Key": api.keys.alice}, timeout=60
    ) as alice:
        for index in range(14):  # 14 x 200 KB of env: past the 2 MiB budget
            spec = body(f"aptest-big-{index}", busybox, env=_big_env(200_000))
            assert alice.post("/v1/agents", json=spec).status_code == 201
            assert _gauge(alice, "agent_api_view_cache_bytes") <= BUDGET
        listed = alice.get("/v1/agents").json()["items"]
        assert len(listed) == 14
        assert all(len(agent["env"]["BLOB_0"]) == 25_000 for agent in listed)
        assert _gauge(alice, "agent_api_view_cache_bytes") <= BUDGET


def test_env_past_the_spawn_limit_is_422_and_leaves_nothing(
    api: Api, busybox: str, clean_docker: docker.DockerClient
) -> None:
    spec = body("aptest-too-big", busybox, env=_big_env(50_000), secrets={"TOKEN": "s" * 20_000})
    problem = assert_problem(api.alice.post("/v1/agents", json=spec), 422, "invalid_spec")
    assert "65536" in problem["detail"]
    assert "s" * 100 not in problem["detail"]
    assert api.alice.get("/v1/agents/aptest-too-big").status_code == 404
    assert not clean_docker.containers.list(
        all=True, filters={"name": f"{TEST_PREFIX}alice.aptest-too-big"}
    )
    # Within the limit the same agent spawns.
    spec["secrets"] = {"TOKEN": "s" * 10_000}
    assert api.alice.post("/v1/agents", json=spec).status_code == 201

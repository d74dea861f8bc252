"""An engine that stops answering with the watch's connection open (what a frozen engine
does): the heartbeat counts the watch as broken within its bound, reads go to the engine
and are 503 instead of the agents as last seen; once the engine answers, the model is
rebuilt and reads tell the truth, including what changed meanwhile.

The service reaches the real engine through ``EngineProxy``, which holds every byte while
paused: the engine, shared with everything else on the machine, is never frozen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from orchestrators import labels as L
from testenv.engineproxy import EngineProxy

from ..conftest import Keys, StartServer
from .helpers import assert_problem, body, eventually

HEARTBEAT = 1.0
ENGINE_TIMEOUT = 5.0  # spawns on a busy engine take a while; each read of the outage waits it out
# The heartbeat's bound (a silence, then a ping that waits as long), plus one read that
# was already on its way to the engine when the watch broke, plus slack for a busy machine.
NOTICED_WITHIN = 2 * HEARTBEAT + 1 + ENGINE_TIMEOUT + 5


@pytest.fixture
def engine_proxy(docker_client: docker.DockerClient) -> Iterator[EngineProxy]:
    proxy = EngineProxy()
    yield proxy
    proxy.close()


def _watch_live(http: httpx.Client) -> bool:
    answer = http.get("/readyz")
    return answer.status_code == 200 and answer.json()["watch"] == "live"


def test_a_silent_engine_breaks_the_watch_and_reads_tell_the_truth_after(
    start_server: StartServer,
    keys: tuple[Keys, Path],
    busybox: str,
    clean_docker: docker.DockerClient,
    engine_proxy: EngineProxy,
) -> None:
    server = start_server(
        DOCKER_HOST=engine_proxy.url,
        AGENT_API_WATCH_HEARTBEAT=str(HEARTBEAT),
        AGENT_API_ENGINE_TIMEOUT=str(ENGINE_TIMEOUT),
    )
    headers = {"Authorization": f"Bearer {keys[0].alice}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as alice:
        kept, gone = (_spawn(alice, name, busybox) for name in ("silent-kept", "silent-gone"))
        eventually(lambda: _watch_live(alice), 30, "the watch never went live")
        assert alice.get(f"/v1/agents/{gone['id']}").json()["status"] == "running"

        engine_proxy.pause()
        try:
            # Behind the service's back, on the engine's own socket: the service cannot
            # see it while its engine is silent.
            _remove(clean_docker, gone["id"])

            eventually(
                lambda: alice.get(f"/v1/agents/{gone['id']}").status_code == 503,
                NOTICED_WITHIN,
                "get kept answering the agent as last seen",
            )
            for path in (f"/v1/agents/{kept['id']}", "/v1/agents"):
                assert_problem(alice.get(path), 503, "orchestrator_unavailable")
            ready = assert_problem(alice.get("/readyz"), 503, "orchestrator_unavailable")
            assert ready["watch"].startswith("broken: "), ready
            assert "agent_api_watch_live 0.0" in alice.get("/metrics").text
            assert alice.get("/healthz").status_code == 200
        finally:
            engine_proxy.resume()

        eventually(lambda: _watch_live(alice), 60, "the watch never came back")
        assert_problem(alice.get(f"/v1/agents/{gone['id']}"), 404, "agent_not_found")
        assert alice.get(f"/v1/agents/{kept['id']}").json()["status"] == "running"
        listed = alice.get("/v1/agents").json()["items"]
        assert [(a["id"], a["status"]) for a in listed] == [(kept["id"], "running")]
        # The watch follows the engine again.
        _remove(clean_docker, kept["id"])
        eventually(
            lambda: alice.get(f"/v1/agents/{kept['id']}").status_code == 404,
            10,
            "the watch missed a removal",
        )


def _spawn(http: httpx.Client, name: str, image: str) -> dict[str, Any]:
    created = http.post("/v1/agents", json=body(name, image))
    assert created.status_code == 201, created.text
    agent: dict[str, Any] = created.json()
    return agent


def _remove(engine: docker.DockerClient, agent_id: str) -> None:
    (container,) = engine.api.containers(all=True, filters={"label": [f"{L.ID}={agent_id}"]})
    engine.api.remove_container(container["Id"], force=True)

"""The service as a process: health, metrics, docs, restarts, a missing engine, bad config."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from testenv.server import ServerProcess

from ..conftest import Api, Keys, server_env
from .helpers import assert_problem, body, serve


def test_health_ready_metrics_and_openapi_need_no_key(api: Api) -> None:
    assert api.anonymous.get("/healthz").json() == {"status": "ok"}
    assert api.anonymous.get("/readyz").json() == {"status": "ready", "watch": "live"}
    api.admin.get("/v1/agents")
    metrics = api.anonymous.get("/metrics")
    assert metrics.status_code == 200
    assert 'agent_api_requests_total{method="GET",route="/v1/agents",status="200"}' in metrics.text
    spec = api.anonymous.get("/openapi.json").json()
    assert {"/v1/agents", "/v1/agents/{agent}/logs", "/v1/agents/{agent}/action"} <= set(
        spec["paths"]
    )
    # The interactive docs are off unless AGENT_API_EXPOSE_DOCS says otherwise.
    assert api.anonymous.get("/docs").status_code == 404
    assert api.anonymous.get("/redoc").status_code == 404


def test_every_response_carries_a_request_id(api: Api) -> None:
    echoed = api.admin.get("/v1/agents", headers={"X-Request-ID": "trace-me-123"})
    assert echoed.headers["x-request-id"] == "trace-me-123"
    made = api.anonymous.get("/healthz").headers["x-request-id"]
    assert len(made) == 32
    assert '"request_id": "trace-me-123"' in api.server.logs()


def test_unknown_routes_and_methods_are_problems(api: Api) -> None:
    assert_problem(api.admin.get("/v1/nothing"), 404, "not_found")
    assert_problem(api.admin.put("/v1/agents"), 405, "method_not_allowed")


def test_a_restarted_service_sees_the_same_agents(api: Api, busybox: str) -> None:
    for index in range(3):
        created = api.alice.post(
            "/v1/agents", json=body(f"aptest-keep-{index}", busybox, labels={"i": str(index)})
        )
        assert created.status_code == 201
    api.alice.post("/v1/agents/aptest-keep-1/stop", params={"timeout": 0})
    before = api.admin.get("/v1/agents").json()

    api.server.restart()

    assert api.admin.get("/v1/agents").json() == before
    assert api.alice.get("/v1/agents/aptest-keep-1").json()["status"] == "stopped"


def test_two_instances_answer_alike(
    api: Api, busybox: str, keys: tuple[Keys, Path], tmp_path: Path
) -> None:
    second = ServerProcess(server_env(*keys), tmp_path / "second.log")
    second.start()
    try:
        with httpx.Client(
            base_url=second.url, headers={"X-API-Key": keys[0].alice}, timeout=60
        ) as other:
            agent = api.alice.post("/v1/agents", json=body("aptest-shared", busybox)).json()
            assert other.get(f"/v1/agents/{agent['id']}").json() == agent
            assert (
                other.post(f"/v1/agents/{agent['id']}/stop", params={"timeout": 0}).status_code
                == 200
            )
            assert api.alice.get(f"/v1/agents/{agent['id']}").json()["status"] == "stopped"
            assert_problem(
                other.post("/v1/agents", json=body("aptest-shared", busybox)),
                409,
                "agent_name_conflict",
            )
    finally:
        second.stop()


def test_an_unreachable_engine_gives_503_with_retry_after(
    keys: tuple[Keys, Path], tmp_path: Path
) -> None:
    env = {**server_env(*keys), "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    down = ServerProcess(env, tmp_path / "down.log")
    down.start(wait_ready=False)
    try:
        with httpx.Client(base_url=down.url, headers={"X-API-Key": keys[0].admin}) as client:
            ready = client.get("/readyz")
            assert_problem(ready, 503, "orchestrator_unavailable")
            assert ready.headers["retry-after"] == "5"
            listed = client.get("/v1/agents")
            assert_problem(listed, 503, "orchestrator_unavailable")
            assert listed.headers["retry-after"] == "5"
            assert client.get("/healthz").status_code == 200
    finally:
        down.stop()


def test_the_service_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    result = serve({}, tmp_path)
    assert result.returncode == 2
    assert "no API key configured" in result.stderr


@pytest.mark.parametrize("key", ["short-secret", "  "])
def test_a_weak_key_is_refused_without_being_printed(tmp_path: Path, key: str) -> None:
    result = serve({"AGENT_API_KEY": key}, tmp_path)
    assert result.returncode == 2
    assert "at least 32 characters" in result.stderr or "whitespace" in result.stderr
    if key.strip():
        assert key not in result.stdout + result.stderr

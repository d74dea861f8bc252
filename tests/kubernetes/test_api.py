"""The HTTP API with ORCHESTRATOR=kubernetes: the service as a process, against the API server.

The same routes, bodies and answers as with Docker; what differs is only what Kubernetes
does differently (a pod's log starts with the fake kubelet's own line).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from kubernetes import client

from testenv.kube_env import KubeTestEnv
from testenv.kube_fixture import fresh_namespace, leftovers, wait_until
from testenv.server import ServerProcess

from ..api.helpers import EventStream, assert_problem, body
from ..conftest import Api, Keys, server_env
from .helpers import kubelet, pod_names

pytestmark = pytest.mark.kubernetes

IMAGE = "aptest/busybox:latest"


def kube_server_env(keys: tuple[Keys, Path], env: KubeTestEnv, namespace: str) -> dict[str, str]:
    return {
        **server_env(*keys),
        "ORCHESTRATOR": "kubernetes",
        "AGENT_API_KUBECONFIG": str(env.kubeconfig),
        "AGENT_API_KUBE_NAMESPACE": namespace,
        "AGENT_API_SPAWN_WAIT_SECONDS": "30",
    }


@pytest.fixture(scope="module")
def kube_service(
    kube_env: KubeTestEnv, keys: tuple[Keys, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, str]]:
    """One service process for the module, on its own namespace."""
    with fresh_namespace(kube_env) as namespace:
        process = ServerProcess(
            kube_server_env(keys, kube_env, namespace),
            tmp_path_factory.mktemp("kube-server") / "agent-api.log",
        )
        process.start()
        try:
            yield process, namespace
        finally:
            process.stop()


@pytest.fixture
def kapi(
    kube_service: tuple[ServerProcess, str], keys: tuple[Keys, Path], kube_env: KubeTestEnv
) -> Iterator[Api]:
    """Clients of the service; after the test every agent is deleted through the API and the
    namespace must be empty."""
    server, namespace = kube_service
    made = Api(server, keys[0])
    yield made
    try:
        for agent in made.admin.get("/v1/agents", params={"limit": 1000}).json()["items"]:
            assert made.admin.delete(f"/v1/agents/{agent['id']}").status_code == 204
        admin = kube_env.api_client()
        wait_until("an empty namespace", lambda: not leftovers(admin, namespace))
    finally:
        made.close()


def spawn(api: Api, name: str, **extra: object) -> dict[str, object]:
    response = api.alice.post("/v1/agents", json=body(name, IMAGE, **extra))
    assert response.status_code == 201, response.text
    agent: dict[str, object] = response.json()
    return agent


def test_spawn_get_and_list(kapi: Api) -> None:
    response = kapi.alice.post(
        "/v1/agents",
        json=body(
            "aptest-researcher",
            IMAGE,
            env={"LOG_LEVEL": "info"},
            secrets={"OPENAI_API_KEY": "sk-never-shown"},
            labels={"team": "research"},
            resources={"cpus": 0.5, "memory_mb": 128},
            workspace=True,
        ),
        headers={"Idempotency-Key": "spawn-1"},
    )
    assert response.status_code == 201, response.text
    agent = response.json()
    assert response.headers["location"] == f"/v1/agents/{agent['id']}"
    assert agent["status"] == "running"
    assert agent["orchestrator"] == "kubernetes"
    assert agent["secret_names"] == ["OPENAI_API_KEY"]
    assert agent["resources"] == {"cpus": 0.5, "memory_mb": 128, "pids": 256}
    again = kapi.alice.post(
        "/v1/agents",
        json=body(
            "aptest-researcher",
            IMAGE,
            env={"LOG_LEVEL": "info"},
            secrets={"OPENAI_API_KEY": "sk-never-shown"},
            labels={"team": "research"},
            resources={"cpus": 0.5, "memory_mb": 128},
            workspace=True,
        ),
        headers={"Idempotency-Key": "spawn-1"},
    )
    assert again.json()["id"] == agent["id"]

    assert kapi.alice.get("/v1/agents/aptest-researcher").json() == agent
    spawn(kapi, "aptest-other", labels={"team": "ops"})
    listed = kapi.alice.get("/v1/agents", params={"label": "team=research"}).json()
    assert [a["id"] for a in listed["items"]] == [agent["id"]]
    assert len(kapi.alice.get("/v1/agents", params={"status": "running"}).json()["items"]) == 2
    assert kapi.bob.get("/v1/agents").json()["items"] == []
    assert_problem(kapi.bob.get(f"/v1/agents/{agent['id']}"), 404, "agent_not_found")
    assert_problem(
        kapi.alice.post("/v1/agents", json=body("aptest-other", IMAGE)), 409, "agent_name_conflict"
    )
    for text in (response.text, kapi.alice.get("/v1/agents").text, kapi.server.logs()):
        assert "sk-never-shown" not in text


def test_a_missing_image_is_422_and_leaves_nothing(
    kapi: Api, kube_service: tuple[ServerProcess, str], kube_env: KubeTestEnv
) -> None:
    missing = kapi.alice.post(
        "/v1/agents", json=body("aptest-img", "aptest/does-not-exist:1", workspace=True)
    )
    assert "aptest/does-not-exist:1" in assert_problem(missing, 422, "image_not_found")["detail"]
    assert kapi.alice.get("/v1/agents").json()["items"] == []
    admin = kube_env.api_client()
    apps = client.AppsV1Api(admin)
    assert apps.list_namespaced_deployment(kube_service[1]).items == []


def test_network_none_is_403_without_a_declared_policy_engine_and_leaves_nothing(
    kapi: Api, kube_service: tuple[ServerProcess, str], kube_env: KubeTestEnv
) -> None:
    refused = kapi.alice.post(
        "/v1/agents",
        json=body("aptest-offline", IMAGE, network="none", secrets={"TOKEN": "sk-offline"}),
    )
    problem = assert_problem(refused, 403, "policy_violation")
    assert "network policy engine" in problem["detail"]
    assert "sk-offline" not in refused.text
    assert kapi.alice.get("/v1/agents").json()["items"] == []
    assert leftovers(kube_env.api_client(), kube_service[1]) == []


def test_stop_start_restart(kapi: Api) -> None:
    agent = spawn(kapi, "aptest-life", workspace=True)
    path = f"/v1/agents/{agent['id']}"

    stopped = kapi.alice.post(f"{path}/stop", params={"timeout": 0})
    assert stopped.status_code == 200
    assert stopped.json()["status"] == "stopped"
    assert kapi.alice.post(f"{path}/stop", params={"timeout": 0}).json()["status"] == "stopped"
    assert kapi.alice.get(path).json()["status"] == "stopped"
    assert kapi.alice.post(f"{path}/start").json()["status"] == "running"
    assert kapi.alice.post(f"{path}/start").json()["status"] == "running"
    restarted = kapi.alice.post(f"{path}/restart", params={"timeout": 0}).json()
    assert restarted["status"] == "running"
    assert restarted["created_at"] == agent["created_at"]
    for action, status in (("stop", "stopped"), ("start", "running"), ("restart", "running")):
        answer = kapi.alice.post(f"{path}/action", json={"action": action, "timeout": 0})
        assert answer.json()["status"] == status


def test_delete(kapi: Api, kube_service: tuple[ServerProcess, str], kube_env: KubeTestEnv) -> None:
    agent = spawn(kapi, "aptest-del", workspace=True, secrets={"A": "b"})
    path = f"/v1/agents/{agent['id']}"

    deleted = kapi.alice.delete(path)
    assert deleted.status_code == 204
    assert_problem(kapi.alice.delete(path), 404, "agent_not_found")
    assert_problem(kapi.alice.get(path), 404, "agent_not_found")
    admin = kube_env.api_client()
    wait_until("the agent's objects to go", lambda: not leftovers(admin, kube_service[1]))
    assert spawn(kapi, "aptest-del")["id"] != agent["id"]


def test_logs_and_follow(kapi: Api) -> None:
    agent = spawn(kapi, "aptest-logs", command=["sh", "-c", "echo one; echo two; exec sleep 3600"])
    path = f"/v1/agents/{agent['id']}/logs"

    full = kapi.alice.get(path)
    assert full.status_code == 200
    assert full.headers["content-type"].startswith("text/plain")
    lines = full.text.splitlines()
    assert lines[0].startswith("fake-kubelet: started ")
    assert lines[1:] == ["one", "two"]
    assert kapi.alice.get(path, params={"tail": 1}).text == "two\n"
    stamped = kapi.alice.get(path, params={"timestamps": "true"}).text.splitlines()
    assert stamped[1].endswith(" one")
    assert stamped[1][:4].isdigit()
    assert kapi.alice.get(path, params={"since": "2099-01-01T00:00:00Z"}).text == ""
    assert kapi.alice.get(path, params={"since": "10m"}).text.endswith("one\ntwo\n")
    assert_problem(kapi.bob.get(path), 404, "agent_not_found")

    def stop_later() -> None:
        time.sleep(2)
        kapi.admin.post(f"/v1/agents/{agent['id']}/stop", params={"timeout": 0})

    stopper = threading.Thread(target=stop_later)
    started = time.monotonic()
    followed: list[str] = []
    with kapi.alice.stream("GET", path, params={"follow": "true"}) as stream:
        assert stream.status_code == 200
        stopper.start()
        followed.extend(stream.iter_lines())
    stopper.join()
    # Lines came while the agent ran, and the stream ended on its own once it stopped.
    assert followed[1:3] == ["one", "two"]
    assert any(line.startswith("fake-kubelet: tick") for line in followed)
    assert time.monotonic() - started < 30


def test_a_client_leaving_a_follow_does_not_hurt(kapi: Api) -> None:
    agent = spawn(kapi, "aptest-leave")
    path = f"/v1/agents/{agent['id']}/logs"
    for _ in range(3):
        with httpx.stream(
            "GET",
            f"{kapi.url}{path}",
            params={"follow": "true"},
            headers={"X-API-Key": kapi.keys.alice},
            timeout=10,
        ) as stream:
            assert next(stream.iter_lines()).startswith("fake-kubelet: started")
    assert kapi.alice.get(path).text.endswith("agent-says-hi\n")


def test_ttl_renewal(kapi: Api) -> None:
    agent = spawn(kapi, "aptest-ttl", ttl_seconds=600)
    assert agent["expires_at"] is not None
    renewed = kapi.alice.post(f"/v1/agents/{agent['id']}/ttl", json={"ttl_seconds": 3600})
    assert renewed.status_code == 200
    assert renewed.json()["expires_at"] > str(agent["expires_at"])
    assert (
        kapi.alice.get(f"/v1/agents/{agent['id']}").json()["expires_at"]
        == (renewed.json()["expires_at"])
    )


def test_a_restarted_service_and_a_second_one_see_the_same_agents(
    kapi: Api,
    kube_service: tuple[ServerProcess, str],
    kube_env: KubeTestEnv,
    keys: tuple[Keys, Path],
    tmp_path: Path,
) -> None:
    for index in range(3):
        spawn(kapi, f"aptest-keep-{index}", labels={"i": str(index)})
    kapi.alice.post("/v1/agents/aptest-keep-1/stop", params={"timeout": 0})
    before = kapi.admin.get("/v1/agents").json()

    kapi.server.restart()

    assert kapi.admin.get("/v1/agents").json() == before
    assert kapi.alice.get("/v1/agents/aptest-keep-1").json()["status"] == "stopped"
    second = ServerProcess(
        kube_server_env(keys, kube_env, kube_service[1]), tmp_path / "second.log"
    )
    second.start()
    try:
        with httpx.Client(
            base_url=second.url, headers={"X-API-Key": keys[0].admin}, timeout=60
        ) as other:
            assert other.get("/v1/agents").json() == before
            assert (
                other.post("/v1/agents/aptest-keep-0/stop", params={"owner": "alice"}).json()[
                    "status"
                ]
                == "stopped"
            )
        assert kapi.alice.get("/v1/agents/aptest-keep-0").json()["status"] == "stopped"
    finally:
        second.stop()


def test_an_agents_life_as_events_with_the_kubernetes_reasons(
    kapi: Api, kube_service: tuple[ServerProcess, str], kube_env: KubeTestEnv
) -> None:
    """``GET /v1/events`` on Kubernetes: created and started, an OOM kill (failed,
    oom_killed, 137, which a ``wait`` for the exit answers), a stop by a call, the
    deletion; only to the agent's owner; and a resume from an event's id replays what came
    after it."""
    _, namespace = kube_service
    alice, bob = EventStream(kapi.alice), EventStream(kapi.bob)
    try:
        ref = str(spawn(kapi, "aptest-events")["id"])
        created = alice.wait_for(type="created", agent=ref)
        assert created["agent"] == {"id": ref, "name": "aptest-events", "owner": "alice"}
        started = alice.wait_for(type="started", agent=ref, status="running")

        (pod,) = pod_names(kube_env.api_client(), namespace, ref)
        kubelet(kube_env).oom_kill(namespace, pod)
        # A caller waiting for the outcome gets the agent with its exit code.
        waited = kapi.alice.get(f"/v1/agents/{ref}/wait", params={"until": "exited", "timeout": 30})
        assert waited.status_code == 200, waited.text
        assert (waited.json()["status"], waited.json()["exit_code"]) == ("failed", 137)
        failed = alice.wait_for(type="failed", agent=ref, reason="oom_killed")
        assert failed["exit_code"] == 137
        assert failed["status"] == "failed"
        # A restart rolls out a new pod: running again, and said so.
        assert kapi.alice.post(f"/v1/agents/{ref}/restart").status_code == 200
        alice.wait_for(after=failed, type="restarted", agent=ref, status="running")

        kapi.alice.post(f"/v1/agents/{ref}/stop", params={"timeout": 1})
        alice.wait_for(type="stopped", agent=ref, by="call")
        assert kapi.alice.delete(f"/v1/agents/{ref}").status_code == 204
        alice.wait_for(type="deleted", agent=ref)
        assert not [e for e in bob.events if e["agent"] and e["agent"]["id"] == ref]
    finally:
        alice.close()
        bob.close()

    resumed = EventStream(kapi.alice, last_id=started["id"])
    try:
        resumed.wait_for(type="failed", agent=ref, reason="oom_killed")
        resumed.wait_for(type="deleted", agent=ref)
        assert not [e for e in resumed.events if e["type"] == "created"]
    finally:
        resumed.close()


def test_patch_revisions_rollback_and_stats(kapi: Api) -> None:
    agent = spawn(kapi, "aptest-patch", secrets={"TOKEN": "first-secret-value"})
    path = f"/v1/agents/{agent['id']}"
    etag = kapi.alice.get(path).headers["ETag"]

    resized = kapi.alice.patch(
        path, json={"resources": {"memory_mb": 96}}, headers={"If-Match": etag}
    )
    assert resized.status_code == 200, resized.text
    assert resized.json()["restarted"] is True
    assert resized.json()["agent"]["resources"]["memory_mb"] == 96
    # The same If-Match again: the agent has moved on.
    stale = kapi.alice.patch(path, json={"labels": {"x": "y"}}, headers={"If-Match": etag})
    assert_problem(stale, 412, "revision_mismatch")

    rotated = kapi.alice.patch(path, json={"secrets": {"TOKEN": "second-secret-value"}})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["changes"] == ["secrets.TOKEN"]
    revisions = kapi.alice.get(f"{path}/revisions")
    assert [r["number"] for r in revisions.json()["items"]] == [3, 2, 1]
    # A read right after a change sees it (the service's model notes the change's answer).
    read = kapi.alice.get(path)
    assert read.json()["revision"] == 3
    assert read.headers["ETag"] == '"3"'
    assert read.json()["resources"]["memory_mb"] == 96
    for answer in (resized, rotated, revisions, kapi.alice.get(path)):
        assert "secret-value" not in answer.text

    back = kapi.alice.post(f"{path}/rollback", json={"revision": 1})
    assert back.status_code == 200, back.text
    assert back.json()["agent"]["resources"] == agent["resources"]
    assert back.json()["revision"] == 4

    # Another owner's agent is not there for bob, whatever he asks.
    assert_problem(kapi.bob.patch(path, json={"labels": {"x": "y"}}), 404, "agent_not_found")
    assert_problem(kapi.bob.post(f"{path}/rollback"), 404, "agent_not_found")
    assert_problem(kapi.bob.get(f"{path}/revisions"), 404, "agent_not_found")
    # This API server has no metrics API.
    assert_problem(kapi.alice.get(f"{path}/stats"), 501, "not_supported")


def test_a_relabel_is_live_and_lists_filter_on_the_new_labels(kapi: Api) -> None:
    agent = spawn(kapi, "aptest-relabel-api", labels={"team": "a"})
    path = f"/v1/agents/{agent['id']}"
    changed = kapi.alice.patch(path, json={"labels": {"team": "b"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["restarted"] is False

    def listed(label: str) -> list[str]:
        page = kapi.alice.get("/v1/agents", params={"label": label})
        assert page.status_code == 200, page.text
        return [a["id"] for a in page.json()["items"]]

    assert listed("team=b") == [agent["id"]]
    assert listed("team=a") == []

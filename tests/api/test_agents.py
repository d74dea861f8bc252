"""Every /v1/agents route through HTTP, with its success and error statuses."""

from __future__ import annotations

import threading
import time

import docker
import httpx

from testenv.engine import TEST_NAMES

from ..conftest import Api
from .helpers import assert_problem, body, wait_status


def test_spawn_answers_201_with_the_agent_and_its_location(api: Api, busybox: str) -> None:
    response = api.alice.post(
        "/v1/agents",
        json=body(
            "aptest-researcher",
            busybox,
            env={"LOG_LEVEL": "info"},
            secrets={"OPENAI_API_KEY": "sk-never-shown"},
            labels={"team": "research"},
            resources={"cpus": 0.5, "memory_mb": 128},
        ),
    )
    assert response.status_code == 201, response.text
    agent = response.json()
    assert response.headers["location"] == f"/v1/agents/{agent['id']}"
    assert agent["status"] == "running"
    assert agent["env"] == {"LOG_LEVEL": "info"}
    assert agent["secret_names"] == ["OPENAI_API_KEY"]
    assert agent["labels"] == {"team": "research"}
    assert agent["resources"] == {"cpus": 0.5, "memory_mb": 128, "pids": 256}
    assert agent["orchestrator"] == "docker"
    assert "sk-never-shown" not in response.text
    assert "sk-never-shown" not in api.alice.get(f"/v1/agents/{agent['id']}").text
    assert "sk-never-shown" not in api.alice.get("/v1/agents").text
    assert "sk-never-shown" not in api.server.logs()


def test_spawn_validation_errors_are_422_problems_and_leave_nothing(
    api: Api, busybox: str, clean_docker: docker.DockerClient
) -> None:
    cases = [
        body("aptest-x", busybox, privileged=True),
        body("aptest-x", busybox, HostConfig={"Binds": ["/:/host"]}),
        body("Aptest-Upper", busybox),
        body("aptest-" + "x" * 60, busybox),
        body("../etc", busybox),
        body("aptest-x", busybox, ttl_seconds=0),
        body("aptest-x", busybox, ttl_seconds=10**9),
        body("aptest-x", busybox, restart_policy="sometimes"),
        body("aptest-x", busybox, labels={"bad key!": "v"}),
        body("aptest-x", busybox, env={"1BAD": "v"}),
        body("aptest-x", busybox, env={"A": "1"}, secrets={"A": "2"}),
        {"image": busybox},
    ]
    for case in cases:
        assert_problem(api.alice.post("/v1/agents", json=case), 422, "validation_error")
    not_json = api.alice.post(
        "/v1/agents", content=b"name=x", headers={"content-type": "text/plain"}
    )
    assert_problem(not_json, 415, "unsupported_media_type")
    assert_problem(api.alice.post("/v1/agents"), 422, "validation_error")
    assert clean_docker.api.containers(all=True, filters={"name": TEST_NAMES}) == []


def test_policy_and_engine_refusals(
    api: Api, busybox: str, clean_docker: docker.DockerClient
) -> None:
    too_big = api.alice.post("/v1/agents", json=body("aptest-big", busybox, resources={"cpus": 3}))
    assert "ceiling" in assert_problem(too_big, 403, "policy_violation")["detail"]
    missing = api.alice.post("/v1/agents", json=body("aptest-img", "aptest/nothing:here"))
    assert "aptest/nothing:here" in assert_problem(missing, 422, "image_not_found")["detail"]
    assert clean_docker.api.containers(all=True, filters={"name": TEST_NAMES}) == []


def test_name_conflict_is_409(api: Api, busybox: str) -> None:
    assert api.alice.post("/v1/agents", json=body("aptest-twice", busybox)).status_code == 201
    assert_problem(
        api.alice.post("/v1/agents", json=body("aptest-twice", busybox)), 409, "agent_name_conflict"
    )


def test_idempotency_key_returns_the_first_agent(api: Api, busybox: str) -> None:
    headers = {"Idempotency-Key": "spawn-researcher-1"}
    first = api.alice.post("/v1/agents", json=body("aptest-idem", busybox), headers=headers)
    again = api.alice.post("/v1/agents", json=body("aptest-idem", busybox), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert len(api.alice.get("/v1/agents").json()["items"]) == 1
    changed = api.alice.post(
        "/v1/agents", json=body("aptest-idem", busybox, env={"X": "1"}), headers=headers
    )
    assert_problem(changed, 409, "idempotency_key_reused")


def test_get_by_id_or_name_and_404(api: Api, busybox: str) -> None:
    agent = api.alice.post("/v1/agents", json=body("aptest-get", busybox)).json()
    assert (
        api.alice.get(f"/v1/agents/{agent['id']}").json()
        == api.alice.get("/v1/agents/aptest-get").json()
    )
    assert_problem(api.alice.get("/v1/agents/aptest-missing"), 404, "agent_not_found")
    assert_problem(api.alice.get("/v1/agents/Not_Valid"), 422, "validation_error")


def test_list_filters_and_paginates(api: Api, busybox: str) -> None:
    ids = []
    for index in range(5):
        labels = {"group": "even" if index % 2 == 0 else "odd"}
        ids.append(
            api.alice.post(
                "/v1/agents", json=body(f"aptest-p{index}", busybox, labels=labels)
            ).json()["id"]
        )
    api.alice.post("/v1/agents/aptest-p0/stop", params={"timeout": 0})

    seen, cursor = [], None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.alice.get("/v1/agents", params=params).json()
        assert len(page["items"]) <= 2
        seen += [a["id"] for a in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids  # oldest first, each exactly once

    even = api.alice.get("/v1/agents", params={"label": "group=even"}).json()["items"]
    assert sorted(a["name"] for a in even) == ["aptest-p0", "aptest-p2", "aptest-p4"]
    stopped = api.alice.get("/v1/agents", params={"status": "stopped"}).json()["items"]
    assert [a["name"] for a in stopped] == ["aptest-p0"]
    both = api.alice.get("/v1/agents", params=[("label", "group=even"), ("status", "running")])
    assert sorted(a["name"] for a in both.json()["items"]) == ["aptest-p2", "aptest-p4"]
    assert_problem(
        api.alice.get("/v1/agents", params={"cursor": "bm90LWEtY3Vyc29y"}), 400, "invalid_cursor"
    )
    assert_problem(
        api.alice.get("/v1/agents", params={"cursor": "garbage!"}), 400, "invalid_cursor"
    )
    assert_problem(
        api.alice.get("/v1/agents", params={"label": "novalue"}), 422, "validation_error"
    )
    assert_problem(
        api.alice.get("/v1/agents", params={"status": "sleepy"}), 422, "validation_error"
    )
    assert_problem(api.alice.get("/v1/agents", params={"limit": 0}), 422, "validation_error")


def test_lifecycle_routes(api: Api, busybox: str) -> None:
    agent = api.alice.post("/v1/agents", json=body("aptest-life", busybox)).json()
    path = f"/v1/agents/{agent['id']}"

    stopped = api.alice.post(f"{path}/stop", params={"timeout": 0})
    assert stopped.status_code == 200
    assert stopped.json()["status"] == "stopped"
    assert api.alice.post(f"{path}/stop", params={"timeout": 0}).json()["status"] == "stopped"
    assert api.alice.post(f"{path}/start").json()["status"] == "running"
    assert api.alice.post(f"{path}/start").json()["status"] == "running"
    assert api.alice.post(f"{path}/restart", params={"timeout": 0}).json()["status"] == "running"
    assert_problem(api.alice.post(f"{path}/stop", params={"timeout": -1}), 422, "validation_error")

    for action, status in (("stop", "stopped"), ("start", "running"), ("restart", "running")):
        answer = api.alice.post(f"{path}/action", json={"action": action, "timeout": 0})
        assert answer.status_code == 200
        assert answer.json()["status"] == status
    assert_problem(
        api.alice.post(f"{path}/action", json={"action": "pause"}), 422, "validation_error"
    )
    assert_problem(
        api.alice.post(f"{path}/action", json={"action": "stop", "force": True}),
        422,
        "validation_error",
    )

    deleted = api.alice.delete(path)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_problem(api.alice.delete(path), 404, "agent_not_found")
    assert_problem(api.alice.post(f"{path}/start"), 404, "agent_not_found")


def test_logs_with_tail_since_and_timestamps(api: Api, busybox: str) -> None:
    spec = body("aptest-logs", busybox, command=["sh", "-c", "echo one; echo two; exec sleep 3600"])
    agent = api.alice.post("/v1/agents", json=spec).json()
    path = f"/v1/agents/{agent['id']}/logs"
    for _ in range(50):
        if "two" in api.alice.get(path).text:
            break
        time.sleep(0.1)

    full = api.alice.get(path)
    assert full.status_code == 200
    assert full.headers["content-type"].startswith("text/plain")
    assert full.text == "one\ntwo\n"
    assert api.alice.get(path, params={"tail": 1}).text == "two\n"
    stamped = api.alice.get(path, params={"timestamps": "true"}).text.splitlines()
    assert stamped[0].endswith(" one")
    assert stamped[0][:4].isdigit()
    assert api.alice.get(path, params={"since": "2099-01-01T00:00:00Z"}).text == ""
    assert api.alice.get(path, params={"since": "10m"}).text == "one\ntwo\n"
    assert_problem(api.alice.get(path, params={"since": "yesterday"}), 422, "validation_error")
    assert_problem(api.alice.get(path, params={"tail": -1}), 422, "validation_error")


def test_follow_streams_new_lines_until_the_agent_stops(api: Api, busybox: str) -> None:
    script = "i=0; while [ $i -lt 600 ]; do echo tick-$i; i=$((i+1)); sleep 0.2; done"
    agent = api.alice.post(
        "/v1/agents", json=body("aptest-follow", busybox, command=["sh", "-c", script])
    ).json()
    path = f"/v1/agents/{agent['id']}/logs"
    lines: list[str] = []

    def stop_later() -> None:
        time.sleep(2)
        api.admin.post(f"/v1/agents/{agent['id']}/stop", params={"timeout": 0})

    stopper = threading.Thread(target=stop_later)
    started = time.monotonic()
    with api.alice.stream("GET", path, params={"follow": "true"}) as stream:
        assert stream.status_code == 200
        stopper.start()
        for line in stream.iter_lines():
            lines.append(line)
    stopper.join()
    # Lines arrived while the agent ran, and the stream ended on its own once it stopped.
    assert len(lines) >= 5
    assert lines[0] == "tick-0"
    assert time.monotonic() - started < 60


def test_a_client_leaving_a_follow_does_not_hurt_the_service(api: Api, busybox: str) -> None:
    agent = api.alice.post("/v1/agents", json=body("aptest-leave", busybox)).json()
    path = f"/v1/agents/{agent['id']}/logs"
    for _ in range(5):
        with httpx.stream(
            "GET",
            f"{api.url}{path}",
            params={"follow": "true"},
            headers={"X-API-Key": api.keys.alice},
            timeout=10,
        ) as stream:
            assert next(stream.iter_lines()) == "agent-says-hi"
    assert api.alice.get(path).text == "agent-says-hi\n"
    wait_status(api.alice, agent["id"], "running")

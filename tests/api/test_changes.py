"""Changing a running agent through the API, checked against what the engine says.

A resize happens in place (the engine's limits change, the process does not restart); any
other change replaces the container and keeps the agent's id, name, workspace and address;
revisions never hold a secret value; If-Match makes the second of two writers fail.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from testenv.engine import TEST_PREFIX
from testenv.images import BUSYBOX_IMAGE

from ..conftest import Api, Keys, StartServer
from .helpers import EventStream, assert_problem, body, wait_status

MIB = 1024 * 1024


def containers_of(client: docker.DockerClient, agent_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.api.containers(
        all=True, filters={"label": [f"agents.hive.io/id={agent_id}"]}
    )
    return found


def inspect_agent(client: docker.DockerClient, agent_id: str) -> dict[str, Any]:
    (only,) = containers_of(client, agent_id)
    info: dict[str, Any] = client.api.inspect_container(only["Id"])
    return info


def process_env(client: docker.DockerClient, agent_id: str, name: str) -> str:
    """The value of ``name`` in the environment of the agent's process (pid 1)."""
    script = f"tr '\\0' '\\n' < /proc/1/environ | sed -n 's/^{name}=//p'"
    return run_in(client, agent_id, "sh", "-c", script)


def run_in(client: docker.DockerClient, agent_id: str, *command: str) -> str:
    info = inspect_agent(client, agent_id)
    output: bytes = client.containers.get(info["Id"]).exec_run(list(command)).output
    return output.decode().strip()


@pytest.fixture
def second_image(clean_docker: docker.DockerClient) -> Iterator[str]:
    """The test image under a second tag: an image change that the engine can run."""
    repository, _ = BUSYBOX_IMAGE.rsplit(":", 1)
    second = f"{TEST_PREFIX}v2"
    clean_docker.images.get(BUSYBOX_IMAGE).tag(repository, second)
    yield f"{repository}:{second}"
    clean_docker.images.remove(f"{repository}:{second}", noprune=True)


def test_a_resize_changes_the_engines_limits_without_a_restart(
    api: Api, busybox: str, docker_client: docker.DockerClient
) -> None:
    agent = api.alice.post("/v1/agents", json=body("aptest-resize", busybox)).json()
    read = api.alice.get(f"/v1/agents/{agent['id']}")
    assert read.headers["etag"] == '"1"'
    started = inspect_agent(docker_client, agent["id"])["State"]["StartedAt"]

    changed = api.alice.patch(
        f"/v1/agents/{agent['id']}",
        json={"resources": {"cpus": 0.25, "memory_mb": 96, "pids": 48}},
        headers={"If-Match": read.headers["etag"]},
    )
    assert changed.status_code == 200, changed.text
    result = changed.json()
    assert result["restarted"] is False
    assert result["revision"] == 2
    assert changed.headers["etag"] == '"2"'
    assert result["agent"]["resources"] == {"cpus": 0.25, "memory_mb": 96, "pids": 48}

    info = inspect_agent(docker_client, agent["id"])
    assert info["Id"] == inspect_agent(docker_client, agent["id"])["Id"]
    assert info["HostConfig"]["Memory"] == 96 * MIB
    assert info["HostConfig"]["NanoCpus"] == 250_000_000
    assert info["HostConfig"]["PidsLimit"] == 48
    assert info["State"]["StartedAt"] == started
    assert info["State"]["Running"] is True

    now = api.alice.get(f"/v1/agents/{agent['id']}")
    assert now.headers["etag"] == '"2"'
    assert now.json()["resources"]["memory_mb"] == 96
    listed = api.alice.get("/v1/agents").json()["items"]
    assert [a["revision"] for a in listed if a["id"] == agent["id"]] == [2]


def test_an_image_change_keeps_the_workspace_id_name_and_address(
    api: Api, busybox: str, second_image: str, docker_client: docker.DockerClient
) -> None:
    agent = api.alice.post(
        "/v1/agents", json=body("aptest-move", busybox, workspace=True, labels={"v": "1"})
    ).json()
    before = inspect_agent(docker_client, agent["id"])
    run_in(docker_client, agent["id"], "sh", "-c", "echo kept > /workspace/note")

    changed = api.alice.patch(
        "/v1/agents/aptest-move", json={"image": second_image, "labels": {"v": "2"}}
    )
    assert changed.status_code == 200, changed.text
    result = changed.json()
    assert result["restarted"] is True
    assert sorted(result["changes"]) == ["image", "labels.v"]
    moved = result["agent"]
    assert (moved["id"], moved["name"], moved["owner"]) == (agent["id"], "aptest-move", "alice")
    assert moved["image"] == second_image
    assert moved["labels"] == {"v": "2"}
    assert moved["address"] == agent["address"]
    assert moved["status"] == "running"

    after = inspect_agent(docker_client, agent["id"])  # exactly one container
    assert after["Id"] != before["Id"]
    assert after["Name"] == before["Name"]
    assert after["Config"]["Image"] == second_image
    assert run_in(docker_client, agent["id"], "cat", "/workspace/note") == "kept"
    assert (
        api.alice.get("/v1/agents", params={"label": "v=2"}).json()["items"][0]["id"]
        == (agent["id"])
    )


def test_a_secret_rotation_reaches_the_process_and_is_never_shown(
    api: Api, busybox: str, docker_client: docker.DockerClient, server_log_default: str
) -> None:
    first, second = "first-secret-d41d8cd98f", "second-secret-9e107d9d37"
    agent = api.alice.post(
        "/v1/agents", json=body("aptest-rotate", busybox, secrets={"TOKEN": first})
    ).json()
    assert process_env(docker_client, agent["id"], "TOKEN") == first

    changed = api.alice.patch(f"/v1/agents/{agent['id']}", json={"secrets": {"TOKEN": second}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["changes"] == ["secrets.TOKEN"]
    assert process_env(docker_client, agent["id"], "TOKEN") == second

    revisions = api.alice.get(f"/v1/agents/{agent['id']}/revisions")
    shown = [changed.text, revisions.text, api.alice.get(f"/v1/agents/{agent['id']}").text]
    shown.append(api.server.logs())
    volumes = docker_client.api.volumes(filters={"label": [f"agents.hive.io/id={agent['id']}"]})
    shown.append(str(volumes))
    for text in shown:
        assert first not in text
        assert second not in text
    assert [r["spec"]["secret_names"] for r in revisions.json()["items"]] == [["TOKEN"]] * 2


def test_a_rollback_restores_the_previous_spec(
    api: Api, busybox: str, docker_client: docker.DockerClient
) -> None:
    agent = api.alice.post(
        "/v1/agents", json=body("aptest-back", busybox, env={"LEVEL": "info"})
    ).json()
    api.alice.patch(f"/v1/agents/{agent['id']}", json={"env": {"LEVEL": "debug", "X": "1"}})
    assert process_env(docker_client, agent["id"], "LEVEL") == "debug"

    back = api.alice.post(f"/v1/agents/{agent['id']}/rollback")
    assert back.status_code == 200, back.text
    assert back.json()["revision"] == 3
    assert back.json()["agent"]["env"] == {"LEVEL": "info"}
    assert process_env(docker_client, agent["id"], "LEVEL") == "info"

    revisions = api.alice.get(f"/v1/agents/{agent['id']}/revisions").json()
    assert [r["number"] for r in revisions["items"]] == [3, 2, 1]
    assert revisions["kept"] == 10
    assert revisions["items"][0]["changes"] == ["env.LEVEL", "env.X"]

    again = api.alice.post(f"/v1/agents/{agent['id']}/rollback", json={"revision": 2})
    assert again.json()["agent"]["env"] == {"LEVEL": "debug", "X": "1"}
    assert_problem(
        api.alice.post(f"/v1/agents/{agent['id']}/rollback", json={"revision": 99}),
        404,
        "agent_not_found",
    )


def test_two_changes_from_one_revision_one_wins_one_gets_412(
    api: Api, busybox: str, docker_client: docker.DockerClient
) -> None:
    agent = api.alice.post("/v1/agents", json=body("aptest-race", busybox)).json()
    answers: list[httpx.Response] = []
    gate = threading.Barrier(2)

    def change(memory: int) -> None:
        with httpx.Client(base_url=api.url, headers=dict(api.alice.headers), timeout=60) as c:
            gate.wait()
            answers.append(
                c.patch(
                    f"/v1/agents/{agent['id']}",
                    json={"resources": {"memory_mb": memory}},
                    headers={"If-Match": '"1"'},
                )
            )

    threads = [threading.Thread(target=change, args=(m,)) for m in (80, 112)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200, 412]
    winner = next(a for a in answers if a.status_code == 200).json()
    assert_problem(next(a for a in answers if a.status_code == 412), 412, "revision_mismatch")
    memory = inspect_agent(docker_client, agent["id"])["HostConfig"]["Memory"]
    assert memory == winner["agent"]["resources"]["memory_mb"] * MIB
    stale = api.alice.patch(
        f"/v1/agents/{agent['id']}", json={"env": {"A": "1"}}, headers={"If-Match": '"1"'}
    )
    assert_problem(stale, 412, "revision_mismatch")


def test_a_refused_change_changes_nothing(
    api: Api, busybox: str, docker_client: docker.DockerClient
) -> None:
    agent = api.alice.post("/v1/agents", json=body("aptest-refused", busybox)).json()
    before = inspect_agent(docker_client, agent["id"])
    url = f"/v1/agents/{agent['id']}"

    assert_problem(api.alice.patch(url, json={"resources": {"cpus": 3}}), 403, "policy_violation")
    assert_problem(api.alice.patch(url, json={"privileged": True}), 422, "validation_error")
    assert_problem(api.alice.patch(url, json={"name": "other"}), 422, "validation_error")
    assert_problem(api.alice.patch(url, json={}), 422, "validation_error")
    assert_problem(api.alice.patch(url, json={"image": "aptest/absent:1"}), 422, "image_not_found")
    assert_problem(
        api.alice.patch(url, json={"env": {"A": "1"}}, headers={"If-Match": "yes"}),
        400,
        "bad_request",
    )
    assert_problem(api.bob.patch(url, json={"env": {"A": "1"}}), 404, "agent_not_found")
    assert_problem(api.viewer.patch(url, json={"env": {"A": "1"}}), 403, "forbidden")
    assert_problem(api.bob.post(f"{url}/rollback"), 404, "agent_not_found")
    assert_problem(api.bob.get(f"{url}/revisions"), 404, "agent_not_found")
    assert_problem(api.bob.get(f"{url}/stats"), 404, "agent_not_found")

    after = inspect_agent(docker_client, agent["id"])
    assert after["Id"] == before["Id"]
    assert after["HostConfig"] == before["HostConfig"]
    assert api.alice.get(url).headers["etag"] == '"1"'
    assert [r["number"] for r in api.alice.get(f"{url}/revisions").json()["items"]] == [1]
    assert not docker_client.api.volumes(
        filters={"label": [f"agents.hive.io/id={agent['id']}", "agents.hive.io/kind=revision"]}
    )["Volumes"]


def test_stats_of_a_busy_agent_show_its_cpu(
    api: Api, busybox: str, docker_client: docker.DockerClient
) -> None:
    busy = body("aptest-busy", busybox, resources={"cpus": 0.2, "memory_mb": 64})
    busy["command"] = ["sh", "-c", "while :; do :; done"]
    agent = api.alice.post("/v1/agents", json=busy).json()
    wait_status(api.alice, agent["id"], "running")

    stats = api.alice.get(f"/v1/agents/{agent['id']}/stats")
    assert stats.status_code == 200, stats.text
    sample = stats.json()
    assert sample["cpu_percent"] > 0
    assert sample["memory_limit_bytes"] == 64 * MIB
    assert sample["pids"] >= 1
    assert api.viewer.get(f"/v1/agents/{agent['id']}/stats").status_code == 200
    api.alice.delete(f"/v1/agents/{agent['id']}")


def test_a_service_killed_mid_change_leaves_one_agent(
    start_server: StartServer, keys: tuple[Keys, Path], busybox: str, clean_docker: Any
) -> None:
    # The agent (sleep as pid 1) ignores SIGTERM, so the change waits out a long grace.
    first = start_server(AGENT_API_STOP_TIMEOUT="60", AGENT_API_SWEEP_INTERVAL="0")
    key = {"Authorization": f"Bearer {keys[0].alice}"}
    with httpx.Client(base_url=first.url, headers=key, timeout=90) as alice:
        agent = alice.post("/v1/agents", json=body("aptest-killed", busybox)).json()
        (before,) = containers_of(clean_docker, agent["id"])
        worker = threading.Thread(
            target=lambda: _ignore_errors(
                lambda: alice.patch(f"/v1/agents/{agent['id']}", json={"env": {"A": "1"}})
            )
        )
        worker.start()
        revision = {"label": [f"agents.hive.io/id={agent['id']}", "agents.hive.io/revision=2"]}
        for _ in range(100):
            if clean_docker.api.volumes(filters=revision)["Volumes"]:
                break
            time.sleep(0.1)
        in_flight = alice.patch(f"/v1/agents/{agent['id']}", json={"env": {"B": "1"}})
        assert_problem(in_flight, 409, "change_in_flight")
        first.kill()
        worker.join()

    second = start_server(AGENT_API_ORPHAN_GRACE_SECONDS="0", AGENT_API_SWEEP_INTERVAL="0.2")
    with httpx.Client(base_url=second.url, headers=key, timeout=90) as alice:
        for _ in range(100):
            if not clean_docker.api.volumes(filters=revision)["Volumes"]:
                break
            time.sleep(0.1)
        (after,) = containers_of(clean_docker, agent["id"])
        assert after["Id"] == before["Id"]
        assert after["State"] == "running"
        now = alice.get(f"/v1/agents/{agent['id']}")
        assert now.headers["etag"] == '"1"'
        assert now.json()["env"] == {}
        changed = alice.patch(
            f"/v1/agents/{agent['id']}", json={"resources": {"pids": 40}}, headers={"If-Match": "1"}
        )
        assert changed.status_code == 200, changed.text


def _ignore_errors(call: Callable[[], object]) -> None:
    with contextlib.suppress(httpx.HTTPError):
        call()


def test_a_stopped_agent_changed_stays_stopped_until_started(
    api: Api, busybox: str, docker_client: docker.DockerClient
) -> None:
    agent = api.alice.post("/v1/agents", json=body("aptest-asleep", busybox)).json()
    api.alice.post(f"/v1/agents/{agent['id']}/stop", params={"timeout": 0})

    changed = api.alice.patch(f"/v1/agents/{agent['id']}", json={"env": {"MODE": "late"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["restarted"] is False
    assert changed.json()["agent"]["status"] == "stopped"
    assert inspect_agent(docker_client, agent["id"])["State"]["Running"] is False

    started = api.alice.post(f"/v1/agents/{agent['id']}/start").json()
    assert started["status"] == "running"
    assert process_env(docker_client, agent["id"], "MODE") == "late"


def test_a_replacement_is_no_deletion_to_a_watcher(
    api: Api, busybox: str, docker_client: docker.DockerClient
) -> None:
    events = EventStream(api.alice)
    agent = api.alice.post("/v1/agents", json=body("aptest-watched", busybox)).json()
    first = events.wait_for(type="started", agent=agent["id"])
    changed = api.alice.patch(f"/v1/agents/{agent['id']}", json={"env": {"NEW": "1"}})
    assert changed.status_code == 200, changed.text
    restarted = events.wait_for(type="started", agent=agent["id"], after=first)
    assert restarted["status"] == "running"
    seen = api.alice.get(f"/v1/agents/{agent['id']}")
    assert seen.headers["etag"] == '"2"'
    assert seen.json()["env"] == {"NEW": "1"}
    assert not [e for e in events.events if e["type"] == "deleted"]
    events.close()


def test_a_change_meets_the_owners_ceilings_and_the_image_allowlist(
    start_server: StartServer, keys: tuple[Keys, Path], busybox: str, second_image: str
) -> None:
    server = start_server(
        AGENT_API_MAX_CPUS_PER_OWNER="1",
        AGENT_API_ALLOWED_IMAGES=f'["{busybox}"]',
    )
    key = {"Authorization": f"Bearer {keys[0].alice}"}
    with httpx.Client(base_url=server.url, headers=key, timeout=60) as alice:
        for name in ("aptest-half-a", "aptest-half-b"):
            made = alice.post("/v1/agents", json=body(name, busybox, resources={"cpus": 0.5}))
            assert made.status_code == 201, made.text
        assert_problem(
            alice.patch("/v1/agents/aptest-half-a", json={"resources": {"cpus": 0.75}}),
            403,
            "agent_quota_exceeded",
        )
        assert_problem(
            alice.patch("/v1/agents/aptest-half-a", json={"image": second_image}),
            403,
            "policy_violation",
        )
        fits = alice.patch("/v1/agents/aptest-half-a", json={"resources": {"cpus": 0.25}})
        assert fits.status_code == 200, fits.text
        assert fits.json()["revision"] == 2

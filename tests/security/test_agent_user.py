"""Docker agents run as a non-root user by default, and their workspace is theirs to write.

Against the real service and engine: the agent's own process writes to /workspace as the
default user (a fresh named volume is root-owned), with and without a read-only root
filesystem, and the user is the operator's to change.
"""

from __future__ import annotations

from pathlib import Path

import docker
import httpx

from testenv.engine import TEST_PREFIX

from ..api.helpers import body
from ..conftest import Api, Keys, StartServer

WRITES = ["sh", "-c", "id -u > /workspace/written-by && exec sleep 3600"]


def client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60)


def written_by(engine: docker.DockerClient, name: str) -> tuple[str, str]:
    """Who the agent's process is and which uid owns the file it wrote, read in the agent."""
    container = engine.containers.get(f"{TEST_PREFIX}alice.{name}")
    for _ in range(100):
        found = container.exec_run(["cat", "/workspace/written-by"])
        if found.exit_code == 0:
            break
    owner = container.exec_run(["stat", "-c", "%u:%g", "/workspace/written-by"])
    return found.output.decode().strip(), owner.output.decode().strip()


def test_an_agent_runs_as_the_default_user_and_writes_its_workspace(
    api: Api, busybox: str, clean_docker: docker.DockerClient
) -> None:
    spawned = api.alice.post(
        "/v1/agents", json=body("aptest-user", busybox, command=WRITES, workspace=True)
    )
    assert spawned.status_code == 201, spawned.text
    assert spawned.json()["status"] == "running"
    assert written_by(clean_docker, "aptest-user") == ("10001", "10001:10001")
    container = clean_docker.containers.get(f"{TEST_PREFIX}alice.aptest-user")
    assert container.attrs["Config"]["User"] == "10001:10001"
    assert container.exec_run(["touch", "/etc/not-root"]).exit_code != 0
    # Still writable after a stop and a start (the volume keeps its owner).
    ref = spawned.json()["id"]
    assert api.alice.post(f"/v1/agents/{ref}/stop?timeout=0").status_code == 200
    assert api.alice.post(f"/v1/agents/{ref}/start").status_code == 200
    assert container.exec_run(["touch", "/workspace/again"]).exit_code == 0


def test_the_workspace_is_writable_with_a_read_only_root(
    start_server: StartServer,
    keys: tuple[Keys, Path],
    busybox: str,
    clean_docker: docker.DockerClient,
) -> None:
    server = start_server(AGENT_API_READ_ONLY_ROOTFS="true")
    with client(server.url, keys[0].alice) as alice:
        spawned = alice.post(
            "/v1/agents", json=body("aptest-rouser", busybox, command=WRITES, workspace=True)
        )
        assert spawned.status_code == 201, spawned.text
    assert written_by(clean_docker, "aptest-rouser") == ("10001", "10001:10001")
    # The helper that prepared the volume is gone.
    helpers = clean_docker.api.containers(all=True, filters={"name": f"{TEST_PREFIX}init-"})
    assert helpers == []


def test_the_user_is_the_operators_to_choose(
    start_server: StartServer,
    keys: tuple[Keys, Path],
    busybox: str,
    clean_docker: docker.DockerClient,
) -> None:
    other = start_server(AGENT_API_AGENT_USER="2000:3000")
    image_user = start_server(AGENT_API_AGENT_USER="")
    with client(other.url, keys[0].alice) as alice:
        spawned = alice.post(
            "/v1/agents", json=body("aptest-other", busybox, command=WRITES, workspace=True)
        )
        assert spawned.status_code == 201, spawned.text
    assert written_by(clean_docker, "aptest-other") == ("2000", "2000:3000")
    with client(image_user.url, keys[0].alice) as alice:
        spawned = alice.post(
            "/v1/agents", json=body("aptest-imageuser", busybox, command=WRITES, workspace=True)
        )
        assert spawned.status_code == 201, spawned.text
    # The busybox test image declares no user: root.
    assert written_by(clean_docker, "aptest-imageuser")[0] == "0"

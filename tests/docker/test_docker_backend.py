"""What only a Docker engine can show: the hardened container, volumes, exit states, cost."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import docker
import pytest
import requests

from orchestrators import labels as L
from orchestrators.base import Orchestrator
from orchestrators.errors import SpawnFailed
from orchestrators.models import AgentSpec, AgentStatus, Resources
from testenv.backends import SMALL, docker_orchestrator
from testenv.engine import TEST_NETWORK, TEST_PREFIX, remove_network

pytestmark = pytest.mark.anyio


@pytest.fixture
async def backend(clean_docker: docker.DockerClient) -> AsyncIterator[Orchestrator]:
    orchestrator = docker_orchestrator()
    yield orchestrator
    await orchestrator.close()


def spec(name: str, image: str, **extra: object) -> AgentSpec:
    return AgentSpec.model_validate(
        {
            "name": name,
            "image": image,
            "command": ["sleep", "3600"],
            "restart_policy": "no",
            **extra,
        }
    )


def container_of(client: docker.DockerClient, owner: str, name: str) -> dict:  # type: ignore[type-arg]
    info: dict = client.api.inspect_container(f"{TEST_PREFIX}{owner}.{name}")  # type: ignore[type-arg]
    return info


async def settle(backend: Orchestrator, ref: str, *wanted: AgentStatus) -> AgentStatus:
    for _ in range(150):
        status = (await backend.get(ref, owner="alice")).status
        if status in wanted:
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"{ref} never reached {wanted}, last {status}")


async def test_the_container_is_built_under_the_policy(
    backend: Orchestrator, busybox: str, clean_docker: docker.DockerClient
) -> None:
    resources = Resources(cpus=0.5, memory_mb=96, pids=50)
    await backend.spawn(
        spec("aptest-policy", busybox, workspace=True, secrets={"TOKEN": "hunter2-secret"}),
        owner="alice",
        resources=resources,
    )
    info = container_of(clean_docker, "alice", "aptest-policy")
    host = info["HostConfig"]

    assert host["CapDrop"] == ["ALL"]
    assert not host.get("CapAdd")
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["Privileged"] is False
    assert host["Memory"] == 96 * 1024 * 1024
    assert host["MemorySwap"] == 96 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 50
    assert not host.get("Binds")
    assert not host.get("Devices")
    # The owner's own network, never one shared with other owners or with agent-api.
    assert host["NetworkMode"] == clean_docker.networks.get(f"{TEST_NETWORK}.alice").id
    assert host["PidMode"] == ""
    assert host["IpcMode"] in ("private", "shareable")
    assert list(info["NetworkSettings"]["Networks"]) == [f"{TEST_NETWORK}.alice"]
    mounts = info["Mounts"]
    assert [(m["Type"], m["Destination"]) for m in mounts] == [("volume", "/workspace")]
    assert mounts[0]["Name"].startswith(f"{TEST_PREFIX}ws-")
    assert all("docker.sock" not in str(m) for m in mounts)
    # Secrets reach the process but never a label.
    assert "TOKEN=hunter2-secret" in info["Config"]["Env"]
    assert "hunter2-secret" not in str(info["Config"]["Labels"])
    assert info["Config"]["Labels"][L.MANAGED_BY] == L.MANAGED_BY_VALUE


async def test_the_workspace_survives_stop_and_start_and_goes_with_delete(
    backend: Orchestrator, busybox: str, clean_docker: docker.DockerClient
) -> None:
    agent = await backend.spawn(
        spec("aptest-ws", busybox, workspace=True), owner="alice", resources=SMALL
    )
    clean_docker.containers.get(f"{TEST_PREFIX}alice.aptest-ws").exec_run(
        ["sh", "-c", "echo kept > /workspace/note"]
    )
    await backend.stop(agent.id, owner="alice", timeout=0)
    await backend.start(agent.id, owner="alice")
    note = clean_docker.containers.get(f"{TEST_PREFIX}alice.aptest-ws").exec_run(
        ["cat", "/workspace/note"]
    )
    assert note.output == b"kept\n"

    await backend.delete(agent.id, owner="alice")
    volumes = clean_docker.api.volumes(filters={"label": [f"{L.ID}={agent.id}"]})["Volumes"]
    assert not volumes


async def test_exit_codes_and_oom_become_statuses(backend: Orchestrator, busybox: str) -> None:
    done = await backend.spawn(
        spec("aptest-done", busybox, command=["true"]), owner="alice", resources=SMALL
    )
    crash = await backend.spawn(
        spec("aptest-crash", busybox, command=["sh", "-c", "exit 3"]),
        owner="alice",
        resources=SMALL,
    )
    hog = await backend.spawn(
        spec(
            "aptest-oom",
            busybox,
            command=["dd", "if=/dev/zero", "bs=64M", "count=1", "of=/dev/null"],
        ),
        owner="alice",
        resources=Resources(cpus=0.5, memory_mb=16, pids=64),
    )

    assert await settle(backend, done.id, AgentStatus.EXITED) is AgentStatus.EXITED
    assert await settle(backend, crash.id, AgentStatus.FAILED) is AgentStatus.FAILED
    assert (await backend.get(crash.id, owner="alice")).detail == "exited with code 3"
    assert await settle(backend, hog.id, AgentStatus.FAILED) is AgentStatus.FAILED
    assert "out of memory" in str((await backend.get(hog.id, owner="alice")).detail)


async def test_an_agent_that_cannot_start_leaves_nothing(
    backend: Orchestrator, busybox: str, clean_docker: docker.DockerClient
) -> None:
    with pytest.raises(SpawnFailed):
        await backend.spawn(
            spec("aptest-nostart", busybox, command=["/no/such/binary"], workspace=True),
            owner="alice",
            resources=SMALL,
        )
    leftovers = clean_docker.api.containers(
        all=True, filters={"name": f"{TEST_PREFIX}alice.aptest-nostart"}
    )
    assert leftovers == []
    volumes = clean_docker.api.volumes(filters={"label": [f"{L.OWNER}=alice"]})["Volumes"] or []
    assert [v for v in volumes if v["Name"].startswith(TEST_PREFIX)] == []
    assert await backend.list() == []


async def test_the_network_is_created_when_missing_and_agents_answer_by_name(
    backend: Orchestrator, busybox: str, clean_docker: docker.DockerClient
) -> None:
    # The backend knows the network's id from an earlier spawn, then it goes away.
    first = await backend.spawn(spec("aptest-first", busybox), owner="alice", resources=SMALL)
    await backend.delete(first.id, owner="alice")
    remove_network(clean_docker, f"{TEST_NETWORK}.alice")
    await backend.spawn(
        spec("aptest-web", busybox, command=["httpd", "-f", "-p", "8080", "-h", "/etc"]),
        owner="alice",
        resources=SMALL,
    )
    client = await backend.spawn(spec("aptest-client", busybox), owner="alice", resources=SMALL)
    assert client.status is AgentStatus.RUNNING
    probe = clean_docker.containers.get(f"{TEST_PREFIX}alice.aptest-client").exec_run(
        [
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10; do "
            "wget -q -O- http://aptest-web:8080/hostname && exit 0; sleep 0.5; done; exit 1",
        ]
    )
    assert probe.exit_code == 0
    assert probe.output.strip() == b"aptest-web"


async def test_a_spawn_cut_off_before_its_start_whose_network_went_away_is_done_anew(
    backend: Orchestrator, busybox: str, clean_docker: docker.DockerClient
) -> None:
    # What a service killed between create and start leaves: the container, never started,
    # on the owner's network; then the sweep (or anything) removes that network.
    first = await backend.spawn(
        spec("aptest-cut", busybox), owner="alice", resources=SMALL, idempotency_key="cut-1"
    )
    info = container_of(clean_docker, "alice", "aptest-cut")
    clean_docker.api.remove_container(info["Id"], force=True)
    network = f"{TEST_NETWORK}.alice"
    clean_docker.api.create_container(
        info["Config"]["Image"],
        command=info["Config"]["Cmd"],
        labels=info["Config"]["Labels"],
        name=info["Name"].lstrip("/"),
        host_config=clean_docker.api.create_host_config(network_mode=network),
    )
    remove_network(clean_docker, network)

    again = await backend.spawn(
        spec("aptest-cut", busybox), owner="alice", resources=SMALL, idempotency_key="cut-1"
    )
    # The retry answers with an agent that runs, never with one that cannot start.
    assert again.status is AgentStatus.RUNNING
    assert [a.name for a in await backend.list(owner="alice")] == ["aptest-cut"]
    assert container_of(clean_docker, "alice", "aptest-cut")["State"]["Running"]
    assert first.name == again.name


@contextlib.contextmanager
def engine_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The URL of every request sent to the engine while the block runs."""
    calls: list[str] = []
    original = requests.Session.send

    def counting(self: requests.Session, request: requests.PreparedRequest, **kw: object) -> object:
        calls.append(f"{request.method} {request.url}")
        return original(self, request, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(requests.Session, "send", counting)
    try:
        yield calls
    finally:
        monkeypatch.setattr(requests.Session, "send", original)


async def test_list_costs_the_same_engine_calls_for_any_fleet_size(
    backend: Orchestrator, busybox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def calls_for_list() -> list[str]:
        with engine_calls(monkeypatch) as calls:
            await backend.list()
        return calls

    await backend.spawn(spec("aptest-n0", busybox), owner="alice", resources=SMALL)
    with_one = await calls_for_list()
    for index in range(1, 6):
        await backend.spawn(spec(f"aptest-n{index}", busybox), owner="alice", resources=SMALL)
    with_six = await calls_for_list()

    # The containers, and the revision records (changes made in place): one query each.
    assert len(with_one) == len(with_six) == 2
    assert "/containers/json" in with_six[0]
    assert "/volumes" in with_six[1]


async def test_a_spawn_with_a_key_and_a_quota_lists_the_owners_agents_once(
    backend: Orchestrator, busybox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One query of the owner's agents answers both the Idempotency-Key replay and the quota.
    await backend.spawn(spec("aptest-q0", busybox), owner="alice", resources=SMALL)
    with engine_calls(monkeypatch) as calls:
        first = await backend.spawn(
            spec("aptest-q1", busybox),
            owner="alice",
            resources=SMALL,
            idempotency_key="q-1",
            max_agents=5,
        )
    assert len([c for c in calls if "/containers/json" in c]) == 1
    with engine_calls(monkeypatch) as replay:
        again = await backend.spawn(
            spec("aptest-q1", busybox),
            owner="alice",
            resources=SMALL,
            idempotency_key="q-1",
            max_agents=2,
        )
    assert again.id == first.id  # replayed, although the owner is at the quota now
    assert not [c for c in replay if c.startswith("POST")]
    assert len([c for c in replay if "/containers/json" in c]) == 1

"""Names on the network: no operator can answer for another owner's agent or for the
platform's services, owners cannot reach each other, and agents cannot reach agent-api.

Against the real service and engine. A stand-in for agent-api (busybox httpd, alias
``agent-api``) runs on the platform's network, as in the compose deployment; probes run
inside agents with busybox ``nslookup`` and ``wget``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from orchestrators.docker import DockerConfig, DockerOrchestrator
from orchestrators.models import AgentSpec
from testenv.backends import SMALL
from testenv.engine import TEST_NAMES, TEST_NETWORK, TEST_PREFIX, remove_test_resources

from ..api.helpers import assert_problem, body
from ..conftest import Api, Keys, StartServer

HTTPD = ["httpd", "-f", "-p", "8080", "-h", "/etc"]
STANDIN = f"{TEST_PREFIX}agent-api-standin"


def container(engine: docker.DockerClient, owner: str, name: str) -> Any:
    return engine.containers.get(f"{TEST_PREFIX}{owner}.{name}")


def ip_of(found: Any) -> str:
    networks = found.attrs["NetworkSettings"]["Networks"]
    (only,) = networks.values()
    return str(only["IPAddress"])


def run_in(found: Any, script: str) -> tuple[int, str]:
    result = found.exec_run(["sh", "-c", script])
    return result.exit_code, result.output.decode()


def resolves_to(found: Any, name: str) -> set[str]:
    """The addresses the agent's DNS gives for ``name`` (empty: it does not resolve)."""
    code, output = run_in(found, f"nslookup {name} 2>&1")
    answer = output.split("Name:", 1)[1] if "Name:" in output else ""
    addresses = {
        line.split(":", 1)[1].strip().split()[0]
        for line in answer.splitlines()
        if line.strip().startswith("Address")
    }
    return addresses if code == 0 else set()


def fetches(found: Any, url: str) -> bool:
    """Whether the agent gets an answer from ``url`` (a few tries, for a server starting)."""
    # busybox's own ``wget -T`` crashes; ``timeout`` bounds an unanswered connect instead.
    script = (
        f"for i in 1 2 3 4 5; do timeout 2 wget -q -O- {url} && exit 0; sleep 0.3; done; exit 1"
    )
    return run_in(found, script)[0] == 0


@pytest.fixture
def platform(clean_docker: docker.DockerClient, busybox: str) -> Iterator[Any]:
    """A stand-in for agent-api on the platform's network, answering as ``agent-api``."""
    api = clean_docker.api
    created = not [n for n in api.networks(names=[TEST_NETWORK]) if n["Name"] == TEST_NETWORK]
    if created:
        api.create_network(TEST_NETWORK, driver="bridge")
    standin = api.create_container(
        busybox,
        name=STANDIN,
        command=["httpd", "-f", "-p", "8000", "-h", "/etc"],
        host_config=api.create_host_config(network_mode=TEST_NETWORK),
        networking_config=api.create_networking_config(
            {TEST_NETWORK: api.create_endpoint_config(aliases=["agent-api"])}
        ),
    )["Id"]
    api.start(standin)
    try:
        yield clean_docker.containers.get(standin)
    finally:
        remove_test_resources(clean_docker)
        if created:
            with contextlib.suppress(docker.errors.APIError):
                api.remove_network(TEST_NETWORK)


def test_the_platforms_names_cannot_be_taken(
    api: Api,
    start_server: StartServer,
    keys: tuple[Keys, Path],
    busybox: str,
    clean_docker: docker.DockerClient,
) -> None:
    for name in ("agent-api", "sol"):
        refused = api.alice.post("/v1/agents", json=body(name, busybox))
        assert "reserved" in assert_problem(refused, 403, "policy_violation")["detail"]
        admin = api.admin.post("/v1/agents", json=body(name, busybox))
        assert_problem(admin, 403, "policy_violation")
    server = start_server(AGENT_API_RESERVED_NAMES='["aptest-gateway"]')
    with httpx.Client(base_url=server.url, headers={"X-API-Key": keys[0].alice}) as alice:
        refused = alice.post("/v1/agents", json=body("aptest-gateway", busybox))
        assert_problem(refused, 403, "policy_violation")
    assert clean_docker.api.containers(all=True, filters={"name": TEST_NAMES}) == []


def test_an_agent_cannot_reach_agent_api(api: Api, busybox: str, platform: Any) -> None:
    spawned = api.alice.post("/v1/agents", json=body("aptest-probe", busybox))
    assert spawned.status_code == 201, spawned.text
    probe = container(platform.client, "alice", "aptest-probe")
    assert resolves_to(probe, "agent-api") == set()
    platform.reload()
    assert not fetches(probe, f"http://{ip_of(platform)}:8000/hostname")


def test_owners_cannot_answer_for_or_reach_each_other(
    api: Api, busybox: str, platform: Any
) -> None:
    engine = platform.client
    for client in (api.bob, api.alice):
        made = client.post("/v1/agents", json=body("aptest-researcher", busybox, command=HTTPD))
        assert made.status_code == 201, made.text
    assert api.alice.post("/v1/agents", json=body("aptest-probe", busybox)).status_code == 201
    mine = container(engine, "alice", "aptest-researcher")
    theirs = container(engine, "bob", "aptest-researcher")
    probe = container(engine, "alice", "aptest-probe")

    # The name answers with alice's agent only, and the owner reaches it by that name.
    assert resolves_to(probe, "aptest-researcher") == {ip_of(mine)}
    assert fetches(probe, "http://aptest-researcher:8080/hostname")
    # Bob's agent, same name, is neither resolved nor reachable from alice's network.
    assert not fetches(probe, f"http://{ip_of(theirs)}:8080/hostname")
    assert list(theirs.attrs["NetworkSettings"]["Networks"]) == [f"{TEST_NETWORK}.bob"]

    # The API says where each agent is reached.
    agent = api.alice.get("/v1/agents/aptest-researcher").json()
    assert agent["address"] == {"network": f"{TEST_NETWORK}.alice", "host": "aptest-researcher"}
    listed = {a["name"]: a["address"] for a in api.bob.get("/v1/agents").json()["items"]}
    assert listed == {
        "aptest-researcher": {"network": f"{TEST_NETWORK}.bob", "host": "aptest-researcher"}
    }
    isolated = api.alice.post("/v1/agents", json=body("aptest-alone", busybox, network="none"))
    assert isolated.json()["address"] is None


@pytest.mark.anyio
async def test_an_idle_owner_network_is_removed_by_the_sweep(
    clean_docker: docker.DockerClient, busybox: str
) -> None:
    backend = DockerOrchestrator(
        DockerConfig(
            network=TEST_NETWORK,
            resource_prefix=TEST_PREFIX,
            pull_missing_images=False,
            stop_timeout=0,
            orphan_grace_seconds=0,
        )
    )
    name = f"{TEST_NETWORK}.carol"

    def exists() -> bool:
        return any(n["Name"] == name for n in clean_docker.api.networks(names=[name]))

    try:
        spec = AgentSpec(name="aptest-idle", image=busybox, command=["sleep", "3600"])
        agent = await backend.spawn(spec, owner="carol", resources=SMALL)
        await backend.stop(agent.id, owner="carol")
        await backend.sweep(now=datetime.now(UTC))
        assert exists()  # a stopped agent still needs its network to start again
        await backend.delete(agent.id, owner="carol")
        report = await backend.sweep(now=datetime.now(UTC))
        assert name in report.removed
        assert not exists()
        # The next spawn of that owner creates it again.
        again = await backend.spawn(spec, owner="carol", resources=SMALL)
        assert again.address is not None
        assert again.address.network == name
    finally:
        await backend.close()


@pytest.mark.anyio
async def test_the_operator_may_let_agents_reach_agent_api(
    platform: Any, busybox: str, clean_docker: docker.DockerClient
) -> None:
    backend = DockerOrchestrator(
        DockerConfig(
            network=TEST_NETWORK,
            resource_prefix=TEST_PREFIX,
            pull_missing_images=False,
            stop_timeout=0,
            service_container=STANDIN,
        )
    )
    try:
        spec = AgentSpec(name="aptest-caller", image=busybox, command=["sleep", "3600"])
        await backend.spawn(spec, owner="dave", resources=SMALL)
        caller = container(clean_docker, "dave", "aptest-caller")
        assert fetches(caller, "http://agent-api:8000/hostname")
        platform.reload()
        assert f"{TEST_NETWORK}.dave" in platform.attrs["NetworkSettings"]["Networks"]
    finally:
        await backend.close()

"""A replacement cut off by a killed service: the sweep finishes it or undoes it.

The service is killed between two engine calls that no test can time, so the engine state
each step leaves is made here by the backend's own steps, then handed to the sweep.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import docker
import pytest

from orchestrators import labels as L
from orchestrators.changes import plan_change
from orchestrators.docker import DockerOrchestrator
from orchestrators.models import AgentChange, AgentSpec, StoppedBy, StoredSpec
from orchestrators.policy import SpawnPolicy
from testenv.backends import SMALL, docker_orchestrator
from testenv.engine import TEST_PREFIX

pytestmark = pytest.mark.anyio

POLICY = SpawnPolicy(default_resources=SMALL, max_resources=SMALL)
LATER = datetime.now(UTC) + timedelta(days=1)  # past every grace period


@pytest.fixture
async def backend(clean_docker: docker.DockerClient) -> AsyncIterator[DockerOrchestrator]:
    orchestrator = docker_orchestrator()
    assert isinstance(orchestrator, DockerOrchestrator)
    yield orchestrator
    await orchestrator.close()


def containers_of(client: docker.DockerClient, agent_id: str) -> list[dict[str, object]]:
    found: list[dict[str, object]] = client.api.containers(
        all=True, filters={"label": [f"{L.ID}={agent_id}"]}
    )
    return found


async def cut_off(backend: DockerOrchestrator, busybox: str, *, created: bool) -> str:
    """Spawn an agent and change its env, stopping where a killed service would: after the
    old container was stopped (``created`` False) or after the new one was created."""
    spec = AgentSpec.model_validate(
        {"name": "aptest-cut", "image": busybox, "command": ["sleep", "3600"], "workspace": True}
    )
    agent = await backend.spawn(spec, owner="alice", resources=SMALL)
    old = backend._find(agent.id, "alice")
    revs = backend._revisions_of(old)
    current = StoredSpec.model_validate_json(old.labels[L.SPEC])
    plan = plan_change(current, AgentChange.model_validate({"env": {"NEW": "1"}}), POLICY)
    record = backend._claim(old, revs, current, plan, False, True)[0]
    await backend._stop(old, 0, StoppedBy.CALL)
    if created:
        backend._create_replacement(old, plan, record, {})
    return agent.id


async def test_a_replacement_cut_off_after_the_new_container_is_finished(
    backend: DockerOrchestrator, busybox: str, clean_docker: docker.DockerClient
) -> None:
    agent_id = await cut_off(backend, busybox, created=True)
    assert len(containers_of(clean_docker, agent_id)) == 2

    await backend.sweep(now=LATER)

    (only,) = containers_of(clean_docker, agent_id)
    assert only["Names"] == [f"/{TEST_PREFIX}alice.aptest-cut"]
    assert only["State"] == "running"
    agent = await backend.get(agent_id, owner="alice")
    assert (agent.revision, agent.env, agent.workspace) == (2, {"NEW": "1"}, True)


async def test_a_replacement_cut_off_before_the_new_container_is_undone(
    backend: DockerOrchestrator, busybox: str, clean_docker: docker.DockerClient
) -> None:
    agent_id = await cut_off(backend, busybox, created=False)
    (before,) = containers_of(clean_docker, agent_id)

    await backend.sweep(now=LATER)

    (only,) = containers_of(clean_docker, agent_id)
    assert only["Id"] == before["Id"]
    assert only["State"] == "running"
    agent = await backend.get(agent_id, owner="alice")
    assert (agent.revision, agent.env) == (1, {})
    assert [r.number for r in (await backend.revisions(agent_id, owner="alice")).items] == [1]


async def test_a_change_in_place_cut_off_before_the_engine_made_it_is_made_by_the_sweep(
    backend: DockerOrchestrator, busybox: str, clean_docker: docker.DockerClient
) -> None:
    spec = AgentSpec.model_validate(
        {"name": "aptest-cut-live", "image": busybox, "command": ["sleep", "3600"]}
    )
    agent = await backend.spawn(spec, owner="alice", resources=SMALL)
    old = backend._find(agent.id, "alice")
    current = StoredSpec.model_validate_json(old.labels[L.SPEC])
    change = AgentChange.model_validate({"resources": {"memory_mb": 48}})
    plan = plan_change(current, change, POLICY)
    backend._claim(old, backend._revisions_of(old), current, plan, True, True)  # then killed

    await backend.sweep()

    host = clean_docker.api.inspect_container(old.id)["HostConfig"]
    assert host["Memory"] == 48 * 1024 * 1024
    assert (await backend.get(agent.id, owner="alice")).resources.memory_mb == 48

"""Changing a running agent (``Orchestrator.update``, ``revisions``, ``rollback``, ``stats``),
run unchanged against every backend: what a caller sees is the same whatever the engine."""

from __future__ import annotations

import asyncio

import pytest

from orchestrators.base import Orchestrator
from orchestrators.errors import AgentNotFound, NotSupported, PolicyViolation, RevisionMismatch
from orchestrators.models import AgentChange, AgentStats, AgentStatus, Resources
from orchestrators.policy import SpawnPolicy
from testenv.backends import SMALL

from .test_orchestrator_contract import sleeper, spawn

pytestmark = pytest.mark.anyio

POLICY = SpawnPolicy(
    default_resources=SMALL, max_resources=Resources(cpus=2.0, memory_mb=256, pids=256)
)


def change(**fields: object) -> AgentChange:
    return AgentChange.model_validate(fields)


async def test_a_change_is_a_new_revision_and_a_rollback_restores_the_spec(
    backend: Orchestrator, image: str
) -> None:
    agent = await spawn(backend, sleeper("aptest-chg", image, env={"MODE": "a"}))
    assert agent.revision == 1

    changed = await backend.update(
        agent.id, change(env={"MODE": "b"}, labels={"team": "x"}), owner="alice", policy=POLICY
    )
    assert changed.revision == 2
    assert changed.agent.revision == 2
    assert changed.agent.env == {"MODE": "b"}
    assert changed.agent.labels == {"team": "x"}
    assert set(changed.changes) == {"env.MODE", "labels.team"}
    assert (changed.agent.id, changed.agent.name) == (agent.id, agent.name)
    assert changed.agent.status is AgentStatus.RUNNING
    assert (await backend.get(agent.id, owner="alice")).revision == 2

    back = await backend.rollback(agent.id, owner="alice", policy=POLICY)
    assert back.revision == 3
    assert back.agent.env == {"MODE": "a"}
    assert back.agent.labels == {}
    history = await backend.revisions(agent.id, owner="alice")
    assert [r.number for r in history.items] == [3, 2, 1]
    assert history.items[1].spec.env == {"MODE": "b"}
    assert history.kept == 10
    await backend.delete(agent.id, owner="alice")


async def test_of_two_changes_from_one_revision_one_wins(backend: Orchestrator, image: str) -> None:
    agent = await spawn(backend, sleeper("aptest-chg-race", image))
    outcomes = await asyncio.gather(
        *(
            backend.update(
                agent.id,
                change(env={"WHO": who}),
                owner="alice",
                policy=POLICY,
                expected_revision=1,
            )
            for who in ("first", "second")
        ),
        return_exceptions=True,
    )
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(refused) == 1, outcomes
    assert isinstance(refused[0], RevisionMismatch)
    now = await backend.get(agent.id, owner="alice")
    assert now.revision == 2
    assert now.env["WHO"] in ("first", "second")
    await backend.delete(agent.id, owner="alice")


async def test_a_refused_change_or_another_owner_changes_nothing(
    backend: Orchestrator, image: str
) -> None:
    agent = await spawn(backend, sleeper("aptest-chg-refused", image))
    with pytest.raises(PolicyViolation):
        await backend.update(
            agent.id, change(resources={"memory_mb": 100_000}), owner="alice", policy=POLICY
        )
    with pytest.raises(AgentNotFound):
        await backend.update(agent.id, change(env={"X": "1"}), owner="bob", policy=POLICY)
    with pytest.raises(AgentNotFound):
        await backend.revisions(agent.id, owner="bob")
    with pytest.raises(AgentNotFound):
        await backend.rollback(agent.id, owner="bob", policy=POLICY)
    with pytest.raises(AgentNotFound):
        await backend.stats(agent.id, owner="bob")
    now = await backend.get(agent.id, owner="alice")
    assert now.revision == 1
    assert now.resources == agent.resources
    assert now.env == agent.env
    await backend.delete(agent.id, owner="alice")


async def test_a_secret_rotation_shows_names_only(backend: Orchestrator, image: str) -> None:
    agent = await spawn(backend, sleeper("aptest-chg-secret", image, secrets={"TOKEN": "v-one"}))
    rotated = await backend.update(
        agent.id, change(secrets={"TOKEN": "v-two", "MORE": "v-three"}), policy=POLICY
    )
    assert rotated.agent.secret_names == ["MORE", "TOKEN"]
    assert set(rotated.changes) == {"secrets.MORE", "secrets.TOKEN"}
    history = await backend.revisions(agent.id)
    for text in (rotated.model_dump_json(), history.model_dump_json()):
        for value in ("v-one", "v-two", "v-three"):
            assert value not in text
    await backend.delete(agent.id)


async def test_a_stopped_agent_changed_stays_stopped(backend: Orchestrator, image: str) -> None:
    agent = await spawn(backend, sleeper("aptest-chg-stopped", image))
    await backend.stop(agent.id, timeout=0)
    changed = await backend.update(agent.id, change(env={"LATER": "1"}), policy=POLICY)
    assert changed.restarted is False
    assert changed.agent.status is AgentStatus.STOPPED
    started = await backend.start(agent.id)
    assert started.env == {"LATER": "1"}
    assert started.status is AgentStatus.RUNNING
    await backend.delete(agent.id)


async def test_stats_are_one_sample_or_not_supported(backend: Orchestrator, image: str) -> None:
    agent = await spawn(backend, sleeper("aptest-chg-stats", image))
    try:
        stats = await backend.stats(agent.id, owner="alice")
    except NotSupported:
        pass  # a cluster without a metrics API: the API answers 501
    else:
        assert isinstance(stats, AgentStats)
        assert stats.memory_limit_bytes == SMALL.memory_mb * 2**20
    await backend.delete(agent.id, owner="alice")

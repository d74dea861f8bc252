"""The Orchestrator contract (``orchestrators.base``), run unchanged against every backend."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from orchestrators.base import Orchestrator
from orchestrators.errors import (
    AgentConflict,
    AgentExpired,
    AgentNotFound,
    AmbiguousAgentName,
    IdempotencyKeyReused,
    ImageNotFound,
    InvalidSpec,
)
from orchestrators.models import Agent, AgentSpec, AgentStatus, LogOptions
from testenv.backends import SMALL

pytestmark = pytest.mark.anyio

GREETING = "hello-from-agent"


def sleeper(name: str, image: str, **extra: object) -> AgentSpec:
    return AgentSpec.model_validate(
        {
            "name": name,
            "image": image,
            "command": ["sh", "-c", f"echo {GREETING}; echo second-line; exec sleep 3600"],
            "restart_policy": "no",
            **extra,
        }
    )


async def spawn(
    backend: Orchestrator, spec: AgentSpec, owner: str = "alice", key: str | None = None
) -> Agent:
    return await backend.spawn(spec, owner=owner, resources=SMALL, idempotency_key=key)


async def collect(chunks: AsyncIterator[bytes]) -> str:
    return b"".join([chunk async for chunk in chunks]).decode()


async def wait_for_output(backend: Orchestrator, ref: str, text: str, owner: str = "alice") -> str:
    for _ in range(100):
        output = await collect(await backend.logs(ref, owner=owner, options=LogOptions()))
        if text in output:
            return output
        await asyncio.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in the logs of {ref}")


async def test_spawn_returns_the_running_agent_with_its_spec(
    backend: Orchestrator, image: str
) -> None:
    spec = sleeper(
        "aptest-spawn",
        image,
        env={"LOG_LEVEL": "info"},
        secrets={"API_TOKEN": "s3cr3t-value"},
        labels={"team": "research"},
    )
    agent = await spawn(backend, spec)

    assert agent.name == "aptest-spawn"
    assert agent.owner == "alice"
    assert agent.image == image
    assert agent.status is AgentStatus.RUNNING
    assert agent.env == {"LOG_LEVEL": "info"}
    assert agent.secret_names == ["API_TOKEN"]
    assert "s3cr3t-value" not in agent.model_dump_json()
    assert agent.labels == {"team": "research"}
    assert agent.resources == SMALL
    assert agent.orchestrator == backend.name


async def test_get_by_id_or_name_and_list_agree(backend: Orchestrator, image: str) -> None:
    agent = await spawn(backend, sleeper("aptest-one", image))

    by_id = await backend.get(agent.id, owner="alice")
    by_name = await backend.get("aptest-one", owner="alice")
    listed = await backend.list(owner="alice")

    assert by_id == by_name
    assert by_id.id == agent.id
    assert [a.id for a in listed] == [agent.id]
    assert listed[0].name == agent.name
    assert listed[0].created_at == agent.created_at


async def test_another_owners_agent_is_invisible(backend: Orchestrator, image: str) -> None:
    agent = await spawn(backend, sleeper("aptest-private", image), owner="alice")

    assert await backend.list(owner="bob") == []
    for ref in (agent.id, agent.name):
        with pytest.raises(AgentNotFound):
            await backend.get(ref, owner="bob")
        with pytest.raises(AgentNotFound):
            await backend.stop(ref, owner="bob", timeout=0)
        with pytest.raises(AgentNotFound):
            await backend.start(ref, owner="bob")
        with pytest.raises(AgentNotFound):
            await backend.restart(ref, owner="bob")
        with pytest.raises(AgentNotFound):
            await backend.logs(ref, owner="bob", options=LogOptions())
        with pytest.raises(AgentNotFound):
            await backend.delete(ref, owner="bob")
    assert (await backend.get(agent.id, owner="alice")).status is AgentStatus.RUNNING


async def test_names_are_unique_per_owner_only(backend: Orchestrator, image: str) -> None:
    first = await spawn(backend, sleeper("aptest-dup", image), owner="alice")
    with pytest.raises(AgentConflict):
        await spawn(backend, sleeper("aptest-dup", image), owner="alice")
    other = await spawn(backend, sleeper("aptest-dup", image), owner="bob")

    assert other.id != first.id
    assert {a.owner for a in await backend.list()} == {"alice", "bob"}
    with pytest.raises(AmbiguousAgentName):
        await backend.get("aptest-dup", owner=None)
    assert (await backend.get(other.id, owner=None)).owner == "bob"


async def test_idempotency_key_returns_the_first_agent(backend: Orchestrator, image: str) -> None:
    spec = sleeper("aptest-idem", image)
    first = await spawn(backend, spec, key="spawn-42")
    again = await spawn(backend, spec, key="spawn-42")

    assert again.id == first.id
    assert len(await backend.list(owner="alice")) == 1
    with pytest.raises(IdempotencyKeyReused):
        await spawn(backend, sleeper("aptest-idem", image, env={"X": "1"}), key="spawn-42")
    # The same key from another owner is another request.
    bobs = await spawn(backend, spec, owner="bob", key="spawn-42")
    assert bobs.id != first.id


async def test_stop_start_restart_are_idempotent(backend: Orchestrator, image: str) -> None:
    agent = await spawn(backend, sleeper("aptest-life", image, workspace=True))

    stopped = await backend.stop(agent.id, owner="alice", timeout=0)
    assert stopped.status is AgentStatus.STOPPED
    assert (await backend.stop(agent.id, owner="alice", timeout=0)).status is AgentStatus.STOPPED
    assert (await backend.get(agent.id, owner="alice")).status is AgentStatus.STOPPED

    started = await backend.start(agent.name, owner="alice")
    assert started.status is AgentStatus.RUNNING
    assert (await backend.start(agent.name, owner="alice")).status is AgentStatus.RUNNING

    restarted = await backend.restart(agent.id, owner="alice", timeout=0)
    assert restarted.status is AgentStatus.RUNNING
    assert restarted.id == agent.id
    assert restarted.created_at == agent.created_at


async def test_restart_starts_a_stopped_agent(backend: Orchestrator, image: str) -> None:
    agent = await spawn(backend, sleeper("aptest-restart", image))
    await backend.stop(agent.id, owner="alice", timeout=0)
    assert (await backend.restart(agent.id, owner="alice", timeout=0)).status is AgentStatus.RUNNING


async def test_delete_removes_the_agent_and_a_second_delete_is_not_found(
    backend: Orchestrator, image: str
) -> None:
    agent = await spawn(backend, sleeper("aptest-del", image, workspace=True))

    await backend.delete(agent.name, owner="alice")

    with pytest.raises(AgentNotFound):
        await backend.get(agent.id, owner="alice")
    with pytest.raises(AgentNotFound):
        await backend.delete(agent.id, owner="alice")
    assert await backend.list(owner="alice") == []
    # The name is free again.
    assert (await spawn(backend, sleeper("aptest-del", image))).id != agent.id


async def test_logs_tail_and_follow(backend: Orchestrator, image: str) -> None:
    agent = await spawn(backend, sleeper("aptest-logs", image))
    output = await wait_for_output(backend, agent.id, "second-line")
    assert GREETING in output

    tail = await collect(await backend.logs(agent.id, owner="alice", options=LogOptions(tail=1)))
    assert tail.strip().splitlines()[-1] == "second-line"
    assert GREETING not in tail

    follow = await backend.logs(agent.id, owner="alice", options=LogOptions(follow=True))
    seen = ""
    async for chunk in follow:
        seen += chunk.decode()
        if "second-line" in seen:
            break
    await follow.aclose()  # type: ignore[attr-defined]
    assert GREETING in seen


async def test_follow_ends_when_the_agent_stops(backend: Orchestrator, image: str) -> None:
    agent = await spawn(backend, sleeper("aptest-follow", image))
    await wait_for_output(backend, agent.id, "second-line")
    follow = await backend.logs(agent.id, owner="alice", options=LogOptions(follow=True))

    async def read_all() -> str:
        return await collect(follow)

    reader = asyncio.create_task(read_all())
    await asyncio.sleep(0.5)
    assert not reader.done()
    await backend.stop(agent.id, owner="alice", timeout=0)
    output = await asyncio.wait_for(reader, timeout=30)
    assert GREETING in output


async def test_missing_image_is_refused_and_leaves_nothing(backend: Orchestrator) -> None:
    spec = AgentSpec(name="aptest-noimage", image="aptest/does-not-exist:1", workspace=True)
    with pytest.raises(ImageNotFound):
        await spawn(backend, spec)
    assert await backend.list() == []


async def test_list_filters_on_user_labels(backend: Orchestrator, image: str) -> None:
    red = await spawn(backend, sleeper("aptest-red", image, labels={"color": "red", "tier": "a"}))
    await spawn(backend, sleeper("aptest-blue", image, labels={"color": "blue", "tier": "a"}))

    assert [a.id for a in await backend.list(labels={"color": "red"})] == [red.id]
    assert len(await backend.list(labels={"tier": "a"})) == 2
    assert await backend.list(labels={"color": "green"}) == []


async def test_unknown_references_are_not_found(backend: Orchestrator) -> None:
    for ref in ("aptest-nobody", "0" * 32, "f" * 64):
        with pytest.raises(AgentNotFound):
            await backend.get(ref)
        with pytest.raises(AgentNotFound):
            await backend.delete(ref)


async def test_a_ref_shaped_like_an_id_is_never_read_as_a_name(
    backend: Orchestrator, image: str
) -> None:
    lookalike = "0123456789abcdef" * 2
    with pytest.raises(ValidationError):
        sleeper(lookalike, image)
    # As an agent spawned before names were checked would be: built without validation.
    legacy = AgentSpec.model_construct(
        name=lookalike, image=image, command=["sleep", "3600"], restart_policy="no"
    )
    bobs = await spawn(backend, legacy, owner="bob")
    for owner in (None, "bob"):
        with pytest.raises(AgentNotFound):
            await backend.get(lookalike, owner=owner)
        with pytest.raises(AgentNotFound):
            await backend.delete(lookalike, owner=owner)
    assert (await backend.get(bobs.id, owner="bob")).name == lookalike
    await backend.delete(bobs.id)


async def test_a_new_instance_sees_exactly_the_same_agents(
    backend: Orchestrator, image: str, backend_factory: Callable[[], Orchestrator]
) -> None:
    for index in range(3):
        await spawn(backend, sleeper(f"aptest-state-{index}", image, labels={"n": str(index)}))
    before = sorted(await backend.list(), key=lambda a: a.id)

    await backend.close()
    fresh = backend_factory()
    try:
        after = sorted(await fresh.list(), key=lambda a: a.id)
    finally:
        await fresh.close()
    assert after == before


async def test_ttl_deadline_renewal_and_sweep(backend: Orchestrator, image: str) -> None:
    agent = await spawn(backend, sleeper("aptest-ttl", image, ttl_seconds=600))
    assert agent.expires_at is not None
    assert 590 <= (agent.expires_at - agent.created_at).total_seconds() <= 610
    plain = await spawn(backend, sleeper("aptest-no-ttl", image))
    assert plain.expires_at is None
    with pytest.raises(InvalidSpec):
        await backend.renew(plain.id, owner="alice", ttl_seconds=60)

    renewed = await backend.renew(agent.id, owner="alice", ttl_seconds=3600)
    assert renewed.expires_at is not None
    assert renewed.expires_at > agent.expires_at
    assert (await backend.get(agent.id, owner="alice")).expires_at == renewed.expires_at
    listed = {a.id: a for a in await backend.list(owner="alice")}
    assert listed[agent.id].expires_at == renewed.expires_at
    shorter = await backend.renew(agent.id, owner="alice", ttl_seconds=1)
    assert shorter.expires_at is not None
    assert shorter.expires_at < renewed.expires_at

    # Nothing is due yet, then everything that is due is stopped, once.
    early = await backend.sweep(now=shorter.expires_at - timedelta(seconds=1))
    assert agent.id not in early.stopped
    later = shorter.expires_at + timedelta(seconds=1)
    report = await backend.sweep(now=later)
    assert report.stopped == [agent.id]
    assert (await backend.sweep(now=later)).stopped == []
    assert (await backend.get(agent.id, owner="alice")).status is AgentStatus.STOPPED
    assert (await backend.get(plain.id, owner="alice")).status is AgentStatus.RUNNING


async def test_an_expired_agent_starts_only_after_renewal(
    backend: Orchestrator, image: str
) -> None:
    agent = await spawn(backend, sleeper("aptest-expired", image, ttl_seconds=1))
    await asyncio.sleep(1.2)
    await backend.sweep()
    assert (await backend.get(agent.id, owner="alice")).status is AgentStatus.STOPPED
    with pytest.raises(AgentExpired):
        await backend.start(agent.id, owner="alice")
    with pytest.raises(AgentExpired):
        await backend.restart(agent.id, owner="alice")
    await backend.renew(agent.id, owner="alice", ttl_seconds=600)
    assert (await backend.start(agent.id, owner="alice")).status is AgentStatus.RUNNING


async def test_concurrent_sweeps_do_not_fight(
    backend: Orchestrator, image: str, backend_factory: Callable[[], Orchestrator]
) -> None:
    agents = [
        await spawn(backend, sleeper(f"aptest-race-{i}", image, ttl_seconds=1)) for i in range(3)
    ]
    other = backend_factory()
    try:
        later = datetime.now(UTC) + timedelta(seconds=5)
        first, second = await asyncio.gather(backend.sweep(now=later), other.sweep(now=later))
    finally:
        await other.close()
    # Both replicas may report the same agent: stopping twice is harmless, and nothing
    # else is touched.
    assert set(first.stopped) | set(second.stopped) == {a.id for a in agents}
    for agent in agents:
        assert (await backend.get(agent.id, owner="alice")).status is AgentStatus.STOPPED

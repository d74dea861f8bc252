"""``AsyncAgentClient``: every call of the contract, awaited, against the running service."""

from __future__ import annotations

from contextlib import aclosing

import anyio
import pytest

from clients import (
    AgentStatus,
    AsyncAgentClient,
    ConflictError,
    NotFoundError,
    PolicyViolationError,
    UnauthorizedError,
)

from ..conftest import Api
from .conftest import SCRIPT

pytestmark = pytest.mark.anyio


async def _lines(client: AsyncAgentClient, agent: str, **options: object) -> list[str]:
    async with aclosing(client.logs(agent, **options)) as stream:  # type: ignore[arg-type]
        return [line async for line in stream]


async def test_every_call(api: Api, busybox: str) -> None:
    async with AsyncAgentClient(api.url, api.keys.alice) as client:
        assert (await client.health()).status == "ok"
        assert (await client.ready()).status == "ready"

        agent = await client.spawn(
            "aptest-acl-one",
            busybox,
            command=["sh", "-c", "echo one; echo two; exec sleep 3600"],
            env={"LOG_LEVEL": "info"},
            secrets={"TOKEN": "tok-never-shown"},
            labels={"team": "research"},
            restart_policy="no",
        )
        assert agent.status is AgentStatus.RUNNING
        assert agent.secret_names == ["TOKEN"]
        second = await client.spawn("aptest-acl-two", busybox, command=["sh", "-c", SCRIPT])

        assert await client.get(agent.id) == await client.get("aptest-acl-one")
        page = await client.list_agents(limit=1)
        assert [a.id for a in page.items] == [agent.id]
        assert page.next_cursor
        assert [a.id async for a in client.iter_agents(page_size=1)] == [agent.id, second.id]
        labelled = [a.name async for a in client.iter_agents(labels={"team": "research"})]
        assert labelled == ["aptest-acl-one"]

        assert (await client.stop(agent.id, timeout=0)).status is AgentStatus.STOPPED
        stopped = (await client.list_agents(status=AgentStatus.STOPPED)).items
        assert [a.name for a in stopped] == ["aptest-acl-one"]
        assert (await client.start(agent.id)).status is AgentStatus.RUNNING
        assert (await client.restart(agent.id, timeout=0)).status is AgentStatus.RUNNING
        temporary = await client.spawn(
            "aptest-acl-ttl", busybox, command=["sh", "-c", SCRIPT], ttl_seconds=300
        )
        renewed = await client.renew(temporary.id, ttl_seconds=900)
        assert temporary.expires_at is not None
        assert renewed.expires_at is not None
        assert renewed.expires_at > temporary.expires_at
        await client.delete(temporary.id)

        for _ in range(100):
            if "two" in await _lines(client, agent.id):
                break
            await anyio.sleep(0.1)
        assert (await _lines(client, agent.id, tail=2)) == ["one", "two"]
        stamped = await _lines(client, agent.id, timestamps=True, tail=1)
        assert stamped[0].endswith(" two")

        async with aclosing(client.logs(second.id, follow=True)) as follow:
            async for line in follow:
                assert line == "agent-says-hi"
                break

        await client.delete("aptest-acl-one")
        with pytest.raises(NotFoundError) as gone:
            await client.get("aptest-acl-one")
        assert gone.value.code == "agent_not_found"
        with pytest.raises(NotFoundError):
            await client.delete("aptest-acl-one")
        await client.delete("aptest-acl-one", missing_ok=True)
        with pytest.raises(NotFoundError):
            await _lines(client, "aptest-acl-one")


async def test_follow_ends_when_the_agent_stops(api: Api, busybox: str) -> None:
    script = "i=0; while [ $i -lt 600 ]; do echo tick-$i; i=$((i+1)); sleep 0.2; done"
    async with AsyncAgentClient(api.url, api.keys.alice) as client:
        agent = await client.spawn("aptest-acl-follow", busybox, command=["sh", "-c", script])
        lines: list[str] = []

        async def stop_later() -> None:
            await anyio.sleep(2)
            await client.stop(agent.id, timeout=0)

        with anyio.fail_after(60):
            async with anyio.create_task_group() as group:
                group.start_soon(stop_later)
                async with aclosing(client.logs(agent.id, follow=True)) as stream:
                    async for line in stream:
                        lines.append(line)
        assert len(lines) >= 5
        assert lines[0] == "tick-0"


async def test_errors(api: Api, busybox: str) -> None:
    async with AsyncAgentClient(api.url, api.keys.alice) as client:
        await client.spawn("aptest-acl-twice", busybox, command=["sh", "-c", SCRIPT])
        with pytest.raises(ConflictError) as conflict:
            await client.spawn("aptest-acl-twice", busybox)
        assert (conflict.value.status, conflict.value.code) == (409, "agent_name_conflict")
        with pytest.raises(PolicyViolationError):
            await client.spawn("aptest-acl-big", busybox, resources={"cpus": 3})
    async with AsyncAgentClient(api.url, "not-" + api.keys.alice) as stranger:
        with pytest.raises(UnauthorizedError):
            await stranger.get("aptest-acl-twice")

"""Changing an agent, its revisions, a rollback and its usage, from every client."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clients import AgentClient, AsyncAgentClient, PreconditionFailedError, RemoteAgentManager
from clients.cli import app

from ..conftest import Api
from .conftest import SCRIPT

runner = CliRunner()


def test_the_sync_client(api: Api, busybox: str, alice: AgentClient) -> None:
    agent = alice.spawn("aptest-cl-up", busybox, command=["sh", "-c", SCRIPT], restart_policy="no")
    resized = alice.update(agent.name, resources={"memory_mb": 96}, if_match=agent.revision)
    assert (resized.restarted, resized.revision) == (False, 2)
    assert resized.agent.resources is not None
    assert resized.agent.resources.memory_mb == 96
    with pytest.raises(PreconditionFailedError) as refused:
        alice.update(agent.name, env={"A": "1"}, if_match=1)
    assert refused.value.code == "revision_mismatch"

    changed = alice.update(agent.name, env={"A": "1"}, secrets={"TOKEN": "client-secret-1"})
    assert changed.restarted is True
    assert changed.agent.secret_names == ["TOKEN"]
    assert [r.number for r in alice.revisions(agent.name).items] == [3, 2, 1]
    back = alice.rollback(agent.name, revision=2)
    assert back.agent.env == {}
    assert back.revision == 4
    stats = alice.stats(agent.name)
    assert stats.memory_limit_bytes == 96 * 1024 * 1024


@pytest.mark.anyio
async def test_the_async_client(api: Api, busybox: str) -> None:
    async with AsyncAgentClient(api.url, api.keys.alice) as alice:
        agent = await alice.spawn(
            "aptest-acl-up", busybox, command=["sh", "-c", SCRIPT], restart_policy="no"
        )
        resized = await alice.update(agent.id, resources={"pids": 40})
        assert resized.revision == 2
        assert (await alice.revisions(agent.id)).items[0].changes == ["resources.pids"]
        assert (await alice.rollback(agent.id)).agent.resources == agent.resources
        assert (await alice.stats(agent.id)).pids is not None


def test_agentctl_update_revisions_rollback_top(api: Api, busybox: str, alice: AgentClient) -> None:
    alice.spawn("aptest-ctl-up", busybox, command=["sh", "-c", SCRIPT], restart_policy="no")
    env = {"AGENT_API_URL": api.url, "AGENT_API_KEY": api.keys.alice}

    def ok(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env, prog_name="agentctl")
        assert result.exit_code == 0, result.output
        return result.stdout

    assert "revision 2, changed in place (resources.memory_mb)" in ok(
        "update", "aptest-ctl-up", "--memory", "96"
    )
    assert "restarted (env.LEVEL, labels.team)" in ok(
        "update", "aptest-ctl-up", "-e", "LEVEL=debug", "-l", "team=x", "--if-match", "2"
    )
    stale = runner.invoke(
        app, ["update", "aptest-ctl-up", "--cpus", "0.2", "--if-match", "2"], env=env
    )
    assert stale.exit_code == 1
    assert "revision_mismatch" in stale.output
    assert ok("revisions", "aptest-ctl-up").splitlines()[0].split() == [
        "REVISION",
        "CREATED",
        "RESTARTED",
        "CHANGES",
    ]
    assert "revision 4" in ok("rollback", "aptest-ctl-up", "--to", "2")
    table = ok("top").splitlines()
    assert table[0].split()[:3] == ["NAME", "ID", "CPU"]
    assert any(line.startswith("aptest-ctl-up") and "96.0MiB" in line for line in table)
    rows = json.loads(ok("top", "aptest-ctl-up", "-o", "json"))
    assert rows[0]["stats"]["memory_limit_bytes"] == 96 * 1024 * 1024


@pytest.mark.anyio
async def test_the_tool_updates_and_measures(api: Api, busybox: str, alice: AgentClient) -> None:
    alice.spawn("aptest-tool-up", busybox, command=["sh", "-c", SCRIPT], restart_policy="no")
    tool = RemoteAgentManager(api.url, api.keys.alice)
    changed = await tool.run(action="update", name="aptest-tool-up", memory_mb=128)
    assert not changed.is_error, changed.text
    assert "resources.memory_mb" in changed.text
    assert "went on running" in changed.text
    rotated = await tool.run(action="update", name="aptest-tool-up", secrets={"K": "tool-secret-v"})
    assert "restarted" in rotated.text
    assert "tool-secret-v" not in rotated.text
    used = await tool.run(action="stats", name="aptest-tool-up")
    assert not used.is_error, used.text
    assert "of 128.0MiB" in used.text

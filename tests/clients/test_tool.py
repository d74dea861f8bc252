"""RemoteAgentManager: nanobot's tool interface, every action, and every error as a sentence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from clients import AsyncAgentClient, RemoteAgentManager, RetryPolicy
from clients.nanobot_tool import ACTIONS, Answer
from testenv.server import ServerProcess, free_port

from ..conftest import Api, Keys, server_env
from .conftest import SCRIPT

pytestmark = pytest.mark.anyio

ONCE = RetryPolicy(attempts=1)


def _tool(api: Api, key: str | None = None) -> RemoteAgentManager:
    return RemoteAgentManager(api.url, key or api.keys.alice)


async def test_it_speaks_nanobots_tool_interface() -> None:
    tool = RemoteAgentManager("http://127.0.0.1:1", "k" * 20)
    assert tool.name == "manage_agents"
    assert "Error:" in tool.description
    schema = tool.to_schema()
    assert schema == {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": tool.parameters,
        },
    }
    parameters = tool.parameters
    assert parameters["type"] == "object"
    assert parameters["required"] == ["action"]
    assert parameters["additionalProperties"] is False
    assert parameters["properties"]["action"]["enum"] == list(ACTIONS)
    assert ACTIONS == (
        "spawn",
        "list",
        "status",
        "start",
        "stop",
        "restart",
        "delete",
        "logs",
        "update",
        "stats",
        "wait",
        "changes",
    )
    for spec in parameters["properties"].values():
        assert spec["description"]
    json.dumps(schema)  # plain JSON, as it is sent to the model
    parameters["properties"].clear()
    assert tool.parameters["properties"]  # a copy each time
    assert "k" * 20 not in repr(tool)


async def test_every_action(api: Api, busybox: str) -> None:
    tool = _tool(api)
    outputs: list[str] = []

    async def run(**kwargs: Any) -> str:
        outputs.append(await tool.execute(**kwargs))
        assert not outputs[-1].startswith("Error"), outputs[-1]
        return outputs[-1]

    assert await run(action="list") == "You have no agents. Use action 'spawn' to create one."
    spawned = await run(
        action="spawn",
        name="aptest-tool-one",
        image=busybox,
        command=["sh", "-c", "echo tool-says-hi; exec sleep 3600"],
        env={"LOG_LEVEL": "info"},
        secrets={"OPENAI_API_KEY": "sk-tool-never-shown"},
        labels={"team": "research"},
        cpus=0.5,
        memory_mb=128,
        workspace=True,
        restart_policy="no",
    )
    assert spawned == f"Agent 'aptest-tool-one' was spawned from {busybox}; it is now running."
    await run(action="spawn", name="aptest-tool-two", image=busybox, command=["sleep", "3600"])

    listed = await run(action="list")
    assert listed.startswith("2 agents:\n- aptest-tool-one: running, image ")
    assert "labels team=research" in listed
    assert "- aptest-tool-two: running" in listed
    filtered = await run(action="list", labels={"team": "research"}, status="running")
    assert filtered.startswith("1 agent:\n- aptest-tool-one")
    assert (await run(action="list", status="failed")).startswith("No agents match")

    status = await run(action="status", name="aptest-tool-one")
    assert status.startswith("Agent 'aptest-tool-one' (id ")
    assert "is running." in status
    assert "Limits: 0.5 CPUs, 128 MB memory" in status
    assert "Environment variables: LOG_LEVEL." in status
    assert "Secrets (values hidden): OPENAI_API_KEY." in status
    assert "workspace volume: yes" in status

    stopped = await run(action="stop", name="aptest-tool-one", timeout=0)
    assert stopped.startswith("Agent 'aptest-tool-one' was stopped; it is now stopped")
    started = await run(action="start", name="aptest-tool-one")
    assert started == "Agent 'aptest-tool-one' was started; it is now running."
    restarted = await run(action="restart", name="aptest-tool-one", timeout="0")
    assert restarted == "Agent 'aptest-tool-one' was restarted; it is now running."

    logs = await run(action="logs", name="aptest-tool-one", tail=1)
    assert logs == "Last 1 line of output from 'aptest-tool-one':\ntool-says-hi"
    quiet = await run(action="logs", name="aptest-tool-two")
    assert quiet == "Agent 'aptest-tool-two' has printed nothing (in that range)."

    deleted = await run(action="delete", name="aptest-tool-two")
    assert deleted.startswith("Agent 'aptest-tool-two' was deleted")
    assert (await run(action="list")).startswith("1 agent:")
    assert not any("sk-tool-never-shown" in out or api.keys.alice in out for out in outputs)


async def test_a_failing_agent_is_reported_with_what_to_do(api: Api, busybox: str) -> None:
    tool = _tool(api)
    await tool.execute(
        action="spawn",
        name="aptest-tool-fails",
        image=busybox,
        command=["sh", "-c", "echo broken-config; exit 3"],
        restart_policy="no",
    )
    for _ in range(50):
        status = await tool.execute(action="status", name="aptest-tool-fails")
        if "failed" in status:
            break
    assert "is failed (exited with code 3)" in status
    assert "Use action 'logs' with name 'aptest-tool-fails' to see why." in status
    logs = await tool.execute(action="logs", name="aptest-tool-fails")
    assert "broken-config" in logs


async def test_an_expired_agent_is_explained_and_started_with_more_time(
    api: Api, busybox: str
) -> None:
    tool = _tool(api)
    await tool.execute(
        action="spawn",
        name="aptest-tool-ttl",
        image=busybox,
        command=["sleep", "600"],
        ttl_seconds=1,
    )
    await anyio.sleep(1.5)
    expired = await tool.execute(action="start", name="aptest-tool-ttl")
    assert expired.startswith("Error: agent 'aptest-tool-ttl' reached its time limit")
    assert "ttl_seconds" in expired
    started = await tool.execute(action="start", name="aptest-tool-ttl", ttl_seconds=600)
    assert started == "Agent 'aptest-tool-ttl' was started; it is now running."
    assert "It is stopped automatically at " in await tool.execute(
        action="status", name="aptest-tool-ttl"
    )


async def test_errors_come_back_as_sentences_with_a_next_step(
    api: Api, busybox: str, keys: tuple[Keys, Path], tmp_path: Path
) -> None:
    tool = _tool(api)
    said: dict[str, str] = {}

    async def error(case: str, tool: RemoteAgentManager = tool, **kwargs: Any) -> str:
        said[case] = await tool.execute(**kwargs)
        assert said[case].startswith("Error: "), said[case]
        return said[case]

    assert "no agent named 'aptest-tool-ghost'" in await error(
        "missing", action="status", name="aptest-tool-ghost"
    )
    assert "Call action 'list'" in said["missing"]
    assert "Call action 'list'" in await error("gone", action="delete", name="aptest-tool-ghost")

    await tool.execute(
        action="spawn", name="aptest-tool-twice", image=busybox, command=["sleep", "600"]
    )
    conflict = await error("conflict", action="spawn", name="aptest-tool-twice", image=busybox)
    assert "already have an agent named 'aptest-tool-twice'" in conflict
    assert "'status'" in conflict

    policy = await error("policy", action="spawn", name="aptest-tool-big", image=busybox, cpus=3)
    assert "policy does not allow this: resources.cpus=3.0 exceeds the ceiling" in policy
    assert "Do not retry unchanged" in policy

    image = await error("image", action="spawn", name="aptest-tool-img", image="aptest/no:such")
    assert "aptest/no:such" in image
    assert "Check the image name" in image

    invalid = await error("invalid", action="spawn", name="Bad_Name", image=busybox)
    assert "refused as invalid: body.name" in invalid
    shape = await error("shape", action="spawn", name="aptest-tool-x", image=busybox, env="A=1")
    assert "refused as invalid: spawn request: env" in shape
    bad_tail = await error("tail", action="logs", name="aptest-tool-twice", tail="lots")
    assert "tail must be a whole number" in bad_tail
    as_text = await error("text", action="spawn", name="aptest-tool-t", image=busybox, command="ls")
    assert "command must be a list of strings" in as_text
    extra = await error(
        "extra", action="spawn", name="aptest-tool-priv", image=busybox, privileged=True
    )
    assert extra.startswith("Error: this tool has no parameter 'privileged'; nothing was done.")

    viewer = _tool(api, api.keys.alice_viewer)
    forbidden = await error("forbidden", viewer, action="stop", name="aptest-tool-twice")
    assert "may not do this" in forbidden
    assert "operator role" in forbidden

    stranger = _tool(api, "not-" + api.keys.alice)
    unauthorized = await error("unauthorized", stranger, action="list")
    assert "did not accept the API key" in unauthorized
    assert "AGENT_API_KEY" in unauthorized

    away = RemoteAgentManager(f"http://127.0.0.1:{free_port()}", "k" * 20, retry=ONCE)
    unreachable = await error("unreachable", away, action="list")
    assert "could not reach the agent platform at http://127.0.0.1:" in unreachable
    assert "Wait a minute and try again" in unreachable

    assert "needs name and image" in await error("needs", action="spawn", name="")
    assert "needs name" in await error("needs-name", action="logs")
    assert "unknown action 'pause'" in await error("unknown", action="pause", name="x")
    assert "unknown action None" in await error("no-action")

    env = {**server_env(*keys), "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    down = ServerProcess(env, tmp_path / "down.log")
    down.start(wait_ready=False)
    try:
        engine_down = RemoteAgentManager(down.url, keys[0].alice, retry=ONCE)
        unavailable = await error("unavailable", engine_down, action="list")
        assert "container engine is unavailable right now" in unavailable
        assert "Wait a minute and try again" in unavailable
    finally:
        down.stop()

    names = [agent["name"] for agent in api.alice.get("/v1/agents").json()["items"]]
    assert names == ["aptest-tool-twice"]  # nothing refused was made
    secrets = (api.keys.alice, api.keys.alice_viewer, "not-" + api.keys.alice, "k" * 20)
    assert not any(secret in sentence for secret in secrets for sentence in said.values())


async def test_run_says_whether_the_call_failed(api: Api) -> None:
    tool = _tool(api)
    listed = await tool.run(action="list")
    assert listed == Answer("You have no agents. Use action 'spawn' to create one.")
    missing = await tool.run(action="status", name="aptest-tool-ghost")
    assert missing.is_error
    assert missing.text == await tool.execute(action="status", name="aptest-tool-ghost")


async def test_a_given_client_is_used_and_left_open(api: Api, busybox: str) -> None:
    async with AsyncAgentClient(api.url, api.keys.alice) as client:
        tool = RemoteAgentManager(client=client)
        answer = await tool.execute(
            action="spawn", name="aptest-tool-shared", image=busybox, command=["sh", "-c", SCRIPT]
        )
        assert "was spawned" in answer
        assert (await client.get("aptest-tool-shared")).name == "aptest-tool-shared"
        assert "1 agent:" in await tool.execute(action="list")

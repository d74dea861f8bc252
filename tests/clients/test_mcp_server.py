"""``agentctl mcp``: an MCP client session through the official SDK, over stdio and over
streamable HTTP, manages agents on the running service with the caller's key."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, get_args

import anyio
import httpx
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from clients import AgentClient
from clients.mcp_server import TOOL_NAMES, StatusName
from clients.models import AgentStatus
from testenv.server import free_port

from ..conftest import Api
from .conftest import SCRIPT

pytestmark = pytest.mark.anyio

AGENTCTL = Path(sys.executable).parent / "agentctl"


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_API_")}
    return {**env, **values}


@asynccontextmanager
async def stdio_session(
    api: Api, key: str, agentctl: Path = AGENTCTL
) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(
        command=str(agentctl),
        args=["mcp"],
        env=_env(AGENT_API_URL=api.url, AGENT_API_KEY=key),
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


def _text(result: CallToolResult) -> str:
    (content,) = result.content
    assert isinstance(content, TextContent)
    return content.text


async def _ok(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    assert not result.isError, result
    return _text(result)


async def _error(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.isError, result
    return _text(result)


async def spawn_list_logs_delete(session: ClientSession, busybox: str, name: str) -> None:
    """What any MCP client does with the tools: the round trip the issue asks for."""
    spawned = await _ok(
        session, "spawn_agent", name=name, image=busybox, command=["sh", "-c", SCRIPT]
    )
    assert spawned == f"Agent '{name}' was spawned from {busybox}; it is now running."
    listed = await _ok(session, "list_agents")
    assert listed.startswith(f"1 agent:\n- {name}: running")
    assert await _ok(session, "agent_logs", name=name, tail=5) == (
        f"Last 1 line of output from '{name}':\nagent-says-hi"
    )
    assert (await _ok(session, "delete_agent", name=name)).startswith(f"Agent '{name}' was deleted")
    assert "You have no agents" in await _ok(session, "list_agents")


def test_the_status_filter_offers_every_status() -> None:
    assert set(get_args(StatusName)) == {status.value for status in AgentStatus}


async def test_over_stdio(api: Api, busybox: str) -> None:
    async with stdio_session(api, api.keys.alice) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert sorted(tools) == sorted(TOOL_NAMES)
        assert tools["spawn_agent"].inputSchema["additionalProperties"] is False
        assert tools["spawn_agent"].inputSchema["required"] == ["name", "image"]
        assert tools["delete_agent"].annotations is not None
        assert tools["delete_agent"].annotations.destructiveHint is True
        await spawn_list_logs_delete(session, busybox, "aptest-mcp-stdio")

        await _ok(session, "spawn_agent", name="aptest-mcp-two", image=busybox, command=["sh"])
        stopped = await _ok(session, "stop_agent", name="aptest-mcp-two", timeout=0)
        assert stopped.startswith("Agent 'aptest-mcp-two' was stopped")
        started = await _ok(session, "start_agent", name="aptest-mcp-two")
        assert started.startswith("Agent 'aptest-mcp-two' was started")
        status = await _ok(session, "agent_status", name="aptest-mcp-two")
        assert status.startswith("Agent 'aptest-mcp-two' (id ")


async def test_failures_are_mcp_tool_errors(api: Api, busybox: str) -> None:
    async with stdio_session(api, api.keys.alice) as session:
        missing = await _error(session, "agent_status", name="aptest-mcp-ghost")
        assert missing.startswith("Error: there is no agent named 'aptest-mcp-ghost' among yours")
        policy = await _error(session, "spawn_agent", name="aptest-mcp-big", image=busybox, cpus=3)
        assert "policy does not allow this" in policy
        unknown = await _error(
            session, "spawn_agent", name="aptest-mcp-priv", image=busybox, privileged=True
        )
        assert "privileged" in unknown
        assert "Extra inputs are not permitted" in unknown
        assert api.alice.get("/v1/agents").json()["items"] == []
    async with stdio_session(api, api.keys.alice_viewer) as viewer:
        forbidden = await _error(viewer, "spawn_agent", name="aptest-mcp-v", image=busybox)
        assert "may not do this" in forbidden
        assert api.keys.alice_viewer not in forbidden


@pytest.fixture
def http_server(api: Api, tmp_path: Path) -> Iterator[str]:
    """``agentctl mcp --transport http`` with no key of its own: callers bring theirs."""
    port = free_port()
    with (tmp_path / "mcp.log").open("wb") as log:
        process = subprocess.Popen(
            [str(AGENTCTL), "mcp", "--transport", "http", "--port", str(port)],
            env=_env(AGENT_API_URL=api.url),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "mcp.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the MCP server did not listen"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=30)


@asynccontextmanager
async def http_session(url: str, key: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(60, read=300)) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def test_over_streamable_http_with_each_callers_key(
    api: Api, busybox: str, http_server: str
) -> None:
    async with http_session(http_server, api.keys.alice) as alice:
        await spawn_list_logs_delete(alice, busybox, "aptest-mcp-http")
        await _ok(alice, "spawn_agent", name="aptest-mcp-alices", image=busybox, command=["sh"])
    with AgentClient(api.url, api.keys.bob) as bob:
        async with http_session(http_server, api.keys.bob) as session:
            assert "You have no agents" in await _ok(session, "list_agents")
            refused = await _error(session, "delete_agent", name="aptest-mcp-alices")
            assert "no agent named 'aptest-mcp-alices' among yours" in refused
        assert bob.list_agents().items == []
    assert api.alice.get("/v1/agents/aptest-mcp-alices").status_code == 200
    async with http_session(http_server, None) as anonymous:
        refused = await _error(anonymous, "list_agents")
        assert "did not accept the API key" in refused


async def _changes_until(session: ClientSession, wanted: str) -> list[str]:
    """The change lines of ``agent_changes``, asked again and again until one says ``wanted``."""
    lines: list[str] = []
    with anyio.fail_after(60):
        while not any(wanted in line for line in lines):
            text = await _ok(session, "agent_changes")
            lines += [line for line in text.splitlines() if line.startswith("- ")]
            await anyio.sleep(0.2)
    return lines


async def test_changes_are_remembered_per_callers_key(
    api: Api, busybox: str, http_server: str
) -> None:
    async with (
        http_session(http_server, api.keys.alice) as alice,
        http_session(http_server, api.keys.bob) as bob,
    ):
        await _ok(bob, "agent_changes")
        await _ok(alice, "agent_changes")
        await _ok(
            alice, "spawn_agent", name="aptest-mcp-ch", image=busybox, command=["sh", "-c", SCRIPT]
        )
        seen = await _changes_until(alice, "agent 'aptest-mcp-ch' started")
        assert "agent 'aptest-mcp-ch' created;" in next(line for line in seen if "-ch'" in line)
        await _ok(alice, "stop_agent", name="aptest-mcp-ch", timeout=0)
        after = await _changes_until(alice, "agent 'aptest-mcp-ch' stopped by call")
        assert len(after) == 1
        assert "aptest-mcp-ch" not in await _ok(bob, "agent_changes")

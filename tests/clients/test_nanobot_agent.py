"""A stock nanobot agent (its SDK facade, ``Nanobot.from_config``) with the client installed
offers ``manage_agents`` to its model and runs the model's calls against the service, with
no code of the user's; with the README's mcpServers entry instead, the same through
``agentctl mcp``. The model is the one stand-in: a scripted OpenAI-compatible
endpoint on 127.0.0.1 that asks for the tool calls of the test, then repeats what the
tool answered."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from nanobot.nanobot import Nanobot

from ..conftest import Api
from .conftest import SCRIPT

pytestmark = pytest.mark.anyio


class ScriptedModel:
    """Answers each chat completion with the next tool call, then with the tools' answers."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []  # arguments, "tool" names another tool
        self.requests: list[dict[str, Any]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def _reply(self, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        self.requests.append(body)
        if self.calls:
            call = dict(self.calls.pop(0))
            tool = call.pop("tool", "manage_agents")
            tool_call = {
                "index": 0,
                "id": f"call_{len(self.requests)}",
                "type": "function",
                "function": {"name": tool, "arguments": json.dumps(call)},
            }
            return {"role": "assistant", "content": None, "tool_calls": [tool_call]}, "tool_calls"
        said = [str(m["content"]) for m in body["messages"] if m["role"] == "tool"]
        return {"role": "assistant", "content": "\n---\n".join(said)}, "stop"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        model = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                message, finish = model._reply(body)
                chunks = [
                    {"index": 0, "delta": message, "finish_reason": None},
                    {"index": 0, "delta": {}, "finish_reason": finish},
                ]
                data = b"".join(
                    b"data: "
                    + json.dumps(
                        {"id": "c", "object": "chat.completion.chunk", "choices": [chunk]}
                    ).encode()
                    + b"\n\n"
                    for chunk in chunks
                )
                data += b"data: [DONE]\n\n"
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def __enter__(self) -> ScriptedModel:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as scripted:
        yield scripted


@pytest.fixture
def config_file(
    api: Api, model: ScriptedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """nanobot's config: the scripted model, a workspace; the tool from the environment."""
    monkeypatch.setenv("AGENT_API_URL", api.url)
    monkeypatch.setenv("AGENT_API_KEY", api.keys.alice)
    monkeypatch.setattr("nanobot.config.loader._current_config_path", tmp_path / "config.json")
    config = {
        "agents": {
            "defaults": {
                "workspace": str(tmp_path / "workspace"),
                "model": "scripted",
                "provider": "custom",
            }
        },
        "providers": {"custom": {"apiKey": "not-a-real-key", "apiBase": model.url}},
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


async def _ask(config_file: Path, message: str) -> str:
    bot = Nanobot.from_config(config_file)
    try:
        result = await bot.run(message, ephemeral=True)
    finally:
        await bot.aclose()
    return str(result.content)


async def test_a_stock_nanobot_offers_and_runs_the_tool(
    config_file: Path, model: ScriptedModel, api: Api, busybox: str
) -> None:
    model.calls = [
        {
            "action": "spawn",
            "name": "aptest-sol-worker",
            "image": busybox,
            "command": ["sh", "-c", SCRIPT],
        },
        {"action": "list"},
    ]
    said = await _ask(config_file, "start a worker and tell me what runs")
    offered = {tool["function"]["name"]: tool for tool in model.requests[0]["tools"]}
    schema = offered["manage_agents"]["function"]["parameters"]
    assert schema["additionalProperties"] is False
    spawned, listed = said.split("\n---\n")
    assert spawned == (f"Agent 'aptest-sol-worker' was spawned from {busybox}; it is now running.")
    assert listed.startswith("1 agent:\n- aptest-sol-worker: running")
    agent = api.alice.get("/v1/agents/aptest-sol-worker").json()
    assert (agent["owner"], agent["status"]) == ("alice", "running")


async def test_the_model_is_told_when_its_call_failed_or_was_refused(
    config_file: Path, model: ScriptedModel, api: Api, busybox: str
) -> None:
    model.calls = [
        {"action": "status", "name": "aptest-sol-ghost"},
        {"action": "spawn", "name": "aptest-sol-priv", "image": busybox, "privileged": True},
    ]
    said = await _ask(config_file, "check the ghost, then spawn a privileged agent")
    missing, refused = said.split("\n---\n")
    assert missing.startswith("Error: there is no agent named 'aptest-sol-ghost' among yours.")
    assert "[Analyze the error above and try a different approach.]" in missing
    assert "unexpected parameter privileged" in refused
    assert api.alice.get("/v1/agents").json()["items"] == []


def _serve_agents_over_mcp(config_file: Path, url: str) -> None:
    """Add the README's mcpServers entry, with the key read from the environment."""
    config = json.loads(config_file.read_text())
    config["tools"] = {
        "mcpServers": {
            "agents": {
                "command": str(Path(sys.executable).parent / "agentctl"),
                "args": ["mcp"],
                "env": {"AGENT_API_URL": url, "AGENT_API_KEY": "${SOL_AGENT_API_KEY}"},
            }
        }
    }
    config_file.write_text(json.dumps(config))


async def test_nanobots_mcp_support_runs_agentctl_mcp(
    config_file: Path, model: ScriptedModel, api: Api, busybox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's mcpServers entry: nanobot starts ``agentctl mcp`` and offers its tools."""
    monkeypatch.delenv("AGENT_API_URL")
    monkeypatch.delenv("AGENT_API_KEY")  # so the plugin stays out: only MCP tools
    monkeypatch.setenv("SOL_AGENT_API_KEY", api.keys.alice)
    _serve_agents_over_mcp(config_file, api.url)
    model.calls = [
        {
            "tool": "mcp_agents_spawn_agent",
            "name": "aptest-sol-mcp",
            "image": busybox,
            "command": ["sh", "-c", SCRIPT],
        },
        {"tool": "mcp_agents_list_agents"},
        {"tool": "mcp_agents_delete_agent", "name": "aptest-sol-mcp"},
    ]
    said = await _ask(config_file, "spawn, list and delete over MCP")
    offered = {tool["function"]["name"] for tool in model.requests[0]["tools"]}
    assert {"mcp_agents_spawn_agent", "mcp_agents_agent_logs"} <= offered
    assert "manage_agents" not in offered
    spawned, listed, deleted = said.split("\n---\n")
    assert spawned == f"Agent 'aptest-sol-mcp' was spawned from {busybox}; it is now running."
    assert listed.startswith("1 agent:\n- aptest-sol-mcp: ")
    assert deleted.startswith("Agent 'aptest-sol-mcp' was deleted")
    assert api.alice.get("/v1/agents").json()["items"] == []

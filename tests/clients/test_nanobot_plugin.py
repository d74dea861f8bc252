"""The manage_agents tool in a stock nanobot: found through its entry point by nanobot's
own ToolLoader, called through nanobot's ToolRegistry, against the running service."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import anyio
import pytest
from loguru import logger
from nanobot.agent.skills import SkillsLoader
from nanobot.agent.tools import ToolContext, ToolLoader, ToolRegistry, ToolResult
from nanobot.config.loader import load_config
from nanobot.config.schema import Config

from clients import AgentClient
from clients.nanobot_plugin import ManageAgentsTool, settings_from

from ..conftest import Api
from .conftest import SCRIPT

pytestmark = pytest.mark.anyio

TOOL = "manage_agents"


@pytest.fixture
def nanobot_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A nanobot config path of the test's own, and no agent-api settings in the environment."""
    monkeypatch.setattr("nanobot.config.loader._current_config_path", tmp_path / "config.json")
    monkeypatch.delenv("AGENT_API_URL", raising=False)
    monkeypatch.delenv("AGENT_API_KEY", raising=False)
    return tmp_path


@pytest.fixture
def log() -> Iterator[list[str]]:
    """What nanobot's logger (loguru) printed during the test."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="INFO", format="{message}")
    yield lines
    logger.remove(sink)


def _load(workspace: Path) -> tuple[ToolRegistry, list[str]]:
    """What a stock nanobot agent loop does to register its tools (AgentLoop)."""
    config = load_config()
    ctx = ToolContext(config=config.tools, workspace=str(workspace))
    registry = ToolRegistry()
    return registry, ToolLoader().load(ctx, registry)


@pytest.fixture
def registry(api: Api, nanobot_home: Path, monkeypatch: pytest.MonkeyPatch) -> ToolRegistry:
    """nanobot's registry, the tool configured for alice from the environment."""
    monkeypatch.setenv("AGENT_API_URL", api.url)
    monkeypatch.setenv("AGENT_API_KEY", api.keys.alice)
    loaded, registered = _load(nanobot_home)
    assert TOOL in registered
    return loaded


async def _call(registry: ToolRegistry, **params: Any) -> ToolResult:
    result = await registry.execute(TOOL, params)
    assert isinstance(result, ToolResult)
    return result


async def _ok(registry: ToolRegistry, **params: Any) -> str:
    result = await _call(registry, **params)
    assert not result.is_error, result
    return str(result)


async def _failed(registry: ToolRegistry, **params: Any) -> str:
    result = await _call(registry, **params)
    assert result.is_error, result
    return str(result)


def test_the_package_declares_the_tool_in_nanobots_entry_point_group() -> None:
    (point,) = [ep for ep in entry_points(group="nanobot.tools") if ep.name == TOOL]
    assert point.load() is ManageAgentsTool


def test_unconfigured_the_tool_stays_out_and_says_why(nanobot_home: Path, log: list[str]) -> None:
    registry, registered = _load(nanobot_home)
    assert TOOL not in registered
    assert not registry.has(TOOL)
    assert any(
        "manage_agents tool disabled: no agent-api key. Set AGENT_API_KEY" in line for line in log
    ), log


async def test_configured_in_nanobots_config_file(
    api: Api, nanobot_home: Path, monkeypatch: pytest.MonkeyPatch, log: list[str]
) -> None:
    monkeypatch.setenv("SOL_AGENT_KEY", api.keys.alice)
    section: dict[str, Any] = {"url": api.url, "key": "${SOL_AGENT_KEY}"}
    config = {"tools": {"agentApi": section}}
    (nanobot_home / "config.json").write_text(json.dumps(config))
    assert isinstance(load_config(), Config)  # nanobot itself accepts the file
    registry, registered = _load(nanobot_home)
    assert TOOL in registered
    assert await _ok(registry, action="list") == (
        "You have no agents. Use action 'spawn' to create one."
    )
    assert any(f"manage_agents tool enabled for agent-api at {api.url}" in line for line in log)
    assert not any(api.keys.alice in line for line in log)

    section["enable"] = False
    (nanobot_home / "config.json").write_text(json.dumps(config))
    assert TOOL not in _load(nanobot_home)[1]


def test_nanobots_config_wins_and_a_bad_section_disables_the_tool(
    nanobot_home: Path, monkeypatch: pytest.MonkeyPatch, log: list[str]
) -> None:
    monkeypatch.setenv("AGENT_API_URL", "http://from-the-environment:8000")
    monkeypatch.setenv("AGENT_API_KEY", "k" * 20)
    config = nanobot_home / "config.json"
    config.write_text(json.dumps({"tools": {"agentApi": {"url": "http://from-config:8000/"}}}))
    ctx = ToolContext(config=load_config().tools, workspace=str(nanobot_home))
    settings = settings_from(ctx)
    assert (settings.url, settings.key) == ("http://from-config:8000", "k" * 20)

    config.write_text(json.dumps({"tools": {"agentApi": {"timeout": -1, "keys": "x"}}}))
    assert TOOL not in _load(nanobot_home)[1]
    assert any(
        "tools.agentApi in nanobot's config is invalid (timeout, keys)" in line for line in log
    ), log


async def test_every_action_through_nanobots_registry(
    registry: ToolRegistry, api: Api, busybox: str
) -> None:
    (definition,) = [d for d in registry.get_definitions() if d["function"]["name"] == TOOL]
    assert definition["function"]["parameters"]["additionalProperties"] is False

    spawned = await _ok(
        registry,
        action="spawn",
        name="aptest-nb-one",
        image=busybox,
        command=["sh", "-c", SCRIPT],
        labels={"team": "sol"},
        secrets={"OPENAI_API_KEY": "sk-nb-never-shown"},
    )
    assert spawned == f"Agent 'aptest-nb-one' was spawned from {busybox}; it is now running."
    listed = await _ok(registry, action="list")
    assert listed.startswith("1 agent:\n- aptest-nb-one: running")
    status = await _ok(registry, action="status", name="aptest-nb-one")
    assert "Secrets (values hidden): OPENAI_API_KEY." in status
    # nanobot casts a model's "1" to the schema's integer before the tool runs.
    logs = await _ok(registry, action="logs", name="aptest-nb-one", tail="1")
    assert logs == "Last 1 line of output from 'aptest-nb-one':\nagent-says-hi"
    stopped = await _ok(registry, action="stop", name="aptest-nb-one", timeout=0)
    assert stopped.startswith("Agent 'aptest-nb-one' was stopped; it is now stopped")
    deleted = await _ok(registry, action="delete", name="aptest-nb-one")
    assert deleted.startswith("Agent 'aptest-nb-one' was deleted")
    assert await _ok(registry, action="list") == (
        "You have no agents. Use action 'spawn' to create one."
    )


async def test_a_failed_call_is_a_tool_error_for_the_loop(registry: ToolRegistry) -> None:
    missing = await _failed(registry, action="status", name="aptest-nb-ghost")
    assert missing.startswith("Error: there is no agent named 'aptest-nb-ghost' among yours.")
    assert "Call action 'list'" in missing
    gone = await _failed(registry, action="delete", name="aptest-nb-ghost")
    assert "no agent named 'aptest-nb-ghost'" in gone
    needs = await _failed(registry, action="logs")
    assert "needs name" in needs


async def test_registered_by_hand_a_failure_is_still_a_tool_error(api: Api) -> None:
    """Without the loader's compatibility wrapper (loop.tools.register in a launcher)."""
    registry = ToolRegistry()
    registry.register(ManageAgentsTool(api.url, api.keys.alice))
    missing = await _failed(registry, action="status", name="aptest-nb-ghost")
    assert "no agent named 'aptest-nb-ghost'" in missing
    assert "You have no agents" in await _ok(registry, action="list")


async def test_what_the_schema_does_not_define_is_refused_before_anything_runs(
    registry: ToolRegistry, api: Api, busybox: str
) -> None:
    spawn = {"action": "spawn", "name": "aptest-nb-priv", "image": busybox}
    refused = await _failed(registry, **spawn, privileged=True)
    assert "Invalid parameters for tool 'manage_agents'" in refused
    assert "unexpected parameter privileged" in refused
    as_text = await _failed(registry, **spawn, command="sleep 3600")
    assert "command should be array" in as_text
    unknown_action = await _failed(registry, action="pause", name="aptest-nb-priv")
    assert "action must be one of" in unknown_action
    assert api.alice.get("/v1/agents").json()["items"] == []


async def test_another_owners_agent_is_out_of_reach(
    registry: ToolRegistry, api: Api, busybox: str
) -> None:
    with AgentClient(api.url, api.keys.bob) as bob:
        bob.spawn("aptest-nb-bobs", busybox, command=["sh", "-c", SCRIPT])
        for action in ("status", "logs", "stop", "delete"):
            refused = await _failed(registry, action=action, name="aptest-nb-bobs")
            assert "no agent named 'aptest-nb-bobs' among yours" in refused
        assert "You have no agents" in await _ok(registry, action="list")
        assert bob.get("aptest-nb-bobs").status == "running"


def test_the_skill_installs_where_nanobot_loads_skills(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nanobot_home: Path
) -> None:
    workspace = tmp_path / "workspace"
    agentctl = Path(sys.executable).parent / "agentctl"
    result = subprocess.run(
        [str(agentctl), "skill", "install", "--workspace", str(workspace)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert result.stdout.strip() == str(workspace / "skills" / "remote-agents" / "SKILL.md")
    skills = SkillsLoader(workspace)
    (entry,) = [s for s in skills.list_skills() if s["name"] == "remote-agents"]
    assert entry["source"] == "workspace"
    summary = skills.build_skills_summary()  # what the model is shown of its skills
    (line,) = [line for line in summary.splitlines() if "**remote-agents**" in line]
    assert "with the manage_agents tool" in line
    assert "unavailable" not in line
    body = skills.load_skills_for_context(["remote-agents"])
    assert body.startswith("### Skill: remote-agents")
    assert '{"action": "spawn"' in body


async def test_changes_tell_what_happened_since_the_last_call(
    registry: ToolRegistry, api: Api, busybox: str
) -> None:
    await _ok(registry, action="changes")
    with AgentClient(api.url, api.keys.alice) as alice:
        alice.spawn("aptest-nb-ch", busybox, command=["sh", "-c", SCRIPT])
        told: list[str] = []
        with anyio.fail_after(60):
            while not any("'aptest-nb-ch' started" in text for text in told):
                told.append(await _ok(registry, action="changes"))
                await anyio.sleep(0.2)
        assert "'aptest-nb-ch' created" in "".join(told)
        assert await _ok(registry, action="changes") == "Nothing changed since you last looked."

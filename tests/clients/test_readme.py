"""clients/README.md and clients/SKILL.md: the examples run as written against the service."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from nanobot.agent.skills import parse_skill_metadata, valid_skill_metadata
from nanobot.agent.tools import ToolContext
from nanobot.config.loader import load_config, resolve_config_env_vars

from clients.nanobot_plugin import ManageAgentsTool, settings_from
from clients.nanobot_tool import ACTIONS

from ..conftest import Api

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "clients" / "README.md"
SKILL = ROOT / "clients" / "SKILL.md"


def _blocks(language: str) -> list[str]:
    """The code blocks of ``language``, those inside list items dedented."""
    fence = re.compile(rf"^( *)```{language}\n(.*?)^\1```", re.DOTALL | re.MULTILINE)
    return [textwrap.dedent(body) for _, body in fence.findall(README.read_text())]


def _block(language: str, marker: str) -> str:
    found = [block for block in _blocks(language) if marker in block]
    assert len(found) == 1, f"one {language} block with {marker!r}"
    return found[0]


def _as_test(code: str, busybox: str) -> str:
    """The example with test names: the image on this engine, names with the test prefix."""
    code = code.replace("hive/busybox:latest", busybox)
    for name in ("researcher", "watcher", "nobody"):
        code = re.sub(rf"\b{name}\b", f"aptest-{name}", code)
    return code


def _run(command: list[str], api: Api, **extra: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_API_")}
    env.update(AGENT_API_URL=api.url, AGENT_API_KEY=api.keys.admin, **extra)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=240, check=False, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert api.keys.admin not in result.stdout + result.stderr
    return result.stdout + result.stderr


def test_the_python_examples_print_what_they_say(api: Api, busybox: str) -> None:
    sync = _run(
        [sys.executable, "-c", _as_test(_block("python", "with AgentClient()"), busybox)], api
    )
    lines = sync.splitlines()
    assert lines[0] == "aptest-researcher running ['OPENAI_API_KEY']"
    assert re.fullmatch(r"aptest-researcher [0-9a-f]{12}", lines[1])
    assert lines[2:] == [
        "False",
        "stopped",
        "running",
        "['researching']",
        "404 agent_not_found",
    ]
    assert "sk-demo" not in api.server.logs()

    asynchronous = _as_test(_block("python", "AsyncAgentClient()"), busybox)
    assert _run([sys.executable, "-c", asynchronous], api) == "up\n"

    retries = _as_test(_block("python", "RetryPolicy("), busybox)
    assert _run([sys.executable, "-c", retries], api) == "ok\n"

    tool = _as_test(_block("python", "RemoteAgentManager()"), busybox)
    assert _run([sys.executable, "-c", tool], api) == (
        "You have no agents. Use action 'spawn' to create one.\n"
        "Error: there is no agent named 'aptest-nobody' among yours. Call action 'list' to "
        "see your agents' names, then try again with one of them.\n"
    )


def test_the_agentctl_examples_work_as_written(api: Api, busybox: str) -> None:
    script = _as_test(_block("bash", "agentctl spawn"), busybox)
    output = _run(["bash", "-c", "set -eu\n" + script], api)
    table = output.split("agentctl ls")[0] if "agentctl ls" in output else output
    assert re.search(r"^NAME +ID +IMAGE +STATUS +OWNER +CREATED$", table, re.MULTILINE)
    assert re.search(
        rf"^aptest-researcher +[0-9a-f]{{12}} +{re.escape(busybox)} +running", output, re.MULTILINE
    )
    assert '"secret_names": [\n      "OPENAI_API_KEY"\n    ]' in output
    assert "researching" in output
    assert "revision 2, changed in place (resources.memory_mb)" in output
    assert re.search(r"^aptest-researcher +[0-9a-f]{12} .* 256\.0MiB", output, re.MULTILINE)
    assert "Error: no agent 'aptest-researcher' (agent_not_found, HTTP 404)" in output
    assert "already gone: exit code 1" in output
    assert "sk-demo" not in output


def test_the_key_command_and_the_nanobot_configs_are_sound(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_key = _block("bash", "create-key").strip()
    output = _run(["bash", "-c", create_key], api)
    assert "owner: sol" in output.replace('"', "").replace("'", "")

    monkeypatch.setattr("nanobot.config.loader._current_config_path", tmp_path / "config.json")
    monkeypatch.setenv("SOL_AGENT_API_KEY", "k" * 20)
    monkeypatch.delenv("AGENT_API_URL", raising=False)
    (tmp_path / "config.json").write_text(_block("json", '"agentApi"'))
    config = load_config()
    settings = settings_from(ToolContext(config=config.tools, workspace=str(tmp_path)))
    assert (settings.url, settings.key) == ("http://agent-api:8000", "k" * 20)

    (tmp_path / "config.json").write_text(_block("json", '"mcpServers"'))
    server = resolve_config_env_vars(load_config()).tools.mcp_servers["agents"]
    assert (server.command, server.args) == ("agentctl", ["mcp"])
    assert server.env["AGENT_API_KEY"] == "k" * 20  # nanobot reads ${VAR} as it starts it


MIGRATION = re.compile(r"^\| `(docker [^`]+)` \| `([^`]+)` \| `(agentctl [^`]+)` \| `([^`]+)` \|$")


def _migration() -> list[tuple[str, ...]]:
    rows = [m.groups() for m in map(MIGRATION.match, README.read_text().splitlines()) if m]
    return [tuple(cell.replace("\\|", "|") for cell in row) for row in rows]


def test_the_migration_guide_covers_every_command_of_the_old_skill() -> None:
    rows = _migration()
    commands = [docker.split()[1] + (" -d" if " -d " in docker else "") for docker, *_ in rows]
    assert commands == ["run -d", "ps", "logs", "stop", "start", "rm", "inspect"]
    tool = ManageAgentsTool("http://127.0.0.1:1", "k" * 20)
    for _, call, _, http in rows:
        params = tool.cast_params(json.loads(call))
        assert tool.validate_params(params) == [], call  # what nanobot checks before running
        method, path = http.split(" ", 1)
        assert method in {"GET", "POST", "DELETE"}
        assert path.startswith("/v1/agents")


def test_the_migration_guides_agentctl_and_curl_work_as_written(api: Api, busybox: str) -> None:
    agentctl = [row[2] for row in _migration()]
    agentctl.insert(5, agentctl.pop())  # inspect before rm
    script = "\n".join(agentctl).replace("IMAGE", busybox).replace("CMD...", "sleep 600")
    output = _run(["bash", "-c", "set -eu\n" + _as_test(script, busybox)], api)
    assert re.search(r"^aptest-researcher +[0-9a-f]{12} ", output, re.MULTILINE)
    assert '"env": {\n    "K": "V"\n  }' in output

    curl = _as_test(_block("bash", "auth="), busybox)
    output = _run(["bash", "-c", "set -eu\n" + curl], api)
    assert '"name":"aptest-researcher"' in output
    assert "researching" in output
    assert output.endswith("404\n")
    assert api.admin.get("/v1/agents").json()["items"] == []


@pytest.mark.parametrize("action", ACTIONS)
def test_the_skill_tells_when_and_how(action: str) -> None:
    text = SKILL.read_text()
    metadata = parse_skill_metadata(text)
    assert metadata is not None
    assert valid_skill_metadata(metadata, "remote-agents")  # nanobot's own check
    assert "manage_agents" in str(metadata["description"])
    assert f'"action": "{action}"' in text
    assert "docker" in text

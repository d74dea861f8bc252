"""The client distribution (clients/pyproject.toml) installed alone in a clean venv: no
FastAPI, uvicorn, docker or kubernetes, and agentctl works against the running service;
with its mcp extra, an MCP session through that venv's agentctl manages agents too."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..conftest import Api
from .conftest import SCRIPT
from .test_mcp_server import spawn_list_logs_delete, stdio_session

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = ("fastapi", "uvicorn", "docker", "kubernetes", "agent_platform", "orchestrators")
PROBE = (
    "import importlib.util, sys; "
    "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)) or '-')"
)


def _run(command: list[str | Path], cwd: Path | None = None, **env: str) -> str:
    """Run ``command`` outside the repository (``python -c`` would import from the cwd)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_API_", "VIRTUAL_ENV"))}
    result = subprocess.run(
        [str(part) for part in command],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        cwd=cwd or Path(str(command[0])).parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _importable(venv: Path, *modules: str) -> list[str]:
    found = _run([venv / "bin" / "python", "-c", PROBE, *modules]).split()
    return [] if found == ["-"] else found


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the client distribution's folder, so that building it leaves the tree alone."""
    copy = tmp_path_factory.mktemp("client-dist") / "clients"
    shutil.copytree(
        ROOT / "clients", copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    )
    return copy


@pytest.fixture(scope="module")
def client_venv(source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("client-venv") / "venv"
    _run([sys.executable, "-m", "venv", venv])
    _run([venv / "bin" / "python", "-m", "pip", "install", "-q", source])
    return venv


def test_the_client_installs_without_the_server_and_talks_to_it(
    client_venv: Path, api: Api, busybox: str
) -> None:
    assert _importable(client_venv, *SERVER_ONLY) == []
    assert _importable(client_venv, "clients", "httpx", "typer") == ["clients", "httpx", "typer"]
    api.alice.post(
        "/v1/agents",
        json={"name": "aptest-lone", "image": busybox, "command": ["sh", "-c", SCRIPT]},
    ).raise_for_status()
    listed = _run(
        [client_venv / "bin" / "agentctl", "ls"],
        AGENT_API_URL=api.url,
        AGENT_API_KEY=api.keys.alice,
    )
    assert listed.splitlines()[0].split() == ["NAME", "ID", "IMAGE", "STATUS", "OWNER", "CREATED"]
    row = listed.splitlines()[1].split()
    assert (row[0], row[2], row[3], row[4]) == ("aptest-lone", busybox, "running", "alice")
    skill = client_venv.parent / "workspace"
    installed = _run([client_venv / "bin" / "agentctl", "skill", "install", "--workspace", skill])
    assert Path(installed.strip()).read_text() == (ROOT / "clients" / "SKILL.md").read_text()

    without_extra = subprocess.run(
        [client_venv / "bin" / "agentctl", "mcp"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=client_venv,
    )
    assert without_extra.returncode == 1
    assert "pip install 'agent-platform-client[mcp]'" in without_extra.stderr


@pytest.mark.anyio
async def test_with_the_mcp_extra_an_mcp_client_manages_agents(
    client_venv: Path, source: Path, api: Api, busybox: str
) -> None:
    _run([client_venv / "bin" / "python", "-m", "pip", "install", "-q", f"{source}[mcp]"])
    # The MCP SDK brings starlette and uvicorn for its HTTP transport; never the server's own.
    assert _importable(client_venv, *SERVER_ONLY) == ["uvicorn"]
    agentctl = client_venv / "bin" / "agentctl"
    async with stdio_session(api, api.keys.alice, agentctl) as session:
        await spawn_list_logs_delete(session, busybox, "aptest-lone-mcp")

"""``agentctl`` through Typer's CliRunner and as a process, against the running service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from clients import AgentClient
from clients.cli import app
from testenv.server import free_port

from ..conftest import Api
from .conftest import SCRIPT

runner = CliRunner()
AGENTCTL = Path(sys.executable).parent / "agentctl"


def _env(api: Api, key: str | None = None, **extra: str) -> dict[str, str]:
    return {"AGENT_API_URL": api.url, "AGENT_API_KEY": key or api.keys.alice, **extra}


def _ok(api: Api, *args: str, **extra: str) -> str:
    result = runner.invoke(app, list(args), env=_env(api, **extra), prog_name="agentctl")
    assert result.exit_code == 0, result.output
    return result.stdout


def _spawn(api: Api, name: str, image: str, *extra: str) -> None:
    _ok(api, "spawn", name, "--image", image, "--restart", "no", *extra, "--", "sh", "-c", SCRIPT)


def test_spawn_ls_get_read_like_docker(api: Api, busybox: str) -> None:
    spawned = _ok(
        api,
        "spawn",
        "aptest-cli-one",
        "--image",
        busybox,
        "-e",
        "LOG_LEVEL=info",
        "-s",
        "TOKEN",
        "--secret",
        "OTHER=tok-inline-never-shown",
        "-l",
        "team=research",
        "--cpus",
        "0.5",
        "--memory",
        "64",
        "--pids",
        "32",
        "--restart",
        "no",
        "--workspace",
        "--",
        "sh",
        "-c",
        SCRIPT,
        TOKEN="tok-env-never-shown",
    )
    header = spawned.splitlines()[0].split()
    assert header == ["NAME", "ID", "IMAGE", "STATUS", "OWNER", "CREATED"]
    with AgentClient(api.url, api.keys.alice) as client:
        agent = client.get("aptest-cli-one")
    assert agent.secret_names == ["OTHER", "TOKEN"]
    assert agent.resources is not None
    assert (agent.resources.cpus, agent.resources.memory_mb, agent.resources.pids) == (0.5, 64, 32)
    assert agent.workspace
    assert agent.command == ["sh", "-c", SCRIPT]
    _spawn(api, "aptest-cli-two", busybox, "-l", "team=ops", "--network", "none")

    table = _ok(api, "ls").splitlines()
    assert table[0].split() == ["NAME", "ID", "IMAGE", "STATUS", "OWNER", "CREATED"]
    first = table[1].split()
    assert first[:5] == ["aptest-cli-one", agent.short_id, busybox, "running", "alice"]
    assert " ".join(first[5:]).endswith("ago")
    assert table[2].split()[0] == "aptest-cli-two"

    listed = json.loads(_ok(api, "ls", "-o", "json"))
    assert [a["name"] for a in listed] == ["aptest-cli-one", "aptest-cli-two"]
    assert listed[0]["env"] == {"LOG_LEVEL": "info"}
    assert (listed[0]["network"], listed[1]["network"]) == ("default", "none")
    assert _ok(api, "ls", "-q").split() == [agent.id, listed[1]["id"]]
    assert _ok(api, "ls", "-l", "team=ops", "-q").split() == [listed[1]["id"]]
    assert _ok(api, "ls", "--status", "stopped", "-q") == ""

    detail = _ok(api, "get", "aptest-cli-one")
    for expected in (
        "ID:",
        agent.id,
        "Status:",
        "running",
        "LOG_LEVEL=info",
        "team=research",
        "OTHER, TOKEN",
        "cpus=0.5 memory=64MB pids=32",
        "sh -c 'echo agent-says-hi; exec sleep 3600'",
    ):
        assert expected in detail
    assert json.loads(_ok(api, "get", agent.id, "--output", "JSON"))["id"] == agent.id

    everything = spawned + "".join(_ok(api, cmd) for cmd in ("ls",)) + detail
    assert "tok-env-never-shown" not in everything + json.dumps(listed)
    assert "tok-inline-never-shown" not in everything + json.dumps(listed)
    assert "tok-env-never-shown" not in api.server.logs()


def test_lifecycle_rm_and_logs(api: Api, busybox: str) -> None:
    _spawn(api, "aptest-cli-life", busybox)
    assert "stopped" in _ok(api, "stop", "aptest-cli-life", "-t", "0")
    assert json.loads(_ok(api, "start", "aptest-cli-life", "-o", "json"))["status"] == "running"
    assert "running" in _ok(api, "restart", "aptest-cli-life", "--timeout", "0")
    for _ in range(100):
        if "agent-says-hi" in _ok(api, "logs", "aptest-cli-life"):
            break
        time.sleep(0.1)
    assert _ok(api, "logs", "aptest-cli-life", "--tail", "1") == "agent-says-hi\n"
    assert _ok(api, "logs", "aptest-cli-life", "-t").rstrip().endswith(" agent-says-hi")
    assert _ok(api, "logs", "aptest-cli-life", "--since", "2099-01-01T00:00:00Z") == ""

    _ok(api, "spawn", "aptest-cli-ttl", "--image", busybox, "--ttl", "60", "--", "sleep", "600")
    renewed = _ok(api, "renew", "aptest-cli-ttl", "3600")
    assert "Expires:" in renewed
    assert "(stopped then)" in renewed
    no_ttl = runner.invoke(app, ["renew", "aptest-cli-life", "60"], env=_env(api))
    assert no_ttl.exit_code == 1
    assert "(invalid_spec, HTTP 422)" in no_ttl.stderr

    assert _ok(api, "rm", "aptest-cli-life") == "aptest-cli-life\n"
    again = runner.invoke(app, ["rm", "aptest-cli-life"], env=_env(api))
    assert again.exit_code == 1
    assert "Error: no agent 'aptest-cli-life' (agent_not_found, HTTP 404)" in again.stderr
    assert "agentctl ls" in again.stderr
    assert _ok(api, "rm", "-f", "aptest-cli-life") == "aptest-cli-life\n"


def test_logs_follow_ends_when_the_agent_stops(api: Api, busybox: str) -> None:
    script = "i=0; while [ $i -lt 600 ]; do echo tick-$i; i=$((i+1)); sleep 0.2; done"
    _ok(api, "spawn", "aptest-cli-follow", "--image", busybox, "--", "sh", "-c", script)

    def stop_later() -> None:
        time.sleep(2)
        with AgentClient(api.url, api.keys.alice) as client:
            client.stop("aptest-cli-follow", timeout=0)

    stopper = threading.Thread(target=stop_later)
    stopper.start()
    lines = _ok(api, "logs", "-f", "aptest-cli-follow").splitlines()
    stopper.join()
    assert lines[0] == "tick-0"
    assert len(lines) >= 5


def test_errors_exit_non_zero_with_the_servers_message(api: Api, busybox: str) -> None:
    wrong = "wrong-" + api.keys.alice
    denied = runner.invoke(app, ["ls"], env=_env(api, key=wrong))
    assert denied.exit_code == 1
    assert "Error: the API key is not valid (unauthorized, HTTP 401)" in denied.stderr
    assert "AGENT_API_KEY" in denied.stderr
    assert wrong not in denied.output

    by_option = runner.invoke(
        app, ["--url", api.url, "--key", wrong, "get", "x"], env={"AGENT_API_KEY": ""}
    )
    assert by_option.exit_code == 1
    assert "unauthorized" in by_option.stderr
    assert wrong not in by_option.output

    too_big = runner.invoke(
        app, ["spawn", "aptest-cli-big", "--image", busybox, "--cpus", "3"], env=_env(api)
    )
    assert too_big.exit_code == 1
    assert "policy_violation, HTTP 403" in too_big.stderr
    assert "ceiling" in too_big.stderr

    viewer = runner.invoke(app, ["stop", "anything"], env=_env(api, key=api.keys.alice_viewer))
    assert viewer.exit_code == 1
    assert "forbidden, HTTP 403" in viewer.stderr

    away = f"http://127.0.0.1:{free_port()}"
    unreachable = runner.invoke(app, ["--url", away, "ls"], env=_env(api))
    assert unreachable.exit_code == 1
    assert f"could not reach agent-api at {away}" in unreachable.stderr
    assert "--url" in unreachable.stderr

    bad_env = runner.invoke(
        app, ["spawn", "x", "--image", busybox, "-e", "NOEQUALS"], env=_env(api)
    )
    assert bad_env.exit_code == 2
    assert "KEY=VALUE" in bad_env.output
    no_secret = runner.invoke(
        app, ["spawn", "x", "--image", busybox, "-s", "APTEST_UNSET_VAR"], env=_env(api)
    )
    assert no_secret.exit_code == 2
    assert "APTEST_UNSET_VAR" in no_secret.output

    helped = runner.invoke(app, ["--help"], env=_env(api))
    assert helped.exit_code == 0
    assert "spawn" in helped.stdout
    assert api.keys.alice not in helped.output


def test_shell_completion_offers_agent_names(api: Api, busybox: str) -> None:
    _spawn(api, "aptest-cli-complete", busybox)
    completion_env = _env(
        api,
        _AGENTCTL_COMPLETE="complete_bash",
        COMP_WORDS="agentctl get aptest-cli-c",
        COMP_CWORD="2",
    )
    result = runner.invoke(app, [], env=completion_env, prog_name="agentctl")
    assert result.exit_code == 0, result.output
    assert "aptest-cli-complete" in result.stdout.split()
    script = runner.invoke(app, ["--show-completion", "bash"], prog_name="agentctl")
    assert "_AGENTCTL_COMPLETE" in script.stdout


def _run(command: list[str], api: Api) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_API_")}
    return subprocess.run(
        command,
        env={**env, **_env(api)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("entry", ["module", "console-script"])
def test_as_a_process(api: Api, busybox: str, entry: str) -> None:
    base = [sys.executable, "-m", "clients.cli"] if entry == "module" else [str(AGENTCTL)]
    name = f"aptest-cli-{entry}"
    spawned = _run([*base, "spawn", name, "--image", busybox, "--", "sh", "-c", SCRIPT], api)
    assert spawned.returncode == 0, spawned.stderr
    assert name in spawned.stdout
    listed = _run([*base, "ls", "-o", "json"], api)
    assert [a["name"] for a in json.loads(listed.stdout)] == [name]
    missing = _run([*base, "get", "aptest-cli-nobody"], api)
    assert missing.returncode == 1
    assert "agent_not_found" in missing.stderr
    assert missing.stdout == ""
    assert _run([*base, "rm", name], api).returncode == 0
    assert api.keys.alice not in spawned.stdout + spawned.stderr + missing.stderr

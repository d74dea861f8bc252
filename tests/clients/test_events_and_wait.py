"""Events and waits from the clients: the Python clients, agentctl and the tool."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from clients import AgentClient, AsyncAgentClient, RemoteAgentManager, WaitTimeoutError

from ..conftest import Api

AGENTCTL = Path(sys.executable).parent / "agentctl"
EXIT_3 = ["sh", "-c", "sleep 1; echo done-here; exit 3"]


def test_the_client_waits_for_the_result_and_streams_events(api: Api, busybox: str) -> None:
    with AgentClient(api.url, api.keys.alice) as client:
        stream = client.events(types=["created", "failed"])
        agent = client.spawn("cl-ev-run", busybox, command=EXIT_3, restart_policy="no")
        done = client.wait(agent.name, until="exited", timeout=60)
        assert (done.status, done.exit_code) == ("failed", 3)
        seen = []
        for event in stream:
            seen.append(event)
            if event.type == "failed":
                break
        stream.close()
        assert [e.type for e in seen if e.agent and e.agent.id == agent.id] == ["created", "failed"]
        failed = seen[-1]
        assert (failed.exit_code, failed.reason) == (3, "exit_code")
        # Resumed after the created event: the failure comes again, nothing before it.
        resumed = client.events(last_event_id=seen[0].id, agent=agent.id)
        assert next(resumed).type in ("started", "failed")
        resumed.close()

        sleeper = client.spawn("cl-ev-sleep", busybox, command=["sleep", "60"])
        with pytest.raises(WaitTimeoutError) as timed_out:
            client.wait(sleeper.name, until="stopped", timeout=1)
        assert timed_out.value.code == "wait_timeout"


@pytest.mark.anyio
async def test_the_async_client_waits(api: Api, busybox: str) -> None:
    async with AsyncAgentClient(api.url, api.keys.alice) as client:
        events = await client.events(agent="cl-ev-async")
        await client.spawn("cl-ev-async", busybox, command=EXIT_3, restart_policy="no")
        done = await client.wait("cl-ev-async", timeout=60)
        assert done.exit_code == 3
        with anyio.fail_after(30):
            first = await anext(events)
        await events.aclose()
        assert first.agent is not None
        assert first.agent.name == "cl-ev-async"


def test_agentctl_wait_and_events(api: Api, busybox: str) -> None:
    env = {"AGENT_API_URL": api.url, "AGENT_API_KEY": api.keys.alice, "PATH": "/usr/bin:/bin"}
    watcher = subprocess.Popen(
        [str(AGENTCTL), "events", "--type", "failed"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)  # the stream is open before the agent exits
        with AgentClient(api.url, api.keys.alice) as client:
            client.spawn("cl-ev-ctl", busybox, command=EXIT_3, restart_policy="no")
        waited = subprocess.run(
            [str(AGENTCTL), "wait", "cl-ev-ctl", "-o", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert '"exit_code": 3' in waited.stdout
        assert watcher.stdout is not None
        line = watcher.stdout.readline()
        assert "failed" in line
        assert "alice/cl-ev-ctl" in line
        assert "exit_code=3" in line
    finally:
        watcher.kill()
        watcher.communicate()


@pytest.mark.anyio
async def test_the_tool_waits_and_tells_the_exit_code(api: Api, busybox: str) -> None:
    tool = RemoteAgentManager(api.url, api.keys.alice)
    spawned = await tool.run(
        action="spawn", name="cl-ev-tool", image=busybox, command=EXIT_3, restart_policy="no"
    )
    assert not spawned.is_error, spawned.text
    waited = await tool.run(action="wait", name="cl-ev-tool", timeout=60)
    assert not waited.is_error, waited.text
    assert "exited with code 3" in waited.text
    running = await tool.run(
        action="spawn", name="cl-ev-long", image=busybox, command=["sleep", "60"]
    )
    assert not running.is_error
    late = await tool.run(action="wait", name="cl-ev-long", timeout=1)
    assert not late.is_error
    assert "wait again" in late.text


async def _changes_until(tool: RemoteAgentManager, wanted: str) -> list[str]:
    """The tool's change lines, read again and again until one says ``wanted``."""
    lines: list[str] = []
    with anyio.fail_after(60):
        while not any(wanted in line for line in lines):
            answer = await tool.run(action="changes")
            assert not answer.is_error, answer.text
            lines += [line for line in answer.text.splitlines() if line.startswith("- ")]
            await anyio.sleep(0.2)
    return lines


@pytest.mark.anyio
async def test_the_tool_tells_what_changed_since_it_last_looked(api: Api, busybox: str) -> None:
    tool = RemoteAgentManager(api.url, api.keys.alice)
    first = await tool.run(action="changes")
    assert not first.is_error, first.text
    assert first.text.startswith(("No recent changes", "Recent changes to your agents"))
    with AgentClient(api.url, api.keys.bob) as bob:
        bob.spawn("cl-ch-bobs", busybox, command=["sleep", "600"])
        spawned = await tool.run(
            action="spawn", name="cl-ch-mine", image=busybox, command=["sleep", "600"]
        )
        assert not spawned.is_error, spawned.text
        seen = await _changes_until(tool, "agent 'cl-ch-mine' started")
        mine = [line for line in seen if "'cl-ch-mine'" in line]
        assert [line.split("' ", 1)[1].split(";")[0] for line in mine] == ["created", "started"]
        assert mine[-1].endswith("now running")

        stopped = await tool.run(action="stop", name="cl-ch-mine", timeout=0)
        assert not stopped.is_error, stopped.text
        bob.stop("cl-ch-bobs", timeout=0)
        after = await _changes_until(tool, "agent 'cl-ch-mine' stopped")
        assert after == [line for line in after if "'cl-ch-mine' stopped by call" in line]
        assert len(after) == 1
        assert (await tool.run(action="changes")).text == "Nothing changed since you last looked."
        assert "cl-ch-bobs" not in " ".join(seen + after)
        assert bob.get("cl-ch-bobs").status == "stopped"

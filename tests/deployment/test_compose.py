"""End to end: the compose stack as a user runs it, agent-api holding the socket and Sol
(a stand-in using this repo's RemoteAgentManager) without it or the admin key, both on the
hive network, Sol also on its agents' network."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

from .conftest import HIVE_NET, Stack

TOOL = textwrap.dedent(
    """
    import asyncio, json, sys
    from clients.nanobot_tool import RemoteAgentManager

    async def main():
        tool = RemoteAgentManager()
        print(await tool.execute(**json.loads(sys.argv[1])))

    asyncio.run(main())
    """
)


def sol_tool(stack: Stack, **arguments: object) -> str:
    result = stack.container("sol").exec_run(["python3", "-c", TOOL, json.dumps(arguments)])
    output: bytes = result.output
    assert result.exit_code == 0, output.decode()
    return output.decode().strip()


def sol_python(stack: Stack, code: str) -> tuple[int, str]:
    result = stack.container("sol").exec_run(["python3", "-c", code])
    return result.exit_code, result.output.decode().strip()


def curl(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["curl", "-s", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_sol_has_no_socket_and_no_docker_group(stack: Stack) -> None:
    sol = stack.container("sol")
    assert sol.exec_run(["test", "-e", "/var/run/docker.sock"]).exit_code != 0
    groups = sol.exec_run(["id", "-G"]).output.decode().split()
    assert str(os.stat("/var/run/docker.sock").st_gid) not in groups
    assert "0" not in groups
    assert not any("docker.sock" in str(m) for m in sol.attrs["Mounts"])
    api = stack.container("agent-api")
    mounts = {m["Destination"]: m for m in api.attrs["Mounts"]}
    assert set(mounts) == {"/var/run/docker.sock", "/etc/agent-api/keys"}
    assert mounts["/etc/agent-api/keys"]["RW"] is False


def test_sol_has_its_own_key_and_cannot_see_other_owners_agents(stack: Stack, busybox: str) -> None:
    sol = stack.container("sol")
    environment = sol.attrs["Config"]["Env"]
    assert f"AGENT_API_KEY={stack.sol_key}" in environment
    assert not any(stack.key in variable for variable in environment)
    # An operator's agent, spawned with the admin key (owner admin).
    made = curl(
        stack,
        "-X",
        "POST",
        "-H",
        f"Authorization: Bearer {stack.key}",
        "-H",
        "Content-Type: application/json",
        "-d",
        json.dumps({"name": "aptest-operators", "image": busybox, "command": ["sleep", "3600"]}),
        f"{stack.url}/v1/agents",
    )
    assert made.stdout.rsplit("\n", 1)[1] == "201", made.stdout
    assert "aptest-operators" not in sol_tool(stack, action="list")
    code, output = sol_python(
        stack,
        "import os, urllib.request, urllib.error\n"
        "request = urllib.request.Request('http://agent-api:8000/v1/agents/aptest-operators',"
        " headers={'X-API-Key': os.environ['AGENT_API_KEY']})\n"
        "try:\n    urllib.request.urlopen(request, timeout=10)\n"
        "except urllib.error.HTTPError as exc:\n    print(exc.code)\n",
    )
    assert (code, output) == (0, "404")
    deleted = curl(
        stack,
        "-X",
        "DELETE",
        "-H",
        f"Authorization: Bearer {stack.key}",
        f"{stack.url}/v1/agents/aptest-operators",
    )
    assert deleted.stdout.rsplit("\n", 1)[1] == "204"


def test_sol_manages_an_agent_it_can_reach_by_name(stack: Stack, busybox: str) -> None:
    spawned = sol_tool(
        stack,
        action="spawn",
        name="aptest-web",
        image=busybox,
        command=["httpd", "-f", "-p", "8080", "-h", "/etc"],
    )
    assert "aptest-web" in spawned
    assert "running" in spawned
    # Sol's agents are on Sol's agent network, and the API says so.
    assert f"'{HIVE_NET}.sol'" in sol_tool(stack, action="status", name="aptest-web")
    reach = textwrap.dedent(
        """
        import time, urllib.request
        for _ in range(40):
            try:
                page = urllib.request.urlopen("http://aptest-web:8080/hostname", timeout=2)
                print(page.read().decode())
                break
            except OSError:
                time.sleep(0.5)
        """
    )
    code, output = sol_python(stack, reach)
    assert code == 0
    assert output == "aptest-web"

    assert "stopped" in sol_tool(stack, action="stop", name="aptest-web")
    assert "running" in sol_tool(stack, action="start", name="aptest-web")
    assert "aptest-web" in sol_tool(stack, action="logs", name="aptest-web")
    assert "aptest-web" in sol_tool(stack, action="list")


def test_an_operator_curls_the_api_from_the_host(stack: Stack) -> None:
    listed = curl(stack, "-H", f"Authorization: Bearer {stack.key}", f"{stack.url}/v1/agents")
    body, status = listed.stdout.rsplit("\n", 1)
    assert status == "200"
    assert [a["name"] for a in json.loads(body)["items"]] == ["aptest-web"]
    refused = curl(stack, f"{stack.url}/v1/agents")
    assert refused.stdout.rsplit("\n", 1)[1] == "401"


def test_agent_api_runs_as_non_root_is_healthy_and_survives_a_restart(stack: Stack) -> None:
    api = stack.container("agent-api")
    api.reload()
    assert api.attrs["State"]["Health"]["Status"] == "healthy"
    assert api.exec_run(["id", "-u"]).output.decode().strip() == "10001"
    assert api.attrs["Config"]["User"] not in ("", "0", "root")
    before = curl(stack, "-H", f"X-API-Key: {stack.key}", f"{stack.url}/v1/agents").stdout

    stack.compose("restart agent-api")
    for _ in range(60):
        after = curl(stack, "-H", f"X-API-Key: {stack.key}", f"{stack.url}/v1/agents").stdout
        if after.endswith("200"):
            break
        subprocess.run(["sleep", "0.5"], check=True)
    assert json.loads(after.rsplit("\n", 1)[0]) == json.loads(before.rsplit("\n", 1)[0])


def test_sol_deletes_and_down_leaves_spawned_agents(stack: Stack, busybox: str) -> None:
    assert "deleted" in sol_tool(stack, action="delete", name="aptest-web").lower()
    assert "aptest-web" not in sol_tool(stack, action="list")
    sol_tool(stack, action="spawn", name="aptest-keeper", image=busybox, command=["sleep", "3600"])

    # Agents are not part of the compose project: `down` stops agent-api and Sol only.
    stack.compose("down --remove-orphans", success_codes=(0, 1))
    keeper = stack.engine.containers.get(f"{os.environ['TEST_PREFIX']}sol.aptest-keeper")
    assert keeper.status == "running"
    assert stack.engine.networks.list(names=[f"{HIVE_NET}.sol"])
    print(
        f"\nagent-api image {stack.image_bytes / 1e6:.0f} MB, "
        f"built in {stack.build_seconds:.0f} s; compose up to healthy in {stack.up_seconds:.1f} s"
    )

"""``whoami`` in both Python clients and ``agentctl``: a key's name, owner and role."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from clients import AgentClient, AsyncAgentClient, UnauthorizedError
from clients.cli import app

from ..conftest import Api


def test_the_sync_client_says_who_each_key_is(api: Api) -> None:
    expected = {
        api.keys.admin: ("admin", "admin"),
        api.keys.alice: ("alice-op", "operator"),
        api.keys.alice_viewer: ("alice-view", "viewer"),
    }
    for key, (name, role) in expected.items():
        with AgentClient(api.url, key) as client:
            me = client.whoami()
        assert (me.key_name, me.role) == (name, role)
        assert key not in me.model_dump_json()
    with AgentClient(api.url, "not-a-key") as stranger, pytest.raises(UnauthorizedError):
        stranger.whoami()


@pytest.mark.anyio
async def test_the_async_client_says_who_a_key_is(api: Api) -> None:
    async with AsyncAgentClient(api.url, api.keys.bob) as client:
        me = await client.whoami()
    assert (me.key_name, me.owner, me.role) == ("bob-op", "bob", "operator")


def test_agentctl_whoami(api: Api) -> None:
    env = {"AGENT_API_URL": api.url, "AGENT_API_KEY": api.keys.alice_viewer}
    runner = CliRunner()
    text = runner.invoke(app, ["whoami"], env=env, prog_name="agentctl")
    assert text.exit_code == 0, text.output
    assert text.stdout.strip() == "key alice-view, role viewer, owner alice"
    as_json = runner.invoke(app, ["whoami", "-o", "json"], env=env, prog_name="agentctl")
    assert json.loads(as_json.stdout) == {
        "key_name": "alice-view",
        "owner": "alice",
        "role": "viewer",
    }
    assert api.keys.alice_viewer not in text.stdout + as_json.stdout

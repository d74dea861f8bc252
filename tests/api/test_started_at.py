"""``started_at``: when the current run began, the same from every read, new after a restart."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from ..conftest import Api, StartServer
from .helpers import body, wait_status


def _reads(client: httpx.Client, ref: str) -> list[str | None]:
    got = client.get(f"/v1/agents/{ref}").json()
    listed = [a for a in client.get("/v1/agents").json()["items"] if a["id"] == ref]
    return [got["started_at"], *(a["started_at"] for a in listed)]


def test_uptime_counts_from_the_current_run(
    api: Api, busybox: str, start_server: StartServer
) -> None:
    agent = api.alice.post("/v1/agents", json=body("up-since", busybox)).json()
    first = wait_status(api.alice, agent["id"], "running")["started_at"]
    assert first is not None
    began = datetime.fromisoformat(first)
    assert began >= datetime.fromisoformat(agent["created_at"])
    assert began <= datetime.now(UTC)
    assert _reads(api.alice, agent["id"]) == [first, first]

    restarted = api.alice.post(f"/v1/agents/{agent['id']}/restart", params={"timeout": 0}).json()
    assert restarted["status"] == "running"
    assert restarted["started_at"] > first
    assert _reads(api.alice, agent["id"]) == [restarted["started_at"]] * 2

    # A replica reading from the engine, with nothing remembered: the same moment.
    other = start_server(AGENT_API_LIVE_READS="false")
    with httpx.Client(
        base_url=other.url, headers={"Authorization": f"Bearer {api.keys.alice}"}, timeout=60
    ) as fresh:
        assert _reads(fresh, agent["id"]) == [restarted["started_at"]] * 2

    stopped = api.alice.post(f"/v1/agents/{agent['id']}/stop", params={"timeout": 0}).json()
    assert stopped["started_at"] is None
    assert _reads(api.alice, agent["id"]) == [None, None]

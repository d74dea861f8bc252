"""Followed log streams are bounded: per key, per owner and in all (429 past a cap), plain
reads never wait behind follows, and one follow lasts at most the configured ceiling."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import httpx
import pytest

from clients import AgentClient, AsyncAgentClient

from ..conftest import Api, StartServer
from .helpers import assert_problem, body

TICKS = "i=0; while [ $i -lt 3000 ]; do echo tick-$i; i=$((i+1)); sleep 0.5; done"


@contextlib.contextmanager
def _following(url: str, key: str, agent: str) -> Iterator[httpx.Response]:
    """A follow that has started streaming (its first line arrived)."""
    with (
        httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30) as client,
        client.stream("GET", f"/v1/agents/{agent}/logs", params={"follow": "true"}) as stream,
    ):
        assert stream.status_code == 200
        lines = stream.iter_lines()  # kept: dropping it would close the stream
        assert next(lines) == "agent-says-hi"
        yield stream


def test_follows_are_capped_per_key_and_per_owner(
    start_server: StartServer, api: Api, busybox: str
) -> None:
    server = start_server(AGENT_API_MAX_FOLLOWS_PER_KEY="2", AGENT_API_MAX_FOLLOWS_PER_OWNER="3")
    alice = httpx.Client(base_url=server.url, headers={"X-API-Key": api.keys.alice}, timeout=30)
    viewer = httpx.Client(
        base_url=server.url, headers={"X-API-Key": api.keys.alice_viewer}, timeout=30
    )
    with alice, viewer, contextlib.ExitStack() as open_follows:
        assert alice.post("/v1/agents", json=body("aptest-fol", busybox)).status_code == 201
        for _ in range(2):
            open_follows.enter_context(_following(server.url, api.keys.alice_viewer, "aptest-fol"))
        third = viewer.get("/v1/agents/aptest-fol/logs", params={"follow": "true"})
        assert_problem(third, 429, "too_many_log_streams")
        assert third.headers["retry-after"] == "5"
        # Plain reads of the same key are not follows: never refused, never waiting.
        assert viewer.get("/v1/agents/aptest-fol/logs").text == "agent-says-hi\n"
        # The owner's third follow, from another key, is its last.
        open_follows.enter_context(_following(server.url, api.keys.alice, "aptest-fol"))
        fourth = alice.get("/v1/agents/aptest-fol/logs", params={"follow": "true"})
        assert_problem(fourth, 429, "too_many_log_streams")
        assert "owner" in fourth.json()["detail"]
    # Closed follows give their slots back.
    with httpx.Client(
        base_url=server.url, headers={"X-API-Key": api.keys.alice_viewer}, timeout=30
    ) as viewer:
        answers = []
        for _ in range(50):
            with viewer.stream(
                "GET", "/v1/agents/aptest-fol/logs", params={"follow": "true"}
            ) as again:
                answers.append(again.status_code)
            if answers[-1] == 200:
                break
        assert answers[-1] == 200, answers


def test_plain_reads_never_wait_behind_follows(
    start_server: StartServer, api: Api, busybox: str
) -> None:
    server = start_server(AGENT_API_MAX_LOG_STREAMS="2")
    alice = httpx.Client(base_url=server.url, headers={"X-API-Key": api.keys.alice}, timeout=30)
    bob = httpx.Client(base_url=server.url, headers={"X-API-Key": api.keys.bob}, timeout=20)
    with alice, bob, contextlib.ExitStack() as open_follows:
        assert alice.post("/v1/agents", json=body("aptest-fol", busybox)).status_code == 201
        assert bob.post("/v1/agents", json=body("aptest-plain", busybox)).status_code == 201
        for _ in range(2):  # every follow the service has
            open_follows.enter_context(_following(server.url, api.keys.alice, "aptest-fol"))
        assert_problem(
            bob.get("/v1/agents/aptest-plain/logs", params={"follow": "true"}),
            429,
            "too_many_log_streams",
        )
        # Another owner's plain reads are answered at once (they used to queue for a thread).
        for _ in range(3):
            assert bob.get("/v1/agents/aptest-plain/logs").text == "agent-says-hi\n"


def test_a_follow_ends_cleanly_at_the_ceiling(
    start_server: StartServer, api: Api, busybox: str
) -> None:
    server = start_server(AGENT_API_FOLLOW_MAX_SECONDS="2")
    with httpx.Client(
        base_url=server.url, headers={"X-API-Key": api.keys.alice}, timeout=30
    ) as alice:
        assert alice.post("/v1/agents", json=body("aptest-quiet", busybox)).status_code == 201
        # The agent prints one line and then nothing: only the ceiling can end the stream
        # (before, this waited forever and the read timed out).
        with alice.stream(
            "GET", "/v1/agents/aptest-quiet/logs", params={"follow": "true"}
        ) as stream:
            assert stream.headers["x-follow-max-seconds"] == "2"
            lines = list(stream.iter_lines())
        assert lines == ["agent-says-hi"]
        assert alice.get("/v1/agents/aptest-quiet").json()["status"] == "running"


def test_the_client_reconnects_at_the_ceiling_without_losing_lines(
    start_server: StartServer, api: Api, busybox: str
) -> None:
    server = start_server(AGENT_API_FOLLOW_MAX_SECONDS="2")
    with AgentClient(server.url, api.keys.alice) as alice:
        alice.spawn("aptest-ticks", busybox, command=["sh", "-c", TICKS])
        seen: list[str] = []
        with contextlib.closing(alice.logs("aptest-ticks", follow=True)) as lines:
            for line in lines:
                seen.append(line)
                if line == "tick-14":  # about 7 s: past three server-side ends
                    break
    assert seen == [f"tick-{index}" for index in range(15)]


@pytest.mark.anyio
async def test_the_async_client_reconnects_at_the_ceiling_too(
    start_server: StartServer, api: Api, busybox: str
) -> None:
    server = start_server(AGENT_API_FOLLOW_MAX_SECONDS="2")
    async with AsyncAgentClient(server.url, api.keys.alice) as alice:
        await alice.spawn("aptest-aticks", busybox, command=["sh", "-c", TICKS])
        seen: list[str] = []
        async with contextlib.aclosing(alice.logs("aptest-aticks", follow=True)) as lines:
            async for line in lines:
                seen.append(line)
                if line == "tick-9":  # about 5 s: past two server-side ends
                    break
    assert seen == [f"tick-{index}" for index in range(10)]

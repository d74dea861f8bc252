"""Retries against real faults: a restarted server, an engine that is down, lost answers.

Only the faults a live server cannot produce on demand (a 429 with Retry-After, a 502, a
504, a proxy's HTML page) use ``httpx.MockTransport``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from clients import (
    AgentClient,
    AgentStatus,
    APIStatusError,
    AsyncAgentClient,
    RateLimitedError,
    RetryPolicy,
    ServerUnavailableError,
    TransportError,
)
from clients.errors import parse_retry_after
from testenv.server import ServerProcess, free_port

from ..conftest import Keys, server_env
from .conftest import QUICK, SCRIPT
from .faults import AsyncLoseAnswer, Background, LoseAnswer, Recording

PATIENT = RetryPolicy(attempts=100, budget=60, initial=0.1, max_wait=0.5, jitter=0.1)


@pytest.fixture
def own_server(
    keys: tuple[Keys, Path], tmp_path: Path, clean_docker: docker.DockerClient
) -> Iterator[ServerProcess]:
    """A service of the test's own, free to be stopped and started."""
    process = ServerProcess(server_env(*keys), tmp_path / "own.log")
    process.start()
    yield process
    process.stop()


def _engine_down_env(keys: tuple[Keys, Path], tmp_path: Path) -> dict[str, str]:
    return {
        **server_env(*keys),
        "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock",
        "AGENT_API_RETRY_AFTER": "1",
    }


def test_the_client_rides_out_a_server_restart(
    own_server: ServerProcess, keys: tuple[Keys, Path], busybox: str
) -> None:
    recording = Recording()
    with AgentClient(own_server.url, keys[0].alice, retry=PATIENT, transport=recording) as client:
        agent = client.spawn("aptest-rt-ride", busybox, command=["sh", "-c", SCRIPT])

        own_server.stop()
        back = Background(own_server.start, delay=1.0)
        try:
            assert client.get(agent.id) == agent  # retried until the server answers again
        finally:
            back.join()
        assert len(recording.sent("GET", agent.id)) > 1

        own_server.stop()
        back = Background(own_server.start, delay=1.0)
        try:
            assert client.stop(agent.id, timeout=0).status is AgentStatus.STOPPED
        finally:
            back.join()
        assert [a.id for a in client.iter_agents()] == [agent.id]


def test_a_server_that_stays_away_is_given_up_within_the_budget() -> None:
    budget = RetryPolicy(attempts=100, budget=2, initial=0.1, max_wait=0.5, jitter=0.1)
    recording = Recording()
    with (
        AgentClient(
            f"http://127.0.0.1:{free_port()}", "k" * 20, retry=budget, transport=recording
        ) as client,
        pytest.raises(TransportError) as failed,
    ):
        client.list_agents()
    # Retried, but the 2 s budget ran out long before the 100 attempts allowed.
    assert 2 <= len(recording.sent("GET", "/v1/agents")) < 100
    assert failed.value.code == "connection_failed"
    assert failed.value.status is None
    assert "127.0.0.1" in failed.value.detail


def test_503_while_the_engine_is_down_is_retried_after_retry_after(
    keys: tuple[Keys, Path], tmp_path: Path
) -> None:
    down = ServerProcess(_engine_down_env(keys, tmp_path), tmp_path / "down.log")
    down.start(wait_ready=False)
    recording = Recording()
    policy = RetryPolicy(attempts=3, budget=10, initial=0.05, max_wait=0.1, jitter=0.01)
    try:
        with AgentClient(down.url, keys[0].alice, retry=policy, transport=recording) as client:
            started = time.monotonic()
            with pytest.raises(ServerUnavailableError) as unavailable:
                client.list_agents()
            elapsed = time.monotonic() - started
            assert len(recording.sent("GET", "/v1/agents")) == 3
            assert elapsed >= 2  # two waits of Retry-After: 1, not the 0.05 s backoff
            assert unavailable.value.status == 503
            assert unavailable.value.code == "orchestrator_unavailable"
            assert unavailable.value.retry_after == 1

            # Not safe to repeat, or reporting the moment: one request, at once.
            with pytest.raises(ServerUnavailableError):
                client.restart("aptest-rt-any")
            assert len(recording.sent("POST", "/restart")) == 1
            with pytest.raises(ServerUnavailableError):
                client.ready()
            assert len(recording.sent("GET", "/readyz")) == 1
    finally:
        down.stop()


def test_the_client_recovers_when_the_engine_comes_back(
    keys: tuple[Keys, Path], tmp_path: Path, busybox: str, clean_docker: docker.DockerClient
) -> None:
    down = ServerProcess(_engine_down_env(keys, tmp_path), tmp_path / "down.log")
    down.start(wait_ready=False)
    healthy = ServerProcess(server_env(*keys), tmp_path / "healthy.log", port=down.port)

    def engine_back() -> None:
        down.stop()
        healthy.start()

    recording = Recording()
    try:
        with AgentClient(down.url, keys[0].alice, retry=PATIENT, transport=recording) as client:
            back = Background(engine_back, delay=1.5)
            try:
                agent = client.spawn("aptest-rt-back", busybox, command=["sh", "-c", SCRIPT])
            finally:
                back.join()
            spawns = recording.sent("POST", "/v1/agents")
            assert len(spawns) > 1
            assert len({r.headers["idempotency-key"] for r in spawns}) == 1
            assert agent.status is AgentStatus.RUNNING
            assert [a.id for a in client.iter_agents()] == [agent.id]
    finally:
        down.stop()
        healthy.stop()


def test_a_lost_spawn_answer_does_not_make_a_second_agent(
    own_server: ServerProcess, keys: tuple[Keys, Path], busybox: str
) -> None:
    lossy = LoseAnswer("POST", "/v1/agents")
    with AgentClient(own_server.url, keys[0].alice, retry=QUICK, transport=lossy) as client:
        agent = client.spawn("aptest-rt-once", busybox, command=["sh", "-c", SCRIPT])
        assert lossy.lost
        spawns = lossy.sent("POST", "/v1/agents")
        assert len(spawns) == 2
        assert spawns[0].headers["idempotency-key"] == spawns[1].headers["idempotency-key"]
        assert [a.id for a in client.iter_agents()] == [agent.id]

    chosen = LoseAnswer("POST", "/v1/agents")
    with AgentClient(own_server.url, keys[0].alice, retry=QUICK, transport=chosen) as client:
        again = client.spawn(
            "aptest-rt-keyed", busybox, command=["sh", "-c", SCRIPT], idempotency_key="job-42"
        )
        assert [r.headers["idempotency-key"] for r in chosen.requests] == ["job-42", "job-42"]
        assert client.spawn(
            "aptest-rt-keyed", busybox, command=["sh", "-c", SCRIPT], idempotency_key="job-42"
        ) == client.get(again.id)
        assert len(list(client.iter_agents())) == 2


def test_lost_answers_to_delete_and_stop_are_retried_and_restart_is_not(
    own_server: ServerProcess, keys: tuple[Keys, Path], busybox: str
) -> None:
    url, key = own_server.url, keys[0].alice
    with AgentClient(url, key) as plain:
        gone = plain.spawn("aptest-rt-gone", busybox, command=["sh", "-c", SCRIPT])
        kept = plain.spawn("aptest-rt-kept", busybox, command=["sh", "-c", SCRIPT])

    lossy = LoseAnswer("DELETE", gone.id)
    with AgentClient(url, key, retry=QUICK, transport=lossy) as client:
        client.delete(gone.id)  # the retry answers 404: the lost attempt removed it
    assert len(lossy.sent("DELETE", gone.id)) == 2

    lossy = LoseAnswer("POST", "/stop")
    with AgentClient(url, key, retry=QUICK, transport=lossy) as client:
        assert client.stop(kept.id, timeout=0).status is AgentStatus.STOPPED
    assert len(lossy.sent("POST", "/stop")) == 2

    lossy = LoseAnswer("POST", "/restart")
    with AgentClient(url, key, retry=QUICK, transport=lossy) as client:
        with pytest.raises(TransportError) as lost:
            client.restart(kept.id, timeout=0)
        assert lost.value.code == "connection_failed"
        assert client.get(kept.id).status is AgentStatus.RUNNING  # it did restart, once
    assert len(lossy.sent("POST", "/restart")) == 1

    with AgentClient(url, key) as plain:
        assert [a.name for a in plain.iter_agents()] == ["aptest-rt-kept"]


@pytest.mark.anyio
async def test_the_async_client_retries_a_lost_spawn_answer(
    own_server: ServerProcess, keys: tuple[Keys, Path], busybox: str
) -> None:
    lossy = AsyncLoseAnswer("POST", "/v1/agents")
    async with AsyncAgentClient(
        own_server.url, keys[0].alice, retry=QUICK, transport=lossy
    ) as client:
        agent = await client.spawn("aptest-rt-async", busybox, command=["sh", "-c", SCRIPT])
        assert lossy.lost
        assert len(lossy.requests) == 2
        assert [a.id async for a in client.iter_agents()] == [agent.id]


AGENT = {
    "id": "a" * 32,
    "name": "aptest-mock",
    "owner": "alice",
    "image": "img",
    "status": "running",
    "created_at": "2026-11-20T10:00:00Z",
    "orchestrator": "docker",
}
PAGE = {"items": [AGENT], "next_cursor": None}


def _problem(status: int, code: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"type": "t", "title": "x", "status": status, "detail": f"{code} now", "code": code}
    return httpx.Response(
        status, json=body, headers={"content-type": "application/problem+json", **(headers or {})}
    )


def _scripted(*answers: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A transport that gives ``answers`` in turn (the last one again once they run out)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1]

    return httpx.MockTransport(handler), seen


def test_429_waits_as_long_as_retry_after_says() -> None:
    transport, seen = _scripted(
        _problem(429, "rate_limited", {"Retry-After": "1"}), httpx.Response(200, json=PAGE)
    )
    with AgentClient("http://agents.test", "k", retry=QUICK, transport=transport) as client:
        started = time.monotonic()
        assert client.list_agents().items[0].name == "aptest-mock"
    assert time.monotonic() - started >= 1
    assert len(seen) == 2


def test_a_retry_after_beyond_the_budget_gives_up_at_once() -> None:
    transport, seen = _scripted(_problem(429, "rate_limited", {"Retry-After": "60"}))
    with AgentClient("http://agents.test", "k", retry=QUICK, transport=transport) as client:
        started = time.monotonic()
        with pytest.raises(RateLimitedError) as limited:
            client.get("aptest-mock")
    assert time.monotonic() - started < 1
    assert len(seen) == 1
    assert (limited.value.status, limited.value.code, limited.value.retry_after) == (
        429,
        "rate_limited",
        60,
    )


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_and_unavailable_answers_are_retried(status: int) -> None:
    transport, seen = _scripted(_problem(status, "engine_error"), httpx.Response(200, json=AGENT))
    with AgentClient("http://agents.test", "k", retry=QUICK, transport=transport) as client:
        assert client.start("aptest-mock").name == "aptest-mock"
    assert len(seen) == 2


def test_other_errors_and_unsafe_calls_are_not_retried() -> None:
    transport, seen = _scripted(_problem(500, "internal_error"), httpx.Response(200, json=AGENT))
    with (
        AgentClient("http://agents.test", "k", retry=QUICK, transport=transport) as client,
        pytest.raises(APIStatusError) as failed,
    ):
        client.get("aptest-mock")
    assert (failed.value.status, failed.value.code) == (500, "internal_error")
    assert len(seen) == 1

    transport, seen = _scripted(_problem(503, "busy"), httpx.Response(200, json=AGENT))
    with (
        AgentClient("http://agents.test", "k", retry=QUICK, transport=transport) as client,
        pytest.raises(ServerUnavailableError),
    ):
        client.restart("aptest-mock")
    assert len(seen) == 1


def test_a_spawn_is_retried_with_the_same_key_and_a_bare_proxy_page_is_not_echoed() -> None:
    html = httpx.Response(502, text="<html>secret proxy internals</html>")
    transport, seen = _scripted(html, _problem(503, "orchestrator_unavailable"), html)
    with (
        AgentClient("http://agents.test", "k", retry=QUICK, transport=transport) as client,
        pytest.raises(ServerUnavailableError) as failed,
    ):
        client.spawn("aptest-mock", "img")
    assert len(seen) == QUICK.attempts
    assert len({r.headers["idempotency-key"] for r in seen}) == 1
    assert failed.value.detail == "502 Bad Gateway"
    assert failed.value.code == "http_502"
    assert "internals" not in str(failed.value)


def test_retry_after_as_seconds_or_http_date() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
    assert parse_retry_after("5") == 5
    assert parse_retry_after("Fri, 20 Nov 2026 10:00:30 GMT", now=now) == 30
    assert parse_retry_after("Fri, 20 Nov 2026 09:00:00 GMT", now=now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)

"""Read-your-writes and staleness: after each mutating call, what ``get`` and ``list`` say.

By the replica that answered the call: at once. By a second replica of the service on the
same engine (fed by its own watch): within a bounded time, which the test measures and
prints (the staleness quoted in the README). Not timed beyond a generous bound.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from testenv.engine import local_dockerd_pid, restart_local_engine

from ..conftest import Api, StartServer
from .helpers import body, wait_status

_BOUND = 10.0  # seconds: far above any staleness seen, only so a failure ends
_FIELDS = ("status", "revision", "expires_at", "labels", "env", "resources", "image")

Agent = dict[str, Any]


def fingerprint(agent: Agent | None) -> tuple[Any, ...] | None:
    """What a call changes of an agent, and what a reader must see after it."""
    return None if agent is None else tuple(agent.get(k) for k in _FIELDS)


def read(client: httpx.Client, ref: str) -> tuple[Agent | None, Agent | None]:
    """The agent as ``get`` and as ``list`` show it (None: not there)."""
    got = client.get(f"/v1/agents/{ref}")
    assert got.status_code in (200, 404), got.text
    listed = [a for a in client.get("/v1/agents").json()["items"] if a["id"] == ref]
    return (got.json() if got.status_code == 200 else None), (listed[0] if listed else None)


def settled(client: httpx.Client, ref: str, expected: tuple[Any, ...] | None) -> float:
    """Seconds until ``get`` and ``list`` of ``client`` both say ``expected``."""
    began = time.monotonic()
    while True:
        views = read(client, ref)
        if all(fingerprint(v) == expected for v in views):
            return time.monotonic() - began
        if time.monotonic() - began > _BOUND:
            raise AssertionError(f"after {_BOUND} s still {views}, expected {expected}")
        time.sleep(0.01)


Step = tuple[str, Callable[[httpx.Client, str], Agent | None]]


def _answer(response: httpx.Response) -> Agent:
    assert response.status_code in (200, 201), response.text
    found: Agent = response.json()
    agent: Agent = found.get("agent", found)  # a change answers {"agent": ...}
    return agent


STEPS: list[Step] = [
    ("stop", lambda c, ref: _answer(c.post(f"/v1/agents/{ref}/stop", params={"timeout": 0}))),
    ("start", lambda c, ref: _answer(c.post(f"/v1/agents/{ref}/start"))),
    ("restart", lambda c, ref: _answer(c.post(f"/v1/agents/{ref}/restart", params={"timeout": 0}))),
    ("renew", lambda c, ref: _answer(c.post(f"/v1/agents/{ref}/ttl", json={"ttl_seconds": 7200}))),
    (
        "update in place (resources)",
        lambda c, ref: _answer(c.patch(f"/v1/agents/{ref}", json={"resources": {"pids": 200}})),
    ),
    (
        "update by replacement (labels)",
        lambda c, ref: _answer(c.patch(f"/v1/agents/{ref}", json={"labels": {"step": "b"}})),
    ),
    ("rollback", lambda c, ref: _answer(c.post(f"/v1/agents/{ref}/rollback"))),
]


@pytest.fixture
def second(api: Api, start_server: StartServer) -> Iterator[httpx.Client]:
    """Alice's client of a second replica of the service, on the same engine."""
    other = start_server()
    with httpx.Client(
        base_url=other.url, headers={"Authorization": f"Bearer {api.keys.alice}"}, timeout=60
    ) as client:
        yield client


def test_every_write_is_read_at_once_here_and_soon_on_another_replica(
    api: Api, busybox: str, second: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    here = api.alice
    staleness: list[tuple[str, float]] = []

    def check(call: str, answered: Agent | None, ref: str) -> None:
        expected = fingerprint(answered)
        for view in read(here, ref):  # the same replica: at once, no waiting
            assert fingerprint(view) == expected, f"{call}: {view} != {answered}"
        staleness.append((call, settled(second, ref, expected)))

    spawned = _answer(
        here.post(
            "/v1/agents", json=body("cons-one", busybox, ttl_seconds=3600, labels={"step": "a"})
        )
    )
    ref = spawned["id"]
    check("spawn", spawned, ref)
    for call, act in STEPS:
        check(call, act(here, ref), ref)
    assert here.delete(f"/v1/agents/{ref}").status_code == 204
    check("delete", None, ref)

    with capsys.disabled():
        print("\nstaleness across replicas (s):")
        for call, seconds in staleness:
            print(f"  {call:32} {seconds:.3f}")
        print(f"  {'max':32} {max(s for _, s in staleness):.3f}")


# Handles SIGTERM (as the engine's shutdown sends it): exits 143, a stop.
_POLITE = ["sh", "-c", "trap 'exit 143' TERM; while true; do sleep 1; done"]


class ReadyLog:
    """``/readyz`` of one replica, read every 0.1 s on a thread: what its watch said."""

    def __init__(self, url: str) -> None:
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._url = url
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        with httpx.Client(base_url=self._url, timeout=5) as client:
            while not self._stop.wait(0.1):
                try:
                    answer = client.get("/readyz")
                    said = answer.json().get("watch") if answer.status_code == 200 else None
                except (httpx.HTTPError, ValueError):
                    self.seen.append("no answer")
                    continue
                self.seen.append(said or f"{answer.status_code}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def _reconnects(client: httpx.Client) -> float:
    found = re.search(
        r"^agent_api_watch_reconnects_total (\S+)$", client.get("/metrics").text, re.M
    )
    return float(found.group(1)) if found else 0.0


@pytest.mark.engine_restart
def test_reads_come_back_right_after_an_engine_restart(
    api: Api, busybox: str, second: httpx.Client
) -> None:
    """RESTARTS THE DOCKER ENGINE (every container on it stops): run it alone, never while
    others use the engine. Both replicas' watches break; once the engine is back they are
    live again, and get and list say what the engine says."""
    if local_dockerd_pid() is None or os.geteuid() != 0:
        message = "needs root and one local dockerd process to restart"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    here = api.alice
    back = _answer(
        here.post(
            "/v1/agents", json=body("cons-back", busybox, command=_POLITE, restart_policy="always")
        )
    )
    gone = _answer(here.post("/v1/agents", json=body("cons-gone", busybox, command=_POLITE)))
    for client in (here, second):
        for agent in (back, gone):
            wait_status(client, agent["id"], "running")
    before = _reconnects(here)
    watched = [ReadyLog(api.url), ReadyLog(str(second.base_url))]
    try:
        assert restart_local_engine()
        for client in (here, second):
            deadline = time.monotonic() + 120
            while client.get("/readyz").json().get("watch") != "live":
                assert time.monotonic() < deadline, "the watch never came back"
                time.sleep(0.2)
        time.sleep(0.5)  # a few more polls, all after both watches are live again
    finally:
        for log in watched:
            log.close()
    for log in watched:
        assert any(said != "live" for said in log.seen), log.seen  # down, or broken
        assert log.seen[-1] == "live", log.seen
    assert _reconnects(here) > before
    for client in (here, second):
        # The engine restarts the agent whose policy says so; the other stays stopped
        # (SIGTERM at the engine's shutdown: 143).
        assert settled(client, back["id"], fingerprint({**back, "status": "running"})) >= 0
        views = read(client, gone["id"])
        for view in views:
            assert view is not None
            assert (view["status"], view["exit_code"]) == ("stopped", 143), view

"""``AgentClient``: every call of the contract against the running service."""

from __future__ import annotations

import threading
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta

import pytest

from clients import (
    Agent,
    AgentClient,
    AgentStatus,
    APIStatusError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PolicyViolationError,
    Resources,
    SpawnRequest,
    UnauthorizedError,
    ValidationError,
)

from ..conftest import Api
from .conftest import SCRIPT


def _wait_for_output(client: AgentClient, agent: str, text: str) -> None:
    for _ in range(100):
        if text in list(client.logs(agent)):
            return
        time.sleep(0.1)
    raise AssertionError(f"{agent} never printed {text!r}")


def test_spawn_returns_the_typed_agent_and_never_shows_secrets(
    api: Api, alice: AgentClient, busybox: str
) -> None:
    agent = alice.spawn(
        "aptest-cl-one",
        busybox,
        command=["sh", "-c", SCRIPT],
        env={"LOG_LEVEL": "info"},
        secrets={"OPENAI_API_KEY": "sk-never-shown"},
        labels={"team": "research"},
        resources={"cpus": 0.5, "memory_mb": 128},
        restart_policy="no",
        workspace=True,
    )
    assert isinstance(agent, Agent)
    assert agent.name == "aptest-cl-one"
    assert agent.owner == "alice"
    assert agent.status is AgentStatus.RUNNING
    assert agent.env == {"LOG_LEVEL": "info"}
    assert agent.secret_names == ["OPENAI_API_KEY"]
    assert agent.labels == {"team": "research"}
    assert agent.resources == Resources(cpus=0.5, memory_mb=128, pids=256)
    assert agent.restart_policy == "no"
    assert agent.workspace is True
    assert agent.command == ["sh", "-c", SCRIPT]
    assert agent.short_id == agent.id[:12]
    assert alice.get(agent.id) == alice.get("aptest-cl-one")
    assert "sk-never-shown" not in api.server.logs()
    request = SpawnRequest.model_validate({"name": "x", "image": "y", "secrets": {"K": "sk-x"}})
    assert "sk-x" not in repr(request) + request.model_dump_json()
    assert request.to_body()["secrets"] == {"K": "sk-x"}


def test_spawn_options_reach_the_server(alice: AgentClient, busybox: str) -> None:
    def spawn() -> Agent:
        return alice.spawn(
            "aptest-cl-alone",
            busybox,
            command=["sh", "-c", SCRIPT],
            network="none",
            idempotency_key="job-1",
        )

    isolated = spawn()
    assert isolated.network == "none"
    assert spawn().id == isolated.id
    with pytest.raises(ConflictError) as reused:
        alice.spawn("aptest-cl-alone", busybox, idempotency_key="job-1")
    assert reused.value.code == "idempotency_key_reused"


def test_list_filters_and_the_pagination_helper(alice: AgentClient, busybox: str) -> None:
    ids = []
    for index in range(5):
        group = "even" if index % 2 == 0 else "odd"
        made = alice.spawn(
            f"aptest-cl-p{index}", busybox, command=["sh", "-c", SCRIPT], labels={"group": group}
        )
        ids.append(made.id)
    alice.stop("aptest-cl-p0", timeout=0)

    first = alice.list_agents(limit=2)
    assert [a.id for a in first.items] == ids[:2]
    assert first.next_cursor is not None
    second = alice.list_agents(limit=2, cursor=first.next_cursor)
    assert [a.id for a in second.items] == ids[2:4]
    assert [a.id for a in alice.iter_agents(page_size=2)] == ids

    even = alice.iter_agents(labels={"group": "even"})
    assert sorted(a.name for a in even) == ["aptest-cl-p0", "aptest-cl-p2", "aptest-cl-p4"]
    stopped = alice.list_agents(status=AgentStatus.STOPPED).items
    assert [a.name for a in stopped] == ["aptest-cl-p0"]
    both = alice.iter_agents(labels={"group": "even"}, status="running")
    assert sorted(a.name for a in both) == ["aptest-cl-p2", "aptest-cl-p4"]

    with pytest.raises(ValidationError) as unknown_cursor:
        alice.list_agents(cursor="bm90LWEtY3Vyc29y")
    assert (unknown_cursor.value.status, unknown_cursor.value.code) == (400, "invalid_cursor")
    with pytest.raises(ValidationError) as bad_cursor:
        alice.list_agents(cursor="garbage!")
    assert (bad_cursor.value.status, bad_cursor.value.code) == (400, "invalid_cursor")


def test_lifecycle_and_delete_semantics(alice: AgentClient, busybox: str) -> None:
    agent = alice.spawn("aptest-cl-life", busybox, command=["sh", "-c", SCRIPT])

    assert alice.stop(agent.id, timeout=0).status is AgentStatus.STOPPED
    assert alice.stop(agent.id, timeout=0).status is AgentStatus.STOPPED
    assert alice.start("aptest-cl-life").status is AgentStatus.RUNNING
    assert alice.start("aptest-cl-life").status is AgentStatus.RUNNING
    assert alice.restart("aptest-cl-life", timeout=0).status is AgentStatus.RUNNING
    assert alice.stop("aptest-cl-life").status is AgentStatus.STOPPED  # the server's grace
    assert alice.restart("aptest-cl-life").status is AgentStatus.RUNNING

    alice.delete("aptest-cl-life")
    with pytest.raises(NotFoundError) as gone:
        alice.get("aptest-cl-life")
    assert (gone.value.status, gone.value.code) == (404, "agent_not_found")
    assert "aptest-cl-life" in gone.value.detail
    with pytest.raises(NotFoundError):
        alice.delete("aptest-cl-life")
    alice.delete("aptest-cl-life", missing_ok=True)
    with pytest.raises(NotFoundError):
        alice.start(agent.id)


def test_a_ttl_is_set_renewed_and_enforced(alice: AgentClient, busybox: str) -> None:
    brief = alice.spawn("aptest-cl-ttl", busybox, command=["sh", "-c", SCRIPT], ttl_seconds=1)
    assert brief.expires_at is not None
    assert brief.expires_at - brief.created_at <= timedelta(seconds=2)
    time.sleep(1.5)
    with pytest.raises(ConflictError) as expired:
        alice.start("aptest-cl-ttl")
    assert (expired.value.status, expired.value.code) == (409, "agent_expired")

    renewed = alice.renew("aptest-cl-ttl", ttl_seconds=600)
    assert renewed.expires_at is not None
    assert renewed.expires_at > datetime.now(UTC) + timedelta(seconds=500)
    assert alice.restart("aptest-cl-ttl", timeout=0).status is AgentStatus.RUNNING

    alice.spawn("aptest-cl-forever", busybox, command=["sh", "-c", SCRIPT])
    with pytest.raises(ValidationError) as no_ttl:
        alice.renew("aptest-cl-forever", ttl_seconds=60)
    assert (no_ttl.value.status, no_ttl.value.code) == (422, "invalid_spec")
    with pytest.raises(NotFoundError):
        alice.renew("aptest-cl-nobody", ttl_seconds=60)


def test_logs_tail_since_timestamps(alice: AgentClient, busybox: str) -> None:
    script = "echo one; echo two; exec sleep 3600"
    alice.spawn("aptest-cl-logs", busybox, command=["sh", "-c", script])
    _wait_for_output(alice, "aptest-cl-logs", "two")

    assert list(alice.logs("aptest-cl-logs")) == ["one", "two"]
    assert list(alice.logs("aptest-cl-logs", tail=1)) == ["two"]
    stamped = list(alice.logs("aptest-cl-logs", timestamps=True))
    assert stamped[0].endswith(" one")
    assert stamped[0][:4].isdigit()
    assert list(alice.logs("aptest-cl-logs", since="2099-01-01T00:00:00Z")) == []
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    assert list(alice.logs("aptest-cl-logs", since=an_hour_ago)) == ["one", "two"]
    assert list(alice.logs("aptest-cl-logs", since="10m")) == ["one", "two"]
    with pytest.raises(ValidationError):
        list(alice.logs("aptest-cl-logs", since="yesterday"))
    with pytest.raises(NotFoundError):
        list(alice.logs("aptest-cl-nobody"))


def test_follow_yields_lines_until_the_agent_stops(
    api: Api, alice: AgentClient, busybox: str
) -> None:
    script = "i=0; while [ $i -lt 600 ]; do echo tick-$i; i=$((i+1)); sleep 0.2; done"
    agent = alice.spawn("aptest-cl-follow", busybox, command=["sh", "-c", script])

    def stop_later() -> None:
        time.sleep(2)
        with AgentClient(api.url, api.keys.admin) as other:
            other.stop(agent.id, timeout=0)

    stopper = threading.Thread(target=stop_later)
    started = time.monotonic()
    lines = []
    stopper.start()
    for line in alice.logs(agent.id, follow=True):
        lines.append(line)
    stopper.join()
    assert len(lines) >= 5
    assert lines[0] == "tick-0"
    assert time.monotonic() - started < 60


def test_leaving_a_follow_early_closes_the_stream(alice: AgentClient, busybox: str) -> None:
    alice.spawn("aptest-cl-leave", busybox, command=["sh", "-c", SCRIPT])
    for _ in range(3):
        with closing(alice.logs("aptest-cl-leave", follow=True)) as lines:
            assert next(lines) == "agent-says-hi"
    assert list(alice.logs("aptest-cl-leave")) == ["agent-says-hi"]


def test_errors_carry_the_servers_code_detail_and_status(
    api: Api, alice: AgentClient, busybox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice.spawn("aptest-cl-twice", busybox, command=["sh", "-c", SCRIPT])
    with pytest.raises(ConflictError) as conflict:
        alice.spawn("aptest-cl-twice", busybox, command=["sh", "-c", SCRIPT])
    assert (conflict.value.status, conflict.value.code) == (409, "agent_name_conflict")
    assert conflict.value.request_id

    with pytest.raises(PolicyViolationError) as policy:
        alice.spawn("aptest-cl-big", busybox, resources={"cpus": 3})
    assert isinstance(policy.value, ForbiddenError)
    assert (policy.value.status, policy.value.code) == (403, "policy_violation")
    assert "ceiling" in policy.value.detail

    with pytest.raises(ValidationError) as image:
        alice.spawn("aptest-cl-img", "aptest/nothing:here")
    assert (image.value.status, image.value.code) == (422, "image_not_found")

    with pytest.raises(ValidationError) as name:
        alice.spawn("Not_Valid", busybox)
    assert (name.value.status, name.value.code) == (422, "validation_error")
    assert name.value.errors

    with pytest.raises(ValidationError) as shape:
        alice.spawn("aptest-cl-shape", busybox, secrets={"TOKEN": 123456789})  # type: ignore[dict-item]
    assert (shape.value.status, shape.value.code) == (None, "invalid_request")
    assert "secrets" in str(shape.value)
    assert "TOKEN" not in str(shape.value)  # nothing of a secrets map, not even its names
    assert "123456789" not in str(shape.value)
    with pytest.raises(ValidationError):
        alice.get("")

    with AgentClient(api.url, api.keys.alice_viewer) as viewer:
        assert [a.name for a in viewer.iter_agents()] == ["aptest-cl-twice"]
        with pytest.raises(ForbiddenError) as forbidden:
            viewer.stop("aptest-cl-twice")
        assert not isinstance(forbidden.value, PolicyViolationError)
        assert (forbidden.value.status, forbidden.value.code) == (403, "forbidden")

    with AgentClient(api.url, api.keys.bob) as bob, pytest.raises(NotFoundError):
        bob.get("aptest-cl-twice")

    wrong = "wrong-key-" + api.keys.alice
    with AgentClient(api.url, wrong) as stranger:
        assert wrong not in repr(stranger)
        with pytest.raises(UnauthorizedError) as unauthorized:
            stranger.list_agents()
    assert (unauthorized.value.status, unauthorized.value.code) == (401, "unauthorized")
    assert wrong not in str(unauthorized.value) + repr(unauthorized.value)

    monkeypatch.delenv("AGENT_API_KEY", raising=False)
    with AgentClient(api.url) as anonymous, pytest.raises(UnauthorizedError):
        anonymous.list_agents()
    assert all(isinstance(e, APIStatusError) for e in (conflict.value, policy.value))


def test_admin_acts_within_an_owner(admin: AgentClient, alice: AgentClient, busybox: str) -> None:
    mine = alice.spawn("aptest-cl-owned", busybox, command=["sh", "-c", SCRIPT])
    assert [a.id for a in admin.iter_agents(owner="alice")] == [mine.id]
    assert list(admin.iter_agents(owner="bob")) == []
    assert admin.get("aptest-cl-owned", owner="alice").id == mine.id
    assert admin.stop("aptest-cl-owned", owner="alice", timeout=0).status is AgentStatus.STOPPED
    assert list(admin.logs("aptest-cl-owned", owner="alice")) == ["agent-says-hi"]
    admin.delete("aptest-cl-owned", owner="alice")
    assert list(alice.iter_agents()) == []


def test_settings_come_from_the_environment(
    api: Api, monkeypatch: pytest.MonkeyPatch, busybox: str
) -> None:
    monkeypatch.setenv("AGENT_API_URL", api.url + "/")
    monkeypatch.setenv("AGENT_API_KEY", api.keys.alice)
    with AgentClient() as client:
        assert client.url == api.url
        assert api.keys.alice not in repr(client)
        assert client.health().status == "ok"
        assert client.ready().status == "ready"
        assert client.list_agents().items == []
    with AgentClient(key=api.keys.bob) as bob:  # an argument wins over the variable
        bob.spawn("aptest-cl-env", busybox, command=["sh", "-c", SCRIPT])
        assert [a.owner for a in bob.iter_agents()] == ["bob"]
    monkeypatch.delenv("AGENT_API_KEY")
    with AgentClient() as anonymous:
        assert anonymous.health().status == "ok"

"""The derivation of events, the ring that answers resumes, and the read model, as data."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agent_platform.eventbus import EventBus
from agent_platform.readmodel import ReadModel
from orchestrators.errors import AgentNotFound
from orchestrators.events import Deriver
from orchestrators.models import (
    Agent,
    AgentStatus,
    EventType,
    FailureReason,
    Resources,
    StoppedBy,
)
from orchestrators.watch import Observation

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def _agent(status: AgentStatus, *, agent_id: str = "a" * 32, owner: str = "alice") -> Agent:
    return Agent(
        id=agent_id,
        name="worker",
        owner=owner,
        image="img",
        status=status,
        created_at=T0,
        labels={},
        env={},
        secret_names=[],
        resources=Resources(cpus=1, memory_mb=64, pids=16),
        restart_policy="no",
        workspace=False,
        network="default",
        command=None,
        orchestrator="docker",
    )


def _seen(status: AgentStatus, token: int, **facts: object) -> Observation:
    return Observation.of(
        _agent(status), at=T0 + timedelta(seconds=token), token=str(token), **facts
    )


def test_each_change_derives_its_events_once() -> None:
    deriver = Deriver()
    kinds = [e.type for e in deriver.derive(_seen(AgentStatus.RUNNING, 1, restarts=0))]
    assert kinds == [EventType.CREATED, EventType.STARTED]
    assert deriver.derive(_seen(AgentStatus.RUNNING, 2, restarts=0)) == []
    stopped = deriver.derive(_seen(AgentStatus.STOPPED, 3, stopped_by=StoppedBy.TTL))
    assert [(e.type, e.by) for e in stopped] == [(EventType.STOPPED, StoppedBy.TTL)]
    assert [e.type for e in deriver.derive(_seen(AgentStatus.RUNNING, 4, restarts=0))] == [
        EventType.STARTED
    ]
    failed = deriver.derive(_seen(AgentStatus.FAILED, 5, reason=FailureReason.OOM_KILLED))
    assert [(e.type, e.reason) for e in failed] == [(EventType.FAILED, FailureReason.OOM_KILLED)]
    again = deriver.derive(_seen(AgentStatus.RUNNING, 6, restarts=1))
    assert [e.type for e in again] == [EventType.RESTARTED]
    health = deriver.derive(_seen(AgentStatus.RUNNING, 7, restarts=1, health="unhealthy"))
    assert [(e.type, e.health) for e in health] == [(EventType.HEALTH, "unhealthy")]
    gone = Observation(
        agent_id="a" * 32, name="worker", owner="alice", status=None, at=T0, token="8"
    )
    assert [e.type for e in deriver.derive(gone)] == [EventType.DELETED]
    assert len({e.id for e in failed + again + health}) == 3


def test_the_ring_replays_after_an_id_or_says_it_cannot() -> None:
    bus = EventBus(ring=3, buffer=10)
    bus.begin("0")
    deriver = Deriver()
    events = [
        e for t in range(1, 5) for e in deriver.derive(_seen(AgentStatus.RUNNING, t, restarts=t))
    ]
    listener = bus.listen()
    bus.publish(events)
    assert listener.queue.qsize() == len(events)
    kept = events[-3:]
    assert bus.after(kept[0].id) == kept[1:]
    assert bus.after(events[0].id) is None  # dropped from the ring: reset
    assert bus.after("garbage") is None
    assert bus.after(f"{bus.floor}-reset-0") == kept  # a client resuming after a reset
    assert bus.after(f"{kept[-1].id.split('-')[0]}-x-0") == []


def test_the_model_keeps_what_a_call_answered_over_an_older_observation() -> None:
    model = ReadModel()
    model.rebuild([_agent(AgentStatus.RUNNING)], taken=T0)
    model.put(_agent(AgentStatus.STOPPED))
    model.apply(_seen(AgentStatus.RUNNING, 1))  # happened before the call answered
    assert model.get("a" * 32, owner="alice").status is AgentStatus.STOPPED
    with pytest.raises(AgentNotFound):
        model.get("a" * 32, owner="bob")
    assert model.get("worker", owner="alice").id == "a" * 32
    model.drop("a" * 32)
    with pytest.raises(AgentNotFound):
        model.get("worker", owner="alice")
    assert model.matching(owner=None, labels=None) == []

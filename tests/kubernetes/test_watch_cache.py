"""The watch's cache and positions, without a server: which changes are observed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrators import labels as L
from orchestrators.errors import WatchExpired
from orchestrators.kubernetes.objects import STOPPED_BY
from orchestrators.kubernetes.status import Reading
from orchestrators.kubernetes.watch import AgentCache, Position
from orchestrators.models import Agent, AgentStatus, FailureReason, StoppedBy

JSON = dict[str, Any]
AT = datetime(2026, 12, 6, tzinfo=UTC)


def view(deployment: JSON, reading: Reading) -> Agent:
    labels = deployment["metadata"]["labels"]
    return Agent.model_validate(
        {
            "id": labels[L.ID],
            "name": labels[L.NAME],
            "owner": labels[L.OWNER],
            "image": "i",
            "status": reading.status,
            "detail": reading.detail,
            "exit_code": reading.exit_code,
            "created_at": AT,
            "labels": {},
            "env": {},
            "secret_names": [],
            "resources": {"cpus": 1.0, "memory_mb": 64, "pids": 64},
            "restart_policy": "always",
            "workspace": False,
            "network": "default",
            "command": None,
            "orchestrator": "kubernetes",
        }
    )


def labels(agent_id: str = "a1") -> dict[str, str]:
    return {L.ID: agent_id, L.NAME: "worker", L.OWNER: "alice"}


def deployment(replicas: int = 1, **annotations: str) -> JSON:
    return {
        "metadata": {"name": "d", "labels": labels(), "annotations": annotations},
        "spec": {"replicas": replicas},
        "status": {},
    }


def pod(*, ready: bool = True, last: JSON | None = None, restarts: int = 0) -> JSON:
    container: JSON = {"name": "agent", "ready": ready, "restartCount": restarts}
    container["state"] = {"running": {}} if ready else {"waiting": {"reason": "CrashLoopBackOff"}}
    if last is not None:
        container["lastState"] = {"terminated": last}
    return {
        "metadata": {"name": "p", "labels": labels()},
        "status": {"phase": "Running", "containerStatuses": [container]},
    }


def test_positions_round_trip_and_refuse_what_is_not_ours() -> None:
    position = Position("10", "12")
    assert Position.parse(position.token) == position
    assert position.at("pod", "15") == Position("10", "15")
    assert position.at("deployment", "14") == Position("14", "12")
    for token in ("", "10", "a.b", "10.", ".12", "1.2.3"):
        with pytest.raises(WatchExpired):
            Position.parse(token)


def test_a_change_is_observed_once_and_pods_may_come_first() -> None:
    cache = AgentCache(view)
    cache.fill([], [])
    # A pod before its Deployment: nothing to say yet.
    assert cache.apply("pod", "ADDED", pod(), at=AT, token="1.2") is None
    created = cache.apply("deployment", "ADDED", deployment(), at=AT, token="3.2")
    assert created is not None
    assert (created.agent_id, created.name, created.owner) == ("a1", "worker", "alice")
    assert (created.status, created.token, created.restarts) == (AgentStatus.RUNNING, "3.2", 0)
    # The same state again (a resync, a status patch that changes nothing we show): silent.
    assert cache.apply("pod", "MODIFIED", pod(), at=AT, token="3.4") is None

    oom = {"exitCode": 137, "reason": "OOMKilled"}
    failed = cache.apply(
        "pod", "MODIFIED", pod(ready=False, last=oom, restarts=1), at=AT, token="3.5"
    )
    assert failed is not None
    assert (failed.status, failed.reason, failed.exit_code, failed.restarts) == (
        AgentStatus.FAILED,
        FailureReason.OOM_KILLED,
        137,
        1,
    )
    assert failed.agent is not None
    assert failed.agent.exit_code == 137


def test_who_stopped_it_and_its_deletion() -> None:
    cache = AgentCache(view)
    cache.fill([deployment()], [pod()])
    assert [a.status for a in cache.agents()] == [AgentStatus.RUNNING]
    stopped = cache.apply(
        "deployment", "MODIFIED", deployment(0, **{STOPPED_BY: "ttl"}), at=AT, token="5.5"
    )
    assert stopped is not None
    assert (stopped.status, stopped.stopped_by) == (AgentStatus.STOPPED, StoppedBy.TTL)
    by_hand = cache.apply("deployment", "MODIFIED", deployment(0), at=AT, token="6.5")
    assert by_hand is not None
    assert by_hand.stopped_by is StoppedBy.ENGINE

    deleted = cache.apply("deployment", "DELETED", deployment(0), at=AT, token="7.5")
    assert deleted is not None
    assert deleted.deleted
    assert (deleted.agent_id, deleted.name, deleted.owner) == ("a1", "worker", "alice")
    assert cache.agents() == []
    # Its pods go after it: nothing more is said of it.
    assert cache.apply("pod", "DELETED", pod(), at=AT, token="7.6") is None


def test_objects_without_an_agent_id_are_ignored() -> None:
    cache = AgentCache(view)
    stranger = {"metadata": {"name": "x", "labels": {}}}
    assert cache.apply("deployment", "ADDED", stranger, at=AT, token="1.1") is None


def test_a_change_a_call_already_answered_is_dated_before_that_answer() -> None:
    """The read model keeps what a call answered over anything older: a lagging watch
    must not date the changes the call had already read as if they came after it."""
    answered_at = datetime(2026, 12, 6, 10, 0, 0, tzinfo=UTC)
    cache = AgentCache(view, {"a1": (7, answered_at)})
    cache.fill([], [])
    old = deployment()
    old["metadata"]["resourceVersion"] = "7"
    seen = cache.apply("deployment", "ADDED", old, at=AT.replace(hour=11), token="7.7")
    assert seen is not None
    assert seen.at < answered_at
    newer = deployment(0)
    newer["metadata"]["resourceVersion"] = "8"
    later = AT.replace(hour=11)
    after = cache.apply("deployment", "MODIFIED", newer, at=later, token="8.7")
    assert after is not None
    assert after.at == later


def named(name: str, created: str, **extra: Any) -> JSON:
    made = pod(**extra)
    made["metadata"] |= {"name": name, "uid": f"uid-{name}", "creationTimestamp": created}
    return made


def test_a_new_pod_taking_over_while_it_ran_is_a_restart_and_a_start_is_not() -> None:
    cache = AgentCache(view)
    cache.fill([deployment()], [named("p1", "2026-12-06T10:00:00Z")])

    def change(kind: str, change: str, obj: JSON) -> int | None:
        seen = cache.apply(kind, change, obj, at=AT, token="1.1")  # type: ignore[arg-type]
        return None if seen is None else seen.restarts

    # A restart call: the old pod goes (Recreate), a new one becomes ready.
    assert change("pod", "DELETED", named("p1", "2026-12-06T10:00:00Z")) == 0
    assert change("pod", "ADDED", named("p2", "2026-12-06T10:01:00Z")) == 1
    # A stop, then a start: a start, not a restart.
    assert change("deployment", "MODIFIED", deployment(0)) == 1
    assert change("pod", "DELETED", named("p2", "2026-12-06T10:01:00Z")) == 1
    assert change("deployment", "MODIFIED", deployment(1)) == 1
    assert change("pod", "ADDED", named("p3", "2026-12-06T10:02:00Z")) == 1

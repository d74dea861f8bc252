"""What a change sends and what usage reads, as data (no API server needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import SecretStr

from orchestrators import labels as L
from orchestrators.changes import KEPT_REVISIONS, rollback_target, spawned_revision
from orchestrators.errors import AgentNotFound, InvalidSpec
from orchestrators.kubernetes.changes import (
    CHANGING,
    change_patch,
    claim_patch,
    history_of,
    pod_revision,
    recorded,
    secret_data_patch,
    undo_patch,
)
from orchestrators.kubernetes.usage import parse_quantity, usage_of
from orchestrators.models import Revision, StoredSpec

from .test_objects import CREATED, agent_spec, schema_of


def test_an_agent_never_changed_has_its_spawn_as_revision_1() -> None:
    schema = schema_of(agent_spec())
    (first,) = history_of(schema, CREATED)
    assert first.number == 1
    assert first.created_at == CREATED
    assert first.spec == StoredSpec.model_validate_json(schema[L.SPEC])
    assert L.revision_of(schema) == 1


def test_the_history_is_bounded_newest_first_and_read_back() -> None:
    schema = schema_of(agent_spec())
    history = history_of(schema, CREATED)
    spec = history[0].spec
    for number in range(2, KEPT_REVISIONS + 5):
        entry = Revision(
            number=number, created_at=CREATED, changes=["image"], restarted=True, spec=spec
        )
        schema[L.REVISIONS] = recorded(history, entry)
        history = history_of(schema, CREATED)
    assert [r.number for r in history] == list(range(KEPT_REVISIONS + 4, 4, -1))
    schema[L.REVISIONS] = "not json"
    assert [r.number for r in history_of(schema, CREATED)] == [1]


def test_a_change_patch_is_conditional_and_removes_only_what_a_change_may() -> None:
    schema = schema_of(agent_spec())
    deployment = {
        "metadata": {
            "resourceVersion": "42",
            "labels": {"user.agents.hive.io/team": "research", "app": "theirs", L.ID: "x"},
            "annotations": {
                L.SPEC: "{}",
                CHANGING: "now",
                "deployment.kubernetes.io/r": "1",
                L.SYSTEM_PREFIX + "another-feature": "kept",
            },
        }
    }
    after = dict(schema)
    del after["user.agents.hive.io/team"]
    after[L.REVISION] = "2"
    patch = change_patch(deployment, after, None)
    assert patch["metadata"]["resourceVersion"] == "42"
    assert patch["metadata"]["labels"]["user.agents.hive.io/team"] is None
    assert patch["metadata"]["labels"][L.REVISION] == "2"
    assert "app" not in patch["metadata"]["labels"]
    assert patch["metadata"]["annotations"][CHANGING] is None
    assert patch["metadata"]["annotations"][L.SPEC] == schema[L.SPEC]
    assert "deployment.kubernetes.io/r" not in patch["metadata"]["annotations"]
    assert L.SYSTEM_PREFIX + "another-feature" not in patch["metadata"]["annotations"]
    assert "spec" not in patch
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {}}
    rolled = change_patch(deployment, after, pod_revision(template, 2))
    assert rolled["spec"]["template"]["metadata"] == {
        "labels": {"a": "b"},
        "annotations": {L.REVISION: "2"},
    }
    assert claim_patch(deployment, "t") == {
        "metadata": {"resourceVersion": "42", "annotations": {CHANGING: "t"}}
    }


def test_a_secret_patch_sets_and_removes_by_name() -> None:
    patch = secret_data_patch({"TOKEN": SecretStr("v")}, ["OLD"])
    assert patch == {"data": {"OLD": None, "TOKEN": "dg=="}}


def test_quantities_and_usage() -> None:
    assert parse_quantity("250m") == Decimal("0.250")
    assert parse_quantity("123456789n") == Decimal("0.123456789")
    assert parse_quantity("2") == Decimal(2)
    assert parse_quantity("64Mi") == Decimal(64 * 2**20)
    assert parse_quantity("1500Ki") == Decimal(1500 * 1024)
    assert parse_quantity("1k") == Decimal(1000)
    assert parse_quantity("") is None
    assert parse_quantity("lots") is None
    moment = datetime(2026, 12, 6, tzinfo=UTC)
    pods = [{"containers": [{"name": "agent", "usage": {"cpu": "500m", "memory": "10Mi"}}]}]
    stats = usage_of(pods, memory_limit_bytes=64 * 2**20, read_at=moment)
    assert stats.cpu_percent == 50.0
    assert stats.memory_bytes == 10 * 2**20
    assert stats.memory_limit_bytes == 64 * 2**20
    assert stats.pids is None
    empty = usage_of([], memory_limit_bytes=1, read_at=moment)
    assert empty.cpu_percent is None
    assert empty.memory_bytes is None


def test_a_rollback_goes_to_the_newest_earlier_or_the_named_kept_revision() -> None:
    spec = StoredSpec.model_validate_json(schema_of(agent_spec())[L.SPEC])
    kept = [spawned_revision(n, CREATED, spec) for n in (7, 6, 4)]
    assert rollback_target(kept, 7, None).number == 6
    assert rollback_target(kept, 7, 4).number == 4
    with pytest.raises(AgentNotFound):
        rollback_target(kept, 7, 5)
    with pytest.raises(InvalidSpec):
        rollback_target(kept[-1:], 4, None)


def test_undoing_a_change_restores_the_labels_and_the_template_without_its_marker() -> None:
    schema = schema_of(agent_spec())
    before = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": []}}
    patched = {
        "metadata": {
            "resourceVersion": "9",
            "labels": {L.REVISION: "2", "user.agents.hive.io/new": "x"},
            "annotations": {L.REVISIONS: "[]"},
        }
    }
    undo = undo_patch(patched, schema, before)
    assert "resourceVersion" not in undo["metadata"]
    assert undo["metadata"]["labels"][L.REVISION] is None
    assert undo["metadata"]["labels"]["user.agents.hive.io/new"] is None
    assert undo["metadata"]["annotations"][L.REVISIONS] is None
    assert undo["spec"]["template"]["metadata"] == {
        "labels": {"a": "b"},
        "annotations": {L.REVISION: None},
    }

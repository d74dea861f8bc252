"""A change or a rollback planned from the current spec: the policy of a spawn, by field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrators.changes import plan_change, plan_rollback
from orchestrators.errors import InvalidSpec, PolicyViolation
from orchestrators.models import AgentChange, AgentSpec, Resources, StoredSpec
from orchestrators.policy import SpawnPolicy

POLICY = SpawnPolicy(
    default_resources=Resources(cpus=0.5, memory_mb=64, pids=32),
    max_resources=Resources(cpus=2, memory_mb=1024, pids=256),
    allowed_images=("hive/*",),
)
CURRENT = StoredSpec.from_spec(
    AgentSpec.model_validate(
        {
            "name": "a",
            "image": "hive/a:1",
            "env": {"LEVEL": "info", "OLD": "x"},
            "secrets": {"TOKEN": "s3cret-value"},
            "labels": {"team": "x"},
        }
    ),
    Resources(cpus=0.5, memory_mb=64, pids=32),
)


def test_a_resize_changes_only_the_resources_named() -> None:
    plan = plan_change(
        CURRENT, AgentChange.model_validate({"resources": {"memory_mb": 128}}), POLICY
    )
    assert plan.spec.resources == Resources(cpus=0.5, memory_mb=128, pids=32)
    assert plan.changes == ("resources.memory_mb",)


def test_maps_merge_by_name_and_null_removes() -> None:
    change = AgentChange.model_validate(
        {"env": {"OLD": None, "NEW": "1"}, "secrets": {"TOKEN": "rotated", "KEY": "k"}}
    )
    plan = plan_change(CURRENT, change, POLICY)
    assert plan.spec.env == {"LEVEL": "info", "NEW": "1"}
    assert plan.spec.secret_names == ["KEY", "TOKEN"]
    assert plan.changes == ("env.NEW", "env.OLD", "secrets.KEY", "secrets.TOKEN")
    assert "rotated" not in plan.spec.model_dump_json()


def test_what_a_spawn_would_refuse_is_refused() -> None:
    with pytest.raises(PolicyViolation):
        plan_change(CURRENT, AgentChange.model_validate({"resources": {"cpus": 3}}), POLICY)
    with pytest.raises(PolicyViolation):
        plan_change(CURRENT, AgentChange.model_validate({"image": "evil/x:1"}), POLICY)
    with pytest.raises(InvalidSpec):
        plan_change(CURRENT, AgentChange.model_validate({"env": {"TOKEN": "x"}}), POLICY)


def test_an_empty_or_unknown_change_is_invalid() -> None:
    for body in ({}, {"image": None}, {"privileged": True}, {"name": "b"}):
        with pytest.raises(ValidationError):
            AgentChange.model_validate(body)


def test_a_rollback_cannot_bring_back_a_secret_value() -> None:
    later = plan_change(CURRENT, AgentChange.model_validate({"secrets": {"TOKEN": None}}), POLICY)
    with pytest.raises(InvalidSpec, match="TOKEN"):
        plan_rollback(later.spec, CURRENT, POLICY)
    back = plan_rollback(
        plan_change(CURRENT, AgentChange.model_validate({"image": "hive/a:2"}), POLICY).spec,
        CURRENT,
        POLICY,
    )
    assert back.spec == CURRENT
    assert back.changes == ("image",)

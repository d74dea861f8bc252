"""What a change (``PATCH``) or a rollback makes of an agent's spec: pure, no engine here.

Every backend plans a change the same way: the current spec (``StoredSpec``, no secret
values) and the change give the spec after it, checked by the ``SpawnPolicy`` exactly as a
spawn would be, and the list of what changed, by field. The backend then decides what it
can change in place and what needs a new process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import SecretStr

from .errors import AgentNotFound, InvalidSpec
from .models import AgentChange, AgentSpec, ResourceRequest, Revision, StoredSpec
from .policy import SpawnPolicy

__all__ = [
    "KEPT_REVISIONS",
    "RESOURCE_CHANGES",
    "Plan",
    "plan_change",
    "plan_rollback",
    "rollback_target",
    "spawned_revision",
]

#: How many revisions of an agent are kept (the newest); older ones are forgotten.
KEPT_REVISIONS = 10
#: The changes every backend can make without a new process.
RESOURCE_CHANGES = frozenset({"resources.cpus", "resources.memory_mb", "resources.pids"})


@dataclass(frozen=True, slots=True)
class Plan:
    """The spec after a change, the secret values it sets, and what changed."""

    spec: StoredSpec
    changes: tuple[str, ...]
    secrets: Mapping[str, SecretStr] = field(default_factory=dict)  # set or replaced

    def only(self, fields: frozenset[str]) -> bool:
        """True when every change is one of ``fields``."""
        return all(change in fields for change in self.changes)


def _merged(current: Mapping[str, str], patch: Mapping[str, str | None] | None) -> dict[str, str]:
    merged = dict(current)
    for key, value in (patch or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _map_changes(kind: str, before: Mapping[str, object], after: Mapping[str, object]) -> list[str]:
    keys = sorted(set(before) | set(after))
    return [f"{kind}.{key}" for key in keys if before.get(key) != after.get(key)]


def differences(
    before: StoredSpec, after: StoredSpec, rotated: frozenset[str] = frozenset()
) -> tuple[str, ...]:
    """What changed from ``before`` to ``after`` by field; ``rotated`` secrets count as
    changed (their names only, never their values)."""
    found: list[str] = []
    for name in ("image", "command", "restart_policy", "ttl_seconds"):
        if getattr(before, name) != getattr(after, name):
            found.append(name)
    for name in ("cpus", "memory_mb", "pids"):
        if getattr(before.resources, name) != getattr(after.resources, name):
            found.append(f"resources.{name}")
    found += _map_changes("env", before.env, after.env)
    found += _map_changes("labels", before.labels, after.labels)
    names_before, names_after = set(before.secret_names), set(after.secret_names)
    secrets = (names_before ^ names_after) | (rotated & names_after)
    found += [f"secrets.{name}" for name in sorted(secrets)]
    return tuple(found)


def _checked(
    current: StoredSpec, after: StoredSpec, secrets: Mapping[str, SecretStr], policy: SpawnPolicy
) -> StoredSpec:
    """``after`` with its resources resolved, or the refusal a spawn of it would get."""
    if set(after.env) & set(after.secret_names):
        raise InvalidSpec("a name is used both in env and in secrets")
    if after.image != current.image:
        policy.check_image(after.image)
    asked = AgentSpec(
        name=after.name,
        image=after.image,
        command=after.command,
        env=after.env,
        secrets=dict(secrets),
        labels=after.labels,
        resources=ResourceRequest(**after.resources.model_dump()),
        restart_policy=after.restart_policy,
        workspace=after.workspace,
        network=after.network,
        ttl_seconds=after.ttl_seconds,
    )
    policy.check_size(asked)
    return after.model_copy(update={"resources": policy.resolve_resources(asked)})


def plan_change(current: StoredSpec, change: AgentChange, policy: SpawnPolicy) -> Plan:
    """The agent's spec after ``change``, refused as a spawn of it would be."""
    asked = change.resources or ResourceRequest()
    resources = current.resources.model_copy(
        update={k: v for k, v in asked.model_dump().items() if v is not None}
    )
    secrets = {k: v for k, v in (change.secrets or {}).items() if v is not None}
    removed = {k for k, v in (change.secrets or {}).items() if v is None}
    after = current.model_copy(
        update={
            "image": change.image or current.image,
            "command": change.command if change.command is not None else current.command,
            "env": _merged(current.env, change.env),
            "labels": _merged(current.labels, change.labels),
            "secret_names": sorted((set(current.secret_names) | set(secrets)) - removed),
            "resources": resources,
            "restart_policy": change.restart_policy or current.restart_policy,
            "ttl_seconds": change.ttl_seconds or current.ttl_seconds,
        }
    )
    after = _checked(current, after, secrets, policy)
    changes = differences(current, after, frozenset(secrets))
    if change.ttl_seconds is not None and "ttl_seconds" not in changes:
        changes += ("ttl_seconds",)  # the same TTL again still moves the deadline
    return Plan(spec=after, changes=changes, secrets=secrets)


def plan_rollback(current: StoredSpec, target: StoredSpec, policy: SpawnPolicy) -> Plan:
    """Back to ``target``'s spec. Secret values are never kept, so a secret ``target`` had
    that the agent no longer has cannot come back: ``InvalidSpec`` names it."""
    missing = sorted(set(target.secret_names) - set(current.secret_names))
    if missing:
        raise InvalidSpec(
            f"secret values are not kept in revisions: set {', '.join(missing)} with a change"
        )
    after = _checked(current, target, {}, policy)
    return Plan(spec=after, changes=differences(current, after))


def spawned_revision(number: int, created_at: datetime, spec: StoredSpec) -> Revision:
    """The only revision of an agent never changed: its spawn."""
    return Revision(number=number, created_at=created_at, changes=[], restarted=False, spec=spec)


def rollback_target(kept: Sequence[Revision], current: int, to: int | None) -> Revision:
    """The revision a rollback goes back to among the ``kept`` ones: ``to``, or the newest
    before ``current``. No earlier one is ``InvalidSpec``; a ``to`` not kept (any more) is
    ``AgentNotFound``."""
    if to is None:
        earlier = [r for r in kept if r.number < current]
        if not earlier:
            raise InvalidSpec("the agent has no earlier revision to roll back to")
        return max(earlier, key=lambda r: r.number)
    for revision in kept:
        if revision.number == to:
            return revision
    raise AgentNotFound(f"revision {to} of this agent is not kept")

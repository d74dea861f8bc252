"""TTL deadlines on Docker, where a container's labels can never change after creation.

A spawn with ``ttl_seconds`` writes its deadline in the container's ``expires-at`` label.
A renewal cannot rewrite that label, so it writes a *lease*: an empty named volume (no
process, no space) labelled with the agent's id, its creation time and the new deadline.
The newest lease wins over the label; older leases are removed; the agent's delete removes
them with its other volumes, and the sweep removes any whose agent is gone. Everything is
still read back from the engine: two replicas see the same deadline.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import docker.errors
from docker import APIClient

from .. import labels as L

__all__ = ["deadline_of", "lease_prefix", "read_leases", "write_lease"]


def read_leases(api: APIClient, instance: str, agent_id: str | None = None) -> dict[str, datetime]:
    """The newest lease deadline of each agent (of one agent if ``agent_id`` is given)."""
    terms = _lease_terms(instance)
    if agent_id is not None:
        terms.append(f"{L.ID}={agent_id}")
    newest: dict[str, tuple[datetime, datetime]] = {}
    for volume in _volumes(api, terms):
        labels = volume.get("Labels") or {}
        try:
            owner_id = labels[L.ID]
            written = L.parse_moment(labels[L.CREATED_AT])
            deadline = L.parse_moment(labels[L.EXPIRES_AT])
        except (KeyError, ValueError):
            continue
        if owner_id not in newest or written > newest[owner_id][0]:
            newest[owner_id] = (written, deadline)
    return {agent: deadline for agent, (_, deadline) in newest.items()}


def deadline_of(labels: Mapping[str, str], leases: Mapping[str, datetime]) -> datetime | None:
    """The agent's deadline: its newest lease, else its label; None without a TTL."""
    if L.EXPIRES_AT not in labels:
        return None
    return leases.get(labels[L.ID]) or L.parse_moment(labels[L.EXPIRES_AT])


def write_lease(
    api: APIClient,
    *,
    prefix: str,
    instance: str,
    agent_id: str,
    owner: str,
    now: datetime,
    deadline: datetime,
) -> None:
    """Record a new deadline, then drop the leases it supersedes."""
    stamp = L.format_moment(now)
    name = f"{lease_prefix(prefix)}{agent_id}-{int(now.timestamp() * 1_000_000)}"
    api.create_volume(
        name,
        labels={
            **L.owned_labels(instance=instance, agent_id=agent_id, owner=owner, kind=L.Kind.LEASE),
            L.CREATED_AT: stamp,
            L.EXPIRES_AT: L.format_moment(deadline),
        },
    )
    for volume in _volumes(api, [*_lease_terms(instance), f"{L.ID}={agent_id}"]):
        if volume["Name"] != name:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                api.remove_volume(volume["Name"], force=True)


def lease_prefix(prefix: str) -> str:
    """How the names of the leases of the platform whose resource prefix is ``prefix`` begin."""
    return f"{prefix}lease-"


def _lease_terms(instance: str) -> list[str]:
    return [
        f"{L.MANAGED_BY}={L.MANAGED_BY_VALUE}",
        f"{L.INSTANCE}={instance}",
        f"{L.KIND}={L.Kind.LEASE}",
    ]


def _volumes(api: APIClient, label_terms: list[str]) -> list[dict[str, Any]]:
    answer = api.volumes(filters={"label": label_terms}) or {}
    volumes: list[dict[str, Any]] = answer.get("Volumes") or []
    return volumes

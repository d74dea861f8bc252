"""Objects an interrupted spawn or delete can leave behind on Docker, found and removed.

A spawn creates the workspace volume before the container; a service killed in between
leaves a volume whose agent never existed. Such volumes (and leases whose agent is gone)
are removed once older than a grace period, so a spawn still in flight, here or in another
replica, is never robbed of its volume.
"""

from __future__ import annotations

import contextlib
from collections.abc import Set
from datetime import datetime, timedelta

import docker.errors
from docker import APIClient

from .. import labels as L
from ..timestamps import parse_rfc3339

__all__ = ["remove_orphans", "remove_volumes"]


def remove_orphans(
    api: APIClient, *, instance: str, live: Set[str], now: datetime, grace: float
) -> list[str]:
    """Remove this deployment's volumes whose agent is not in ``live``; return their names."""
    terms = [f"{L.MANAGED_BY}={L.MANAGED_BY_VALUE}", f"{L.INSTANCE}={instance}"]
    answer = api.volumes(filters={"label": terms}) or {}
    removed: list[str] = []
    for volume in answer.get("Volumes") or []:
        name, labels = volume["Name"], volume.get("Labels") or {}
        if labels.get(L.ID) in live:
            continue
        created = parse_rfc3339(volume.get("CreatedAt"))
        if created is not None and now - created < timedelta(seconds=grace):
            continue
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            api.remove_volume(name, force=True)
            removed.append(name)
    return removed


def remove_volumes(api: APIClient, *, instance: str, agent_id: str) -> None:
    """Remove every volume of one agent (its workspace, its leases)."""
    terms = [f"{L.INSTANCE}={instance}", f"{L.ID}={agent_id}"]
    answer = api.volumes(filters={"label": terms}) or {}
    for volume in answer.get("Volumes") or []:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_volume(volume["Name"], force=True)

"""Each owner's agents on a Docker network of their own, created on demand, removed when idle.

An agent's name is its DNS name on its network, and names are unique only per owner: on a
network shared by owners, one owner could answer for another's agent. On ``<network>.<owner>``
(``hive-net.sol``) only that owner's agents (and whatever the operator attaches, such as the
owner's Sol) resolve, and Docker's bridge isolation keeps one owner's network from reaching
another's. agent-api's own network is none of these.
"""

from __future__ import annotations

import contextlib
from collections.abc import Set
from datetime import datetime, timedelta
from typing import Any

import docker.errors
from docker import APIClient

from .. import labels as L
from ..errors import EngineError
from ..timestamps import parse_rfc3339

__all__ = ["find_or_create", "network_name", "remove_idle_networks"]

SERVICE_ALIAS = "agent-api"


def network_name(stem: str, owner: str) -> str:
    """One per owner; an owner name has no '.', so no two (stem, owner) pairs collide."""
    return f"{stem}.{owner}"


def find_or_create(
    api: APIClient, name: str, *, instance: str, owner: str, service_container: str | None
) -> str:
    """The id of the network called ``name``, created if missing.

    Docker does not keep network names unique: replicas racing to create it can make two.
    Every replica then settles on the one with the smallest id, removes the others if
    nothing is attached to them, and attaches agents by id, never by the ambiguous name.
    """

    def same_name() -> list[dict[str, Any]]:
        found = [n for n in api.networks(names=[name]) if n.get("Name") == name]
        return sorted(found, key=lambda n: str(n["Id"]))

    found = same_name()
    if not found:
        try:
            api.create_network(
                name,
                driver="bridge",
                check_duplicate=True,
                labels={
                    L.MANAGED_BY: L.MANAGED_BY_VALUE,
                    L.INSTANCE: instance,
                    L.OWNER: owner,
                    L.KIND: L.Kind.NETWORK.value,
                },
            )
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: another replica created it first
                # Typically the engine's address pools are used up (see the README).
                explanation = str(exc.explanation or exc)[:300]
                raise EngineError(
                    f"the agents' network {name} could not be created: {explanation}"
                ) from exc
        found = same_name()
    for duplicate in found[1:]:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_network(duplicate["Id"])
    network_id = str(found[0]["Id"])
    if service_container:
        _attach_service(api, network_id, service_container)
    return network_id


def _attach_service(api: APIClient, network_id: str, container: str) -> None:
    """The operator's opt-in: agent-api joins the owner's network, reachable as agent-api."""
    try:
        api.connect_container_to_network(container, network_id, aliases=[SERVICE_ALIAS])
    except docker.errors.APIError as exc:
        if "already exists" not in str(exc.explanation or exc):
            raise


def remove_idle_networks(
    api: APIClient,
    *,
    instance: str,
    busy_owners: Set[str],
    now: datetime,
    grace: float,
    service_container: str | None,
) -> list[str]:
    """Remove this deployment's owner networks that no container uses; return their names.

    A network younger than ``grace`` is kept (a spawn may be about to use it). A container
    on it that is stopped keeps it too: its start would fail without it. A spawn that loses
    the race with a removal looks the network up again and creates it anew.
    """
    terms = [
        f"{L.MANAGED_BY}={L.MANAGED_BY_VALUE}",
        f"{L.INSTANCE}={instance}",
        f"{L.KIND}={L.Kind.NETWORK}",
    ]
    removed: list[str] = []
    for network in api.networks(filters={"label": terms}):
        labels = network.get("Labels") or {}
        if labels.get(L.OWNER) in busy_owners:
            continue
        created = parse_rfc3339(network.get("Created"))
        if created is None or now - created < timedelta(seconds=grace):
            continue
        users = api.containers(all=True, filters={"network": [network["Id"]]})
        if any(not _is_service(c, service_container) for c in users):
            continue
        with contextlib.suppress(docker.errors.APIError):
            for container in users:
                api.disconnect_container_from_network(container["Id"], network["Id"], force=True)
            api.remove_network(network["Id"])
            removed.append(str(network["Name"]))
    return removed


def _is_service(container: dict[str, Any], service: str | None) -> bool:
    if not service:
        return False
    names = {name.lstrip("/") for name in container.get("Names") or []}
    return service in names or str(container.get("Id", "")).startswith(service)

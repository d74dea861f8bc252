"""A change Docker cannot make in place: a new container for the same agent, crash-safe.

Docker cannot change a container's image, environment, command or labels, so such a change
makes a new container with the agent's id, name, owner, workspace volume and network alias,
at the new revision (its ``revision`` label). The order keeps exactly one agent whatever
step a killed service stops at:

1. the revision is claimed (``revisions.claim``: the record says ``replace``);
2. the old container is stopped (its grace waited on the event loop);
3. the new one is created under a temporary name (``<name>_r<n>``: ``_`` never occurs in an
   agent's name) without starting it: the lookup then sees the newest revision only;
4. the old one is removed, the new one renamed to the agent's name and started.

The sweep (``repair``) finishes a replacement stopped after step 3 and undoes one stopped
before it (the record is dropped, the old container started again if it ran).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

import docker.errors
from docker import APIClient

from .. import labels as L
from .api import Container, update_limits
from .revisions import LIVE, REPLACE, AgentRevisions, Record, forget

__all__ = [
    "finish",
    "newest_per_agent",
    "reapply_in_place",
    "repair",
    "secret_values",
    "temporary_name",
]


def temporary_name(name: str, number: int) -> str:
    """The new container's name until the old one is gone."""
    return f"{name}_r{number}"


def secret_values(api: APIClient, container_id: str, names: Iterable[str]) -> dict[str, str]:
    """The values of the named secrets, as the running container holds them (the only place
    they are kept on Docker)."""
    wanted = set(names)
    env = (api.inspect_container(container_id).get("Config") or {}).get("Env") or []
    found: dict[str, str] = {}
    for item in env:
        key, _, value = str(item).partition("=")
        if key in wanted:
            found[key] = value
    return found


def finish(api: APIClient, *, old: Iterable[str], new: str, name: str, start: bool) -> None:
    """Steps 4: the old containers removed, the new one named and (if ``start``) started."""
    for container_id in old:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(container_id, force=True)
    info = api.inspect_container(new)
    if str(info.get("Name", "")).lstrip("/") != name:
        api.rename(new, name)
    if start and not (info.get("State") or {}).get("Running"):
        api.start(new)


def newest_per_agent(containers: Iterable[Container]) -> list[Container]:
    """One container per agent: the one at the newest revision (a replacement in flight
    briefly has two)."""
    chosen: dict[str, Container] = {}
    for container in containers:
        known = chosen.get(container.agent_id)
        if known is None or L.revision_of(container.labels) > L.revision_of(known.labels):
            chosen[container.agent_id] = container
    return list(chosen.values())


def repair(
    api: APIClient,
    containers: Sequence[Container],
    records: Mapping[str, Sequence[Record]],
    *,
    name_of: Callable[[Container], str],
    now: datetime,
    grace: float,
) -> list[str]:
    """Finish or undo the replacements older than ``grace`` that a killed service left;
    return the agents repaired. ``name_of`` is the name an agent's container should have."""
    by_agent: dict[str, list[Container]] = {}
    for container in containers:
        by_agent.setdefault(container.agent_id, []).append(container)
    repaired: list[str] = []
    for agent_id, mine in by_agent.items():
        top = next(iter(records.get(agent_id, ())), None)
        if top is None or top.mode != REPLACE or now - top.written < timedelta(seconds=grace):
            continue
        made = max(L.revision_of(c.labels) for c in mine)
        if top.number > made:  # stopped before the new container existed: undo
            forget(api, [top])
            if top.was_running:
                for container in mine:
                    if container.state != "running":
                        with contextlib.suppress(docker.errors.APIError):
                            api.start(container.id)
            repaired.append(agent_id)
            continue
        new = next(c for c in mine if L.revision_of(c.labels) == made)
        old = [c.id for c in mine if c.id != new.id]
        temporary = new.name != name_of(new)
        if old or temporary or (top.was_running and new.state == "created"):
            finish(api, old=old, new=new.id, name=name_of(new), start=top.was_running)
            repaired.append(agent_id)
    return repaired


def reapply_in_place(
    api: APIClient,
    containers: Sequence[Container],
    records: Mapping[str, Sequence[Record]],
    *,
    now: datetime,
    window: float,
    timeout: float,
) -> list[str]:
    """Make the engine's limits those of the newest change made in place, for the changes of
    the last ``window`` seconds: a service killed between recording such a change and
    making it leaves the record ahead of the engine. Returns the agents corrected."""
    corrected: list[str] = []
    for container in newest_per_agent(containers):
        revs = AgentRevisions(L.revision_of(container.labels), records.get(container.agent_id, ()))
        live = revs.in_place
        if live is None or live.mode != LIVE or now - live.written > timedelta(seconds=window):
            continue
        want = live.spec
        host = api.inspect_container(container.id).get("HostConfig") or {}
        engine = (
            host.get("NanoCpus"),
            host.get("Memory"),
            host.get("PidsLimit"),
            (host.get("RestartPolicy") or {}).get("Name"),
        )
        wanted = (
            int(want.resources.cpus * 1e9),
            want.resources.memory_mb * 1024 * 1024,
            want.resources.pids,
            want.restart_policy,
        )
        if engine != wanted:
            with contextlib.suppress(docker.errors.APIError):
                update_limits(
                    api,
                    container.id,
                    resources=want.resources,
                    restart_policy=want.restart_policy,
                    timeout=timeout,
                )
                corrected.append(container.agent_id)
    return corrected

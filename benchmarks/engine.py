"""The raw engine: the baseline's HTTP client over the unix socket, the fleet, the cleanup.

Baseline calls go straight to the engine's HTTP API with httpx over the same unix socket
the service uses, with the same label filters and the same container description (built by
``orchestrators.docker.objects.build_container`` with ``orchestrators.labels``), so that
the only difference between the two sides of a figure is the service itself. The fleet of
sleepers is created the same way, straight on the engine and in parallel, because it is
set-up, not a measurement. Everything the suite creates carries the run's prefix and is
removed by ``remove_resources``.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import docker
import docker.errors
import docker.types
import httpx

from orchestrators import labels as L
from orchestrators.docker.objects import ContainerRequest, build_container
from orchestrators.models import AgentSpec, NetworkChoice, ResourceRequest, Resources, StoredSpec

__all__ = [
    "SLEEPER_COMMAND",
    "SLEEPER_RESOURCES",
    "EngineCallFailed",
    "FleetAgent",
    "RawEngine",
    "create_fleet",
    "docker_api",
    "engine_socket",
    "remove_resources",
    "sleeper_request",
    "sleeper_spec",
]

SLEEPER_COMMAND = ("sleep", "86400")
SLEEPER_RESOURCES = Resources(cpus=0.1, memory_mb=16, pids=16)
_DEFAULT_SOCKET = "/var/run/docker.sock"


class EngineCallFailed(RuntimeError):
    """The engine answered a baseline call with an unexpected status."""


def engine_socket() -> str:
    """The unix socket of the engine (``DOCKER_HOST`` if it names one)."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host:
        return _DEFAULT_SOCKET
    if host.startswith("unix://"):
        return host.removeprefix("unix://")
    raise RuntimeError(f"the baseline talks to the engine over a unix socket, not {host!r}")


def docker_api(timeout: float = 120.0) -> Any:
    """The docker SDK's low-level client, for set-up and cleanup only (never measured)."""
    return docker.APIClient(base_url=f"unix://{engine_socket()}", version="auto", timeout=timeout)


@dataclass(frozen=True, slots=True)
class FleetAgent:
    """One managed sleeper: its agent id (what the API takes), its container id, and whether
    it was started."""

    agent_id: str
    container_id: str
    name: str
    running: bool = True


def sleeper_spec(name: str, image: str, *, network: NetworkChoice = "default") -> AgentSpec:
    """A busybox sleeper: restart policy "no", small limits."""
    return AgentSpec(
        name=name,
        image=image,
        command=list(SLEEPER_COMMAND),
        restart_policy="no",
        resources=ResourceRequest(
            cpus=SLEEPER_RESOURCES.cpus,
            memory_mb=SLEEPER_RESOURCES.memory_mb,
            pids=SLEEPER_RESOURCES.pids,
        ),
        network=network,
    )


def sleeper_request(
    spec: AgentSpec, *, owner: str, prefix: str, network: str
) -> tuple[str, ContainerRequest]:
    """A new agent id and the container the service would build for ``spec``.

    The labels are the service's own (``instance`` derives from the resource prefix as in
    the service), so the service sees these agents as its own.
    """
    agent_id = uuid.uuid4().hex
    labels = L.system_labels(
        instance=L.instance_name(prefix),
        agent_id=agent_id,
        owner=owner,
        created_at=datetime.now(UTC),
        spec=StoredSpec.from_spec(spec, SLEEPER_RESOURCES),
        idempotency=None,
    )
    request = build_container(
        spec,
        labels=labels,
        owner=owner,
        resources=SLEEPER_RESOURCES,
        prefix=prefix,
        network=network,
        volume=None,
        workspace_path="/workspace",
    )
    return agent_id, request


class RawEngine:
    """Baseline calls over the unix socket with httpx: one keep-alive connection, no SDK."""

    def __init__(self, socket_path: str | None = None, timeout: float = 120.0) -> None:
        self._http = httpx.Client(
            transport=httpx.HTTPTransport(uds=socket_path or engine_socket()),
            base_url="http://docker",
            timeout=timeout,
        )
        answer = self._http.get("/version")
        answer.raise_for_status()
        self.version: dict[str, Any] = answer.json()
        self.api_version = str(self.version["ApiVersion"])
        self._base = f"/v{self.api_version}"

    def close(self) -> None:
        self._http.close()

    def _check(self, response: httpx.Response, *expected: int) -> httpx.Response:
        if response.status_code not in expected:
            raise EngineCallFailed(
                f"{response.request.method} {response.request.url.path} answered "
                f"{response.status_code}: {response.text[:200]}"
            )
        return response

    def list_containers(self, label_terms: Sequence[str]) -> httpx.Response:
        """``GET /containers/json?all=1`` with the label filter the service sends."""
        params = {"all": "1", "filters": json.dumps({"label": list(label_terms)})}
        return self._check(self._http.get(f"{self._base}/containers/json", params=params), 200)

    def inspect(self, container_id: str) -> httpx.Response:
        return self._check(self._http.get(f"{self._base}/containers/{container_id}/json"), 200)

    def create(self, request: ContainerRequest) -> str:
        """``POST /containers/create`` with the body the SDK would send for ``request``."""
        answer = self._http.post(
            f"{self._base}/containers/create",
            params={"name": request.name},
            json=container_config(request, self.api_version),
        )
        created: str = self._check(answer, 201).json()["Id"]
        return created

    def start(self, container_id: str) -> httpx.Response:
        path = f"{self._base}/containers/{container_id}/start"
        return self._check(self._http.post(path), 204, 304)

    def stop(self, container_id: str, timeout: int) -> httpx.Response:
        path = f"{self._base}/containers/{container_id}/stop"
        return self._check(self._http.post(path, params={"t": str(timeout)}), 204, 304)

    def update(self, container_id: str, body: dict[str, Any]) -> httpx.Response:
        """``POST /containers/{id}/update``: limits changed in place."""
        path = f"{self._base}/containers/{container_id}/update"
        return self._check(self._http.post(path, json=body), 200)

    def rename(self, container_id: str, name: str) -> httpx.Response:
        path = f"{self._base}/containers/{container_id}/rename"
        return self._check(self._http.post(path, params={"name": name}), 204)

    def remove(self, container_id: str) -> httpx.Response:
        params = {"v": "False", "link": "False", "force": "True"}
        path = f"{self._base}/containers/{container_id}"
        return self._check(self._http.delete(path, params=params), 204)


def container_config(request: ContainerRequest, api_version: str) -> dict[str, Any]:
    """The JSON body of ``POST /containers/create`` exactly as the SDK builds it."""
    kwargs = request.kwargs()
    kwargs.pop("name")
    config: dict[str, Any] = dict(docker.types.ContainerConfig(api_version, **kwargs))
    return {key: value for key, value in config.items() if value is not None}


def create_fleet(
    api: Any,
    *,
    image: str,
    owner: str,
    prefix: str,
    network: str,
    names: Iterable[str],
    workers: int,
    started: int | None = None,
) -> list[FleetAgent]:
    """Create one sleeper per name, ``workers`` at a time, straight on the engine, and start
    the first ``started`` of them (all by default).

    Fleet sleepers have no network (``"network": "none"``): a list does not depend on it,
    and thousands of endpoints on one bridge would only slow the set-up down. A sleeper
    created but not started has no runtime shim, so thousands of them fit a small host.
    """

    def one(item: tuple[int, str]) -> FleetAgent:
        index, name = item
        spec = sleeper_spec(name, image, network="none")
        agent_id, request = sleeper_request(spec, owner=owner, prefix=prefix, network=network)
        container_id: str = api.create_container(**request.kwargs())["Id"]
        running = started is None or index < started
        if running:
            api.start(container_id)
        return FleetAgent(agent_id, container_id, name, running)

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="fleet") as pool:
        return list(pool.map(one, enumerate(names)))


def remove_resources(api: Any, *, prefix: str, network: str, workers: int = 8) -> int:
    """Remove every container and volume named ``prefix*`` and the networks; the count removed.

    Only names under the run's prefix are touched, so other users of the engine keep theirs.
    """
    containers = [
        c["Id"]
        for c in api.containers(all=True, filters={"name": prefix})
        if any(n.lstrip("/").startswith(prefix) for n in c.get("Names") or [])
    ]

    def remove(container_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(container_id, force=True)

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="cleanup") as pool:
        list(pool.map(remove, containers))
    for volume in (api.volumes() or {}).get("Volumes") or []:
        if str(volume.get("Name", "")).startswith(prefix):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_volume(volume["Name"], force=True)
    for found in api.networks(names=[network]):
        # The network and the owners' agent networks made from it (<network>.<owner>).
        if found.get("Name") == network or str(found.get("Name")).startswith(f"{network}."):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_network(found["Id"])
    return len(containers)

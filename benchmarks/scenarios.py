"""The measured operations, each timed through the service and straight on the engine.

``Bench`` holds what every phase shares: the service, an httpx client for it, the raw
engine client, the fleet and the owners. Each function measures one figure and returns it;
the order of phases and the cleanup are ``suite``'s business.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import queue
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx

from orchestrators import labels as L

from .config import BenchConfig
from .drivers import paired_rounds, run_concurrently, sustained_load
from .engine import (
    FleetAgent,
    RawEngine,
    engine_socket,
    sleeper_request,
    sleeper_spec,
)
from .rawhttp import RawTarget
from .results import Comparison, ConcurrentSpawns, LoadRun, LoopWatch, Side
from .service import Service

__all__ = [
    "Bench",
    "ProxyError",
    "measure_concurrent_spawns",
    "measure_get",
    "measure_lifecycle",
    "measure_list",
    "measure_load",
    "measure_loop_watch",
]

_LAST_PAGE = b'"next_cursor":null}'


class ProxyError(RuntimeError):
    """The service answered a benchmark request with an unexpected status."""


@dataclass(slots=True)
class Bench:
    """The service, both clients, the fleet and the owners of one run."""

    config: BenchConfig
    service: Service
    engine: RawEngine
    api: Any  # the docker SDK, for set-up and cleanup
    image: str
    fleet_owner: str
    spawn_owner: str
    network_id: str  # agents are attached by id, as the service attaches them
    proxy: httpx.Client = field(init=False)
    fleet: list[FleetAgent] = field(default_factory=list)
    _names: Iterator[int] = field(default_factory=itertools.count)
    _rng: random.Random = field(default_factory=lambda: random.Random(20261120))  # noqa: S311

    def __post_init__(self) -> None:
        self.proxy = self.new_proxy_client()

    def new_proxy_client(self) -> httpx.Client:
        return httpx.Client(base_url=self.service.url, headers=self.service.headers, timeout=120)

    def close(self) -> None:
        self.proxy.close()

    def fresh_name(self, side: str) -> str:
        return f"{side}-{next(self._names):05d}"

    @property
    def fleet_terms(self) -> list[str]:
        """The label filter the service sends for ``GET /v1/agents?owner=<fleet owner>``."""
        instance = L.instance_name(self.config.prefix)
        terms = L.selector(instance=instance, owner=self.fleet_owner)
        return [f"{k}={v}" for k, v in terms.items()]

    def sample_fleet(self, count: int) -> list[FleetAgent]:
        return [self._rng.choice(self.fleet) for _ in range(count)]

    # -- one call each, checked ------------------------------------------------------------

    def proxy_list(self, client: httpx.Client | None = None) -> int:
        """Every fleet agent through ``GET /v1/agents`` (pages of 1000); the pages read."""
        client = client or self.proxy
        params = {"owner": self.fleet_owner, "limit": "1000"}
        pages = 0
        while True:
            response = _expect(client.get("/v1/agents", params=params), 200)
            pages += 1
            if response.content.endswith(_LAST_PAGE):
                return pages
            params["cursor"] = response.json()["next_cursor"]

    def proxy_count(self) -> int:
        params = {"owner": self.fleet_owner, "limit": "1000"}
        count = 0
        while True:
            body = _expect(self.proxy.get("/v1/agents", params=params), 200).json()
            count += len(body["items"])
            if body["next_cursor"] is None:
                return count
            params["cursor"] = body["next_cursor"]

    def proxy_spawn(self, name: str, client: httpx.Client | None = None) -> str:
        spec = sleeper_spec(name, self.image)
        body = spec.model_dump(
            mode="json", exclude={"secrets", "env", "labels", "workspace", "ttl_seconds"}
        )
        response = (client or self.proxy).post(
            "/v1/agents", params={"owner": self.spawn_owner}, json=body
        )
        agent = _expect(response, 201).json()
        if agent["status"] != "running":
            raise ProxyError(f"a spawn answered status {agent['status']!r}")
        agent_id: str = agent["id"]
        return agent_id

    def engine_spawn(self, name: str, engine: RawEngine | None = None) -> str:
        spec = sleeper_spec(name, self.image)
        _, request = sleeper_request(
            spec,
            owner=self.spawn_owner,
            prefix=self.config.prefix,
            network=self.network_id,
        )
        engine = engine or self.engine
        container_id = engine.create(request)
        engine.start(container_id)
        return container_id

    def proxy_action(self, agent_id: str, action: str) -> None:
        if action == "delete":
            _expect(self.proxy.delete(f"/v1/agents/{agent_id}"), 204)
            return
        params = {"timeout": "0"} if action == "stop" else {}
        agent = _expect(self.proxy.post(f"/v1/agents/{agent_id}/{action}", params=params), 200)
        wanted = "stopped" if action == "stop" else "running"
        if agent.json()["status"] != wanted:
            raise ProxyError(f"{action} left the agent {agent.json()['status']!r}")

    def engine_action(self, container_id: str, action: str) -> None:
        if action == "delete":
            self.engine.remove(container_id)
        elif action == "stop":
            self.engine.stop(container_id, 0)
        else:
            self.engine.start(container_id)

    def remove_containers(self, ids: list[str]) -> None:
        """Untimed cleanup of spawned containers (by container id or by agent id)."""

        def remove(ref: str) -> None:
            if len(ref) == 32:  # an agent id: find its container
                found = self.api.containers(all=True, filters={"label": [f"{L.ID}={ref}"]})
                for container in found:
                    self.api.remove_container(container["Id"], force=True)
            else:
                self.api.remove_container(ref, force=True)

        with ThreadPoolExecutor(self.config.fleet_workers) as pool:
            list(pool.map(remove, ids))


def _expect(response: httpx.Response, status: int) -> httpx.Response:
    if response.status_code != status:
        raise ProxyError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}: {response.text[:300]}"
        )
    return response


# -- figures ------------------------------------------------------------------------------


def measure_list(bench: Bench, size: int) -> Comparison:
    """The whole fleet: ``GET /v1/agents`` vs ``GET /containers/json`` with the same filter."""
    config = bench.config
    raw = len(bench.engine.list_containers(bench.fleet_terms).json())
    # The fleet is made on the engine directly: the service's model learns of it from the
    # watch, a moment later. Timing starts once it has.
    listed = bench.proxy_count()
    deadline = time.monotonic() + 30
    while listed != raw and time.monotonic() < deadline:
        time.sleep(0.1)
        listed = bench.proxy_count()
    if listed != size or raw != size:
        raise ProxyError(f"expected {size} agents, the service listed {listed}, the engine {raw}")
    terms = bench.fleet_terms
    # A list of thousands takes the engine a good part of a second on a small host: fewer
    # calls per repetition there, never fewer than 8.
    calls = max(8, min(config.list_requests, 8000 // size))
    proxy, engine = paired_rounds(
        config.repetitions,
        calls,
        lambda _: bench.proxy_list(),
        lambda _: bench.engine.list_containers(terms),
    )
    return Comparison("list", size, proxy, engine)


def measure_get(bench: Bench, size: int) -> Comparison:
    """One agent by id vs the engine's inspect of its container (same agent in each pair)."""
    config = bench.config
    subjects = bench.sample_fleet(config.get_requests)
    proxy, engine = paired_rounds(
        config.repetitions,
        config.get_requests,
        lambda i: _expect(bench.proxy.get(f"/v1/agents/{subjects[i].agent_id}"), 200),
        lambda i: bench.engine.inspect(subjects[i].container_id),
    )
    return Comparison("get", size, proxy, engine)


def measure_lifecycle(bench: Bench, size: int) -> list[Comparison]:
    """Spawn, then stop, start and delete what was spawned, each side its own agents."""
    config = bench.config
    figures = {op: Comparison(op, size) for op in ("spawn", "stop", "start", "delete")}
    # Warm-up: the first spawn of a service checks the network and the image.
    bench.proxy_action(bench.proxy_spawn(bench.fresh_name("p")), "delete")
    bench.engine_action(bench.engine_spawn(bench.fresh_name("e")), "delete")
    for _ in range(config.spawn_repetitions):
        count = config.spawns_per_repetition
        proxy_names = [bench.fresh_name("p") for _ in range(count)]
        engine_names = [bench.fresh_name("e") for _ in range(count)]
        agents = [""] * count
        containers = [""] * count

        def spawn_proxy(i: int, agents: list[str] = agents, names: list[str] = proxy_names) -> None:
            agents[i] = bench.proxy_spawn(names[i])

        def spawn_engine(
            i: int, containers: list[str] = containers, names: list[str] = engine_names
        ) -> None:
            containers[i] = bench.engine_spawn(names[i])

        try:
            proxy, engine = paired_rounds(1, count, spawn_proxy, spawn_engine, warmup=0)
            figures["spawn"].proxy += proxy
            figures["spawn"].engine += engine
            for action in ("stop", "start", "delete"):
                proxy, engine = paired_rounds(
                    1,
                    count,
                    functools.partial(_act_proxy, bench, agents, action),
                    functools.partial(_act_engine, bench, containers, action),
                    warmup=0,
                )
                figures[action].proxy += proxy
                figures[action].engine += engine
        except BaseException:
            bench.remove_containers([ref for ref in (*agents, *containers) if ref])
            raise
    return list(figures.values())


def _act_proxy(bench: Bench, agents: list[str], action: str, i: int) -> None:
    bench.proxy_action(agents[i], action)


def _act_engine(bench: Bench, containers: list[str], action: str, i: int) -> None:
    bench.engine_action(containers[i], action)


@contextmanager
def _client_pool(
    count: int, make: Callable[[], Any], close: Callable[[Any], None]
) -> Iterator[queue.Queue[Any]]:
    """``count`` clients made up front, checked out one per concurrent call."""
    pool: queue.Queue[Any] = queue.Queue()
    made = [make() for _ in range(count)]
    for item in made:
        pool.put(item)
    try:
        yield pool
    finally:
        for item in made:
            close(item)


def measure_concurrent_spawns(bench: Bench, size: int, rounds: int = 2) -> ConcurrentSpawns:
    """``concurrent_spawns`` spawns by ``spawn_clients`` clients, rounds alternating sides."""
    config = bench.config
    figure = ConcurrentSpawns(config.concurrent_spawns, config.spawn_clients, size)
    clients = config.spawn_clients
    for round_index in range(rounds):
        sides: tuple[Side, Side] = (
            ("engine", "proxy")
            if round_index % 2 == 0
            else (
                "proxy",
                "engine",
            )
        )
        for side in sides:
            made: list[str] = []
            names = [bench.fresh_name(side[0]) for _ in range(config.concurrent_spawns)]
            try:
                if side == "proxy":
                    with _client_pool(clients, bench.new_proxy_client, httpx.Client.close) as pool:

                        def spawn_proxy(
                            i: int,
                            pool: queue.Queue[Any] = pool,
                            made: list[str] = made,
                            names: list[str] = names,
                        ) -> None:
                            client = pool.get()
                            try:
                                made.append(bench.proxy_spawn(names[i], client))
                            finally:
                                pool.put(client)

                        wall, latencies = run_concurrently(len(names), clients, spawn_proxy)
                    figure.proxy_walls.append(wall)
                    figure.proxy_latencies += latencies
                else:
                    with _client_pool(clients, RawEngine, RawEngine.close) as pool:

                        def spawn_engine(
                            i: int,
                            pool: queue.Queue[Any] = pool,
                            made: list[str] = made,
                            names: list[str] = names,
                        ) -> None:
                            engine = pool.get()
                            try:
                                made.append(bench.engine_spawn(names[i], engine))
                            finally:
                                pool.put(engine)

                        wall, latencies = run_concurrently(len(names), clients, spawn_engine)
                    figure.engine_walls.append(wall)
                    figure.engine_latencies += latencies
            finally:
                bench.remove_containers(made)
    return figure


def _load_targets(bench: Bench, side: Side) -> tuple[str, Callable[[FleetAgent], str], str]:
    """The list URL, the get URL of an agent, and the probe URL of one side."""
    if side == "proxy":
        list_url = "/v1/agents?" + urlencode({"owner": bench.fleet_owner, "limit": "1000"})
        return list_url, (lambda a: f"/v1/agents/{a.agent_id}"), "/healthz"
    base = f"/v{bench.engine.api_version}"
    filters = json.dumps({"label": bench.fleet_terms})
    list_url = f"{base}/containers/json?" + urlencode({"all": "1", "filters": filters})
    return list_url, (lambda a: f"{base}/containers/{a.container_id}/json"), "/_ping"


def _load_target(bench: Bench, side: Side, service: Service) -> RawTarget:
    """Where one side's sustained load goes: the service over TCP, the engine's socket."""
    if side == "proxy":
        return RawTarget(port=service.port, headers=tuple(service.headers.items()))
    return RawTarget(host="docker", unix_socket=engine_socket())


def _run_load(bench: Bench, side: Side, seconds: float, service: Service) -> tuple[LoadRun, int]:
    config = bench.config
    list_url, get_url, probe_url = _load_targets(bench, side)
    subjects = bench.sample_fleet(997)
    share = max(1, config.load_list_share)

    def pick(worker: int, iteration: int) -> tuple[str, str]:
        if (worker + iteration) % share == 0:
            return "list", list_url
        return "get", get_url(subjects[(worker * 31 + iteration) % len(subjects)])

    def sample() -> float:
        return service.memory_mb()[0]

    async def drive() -> LoadRun:
        outcome = await sustained_load(
            _load_target(bench, side, service),
            clients=config.load_clients,
            seconds=seconds,
            pick=pick,
            probe=probe_url,
            sample=sample if side == "proxy" else None,
        )
        run = LoadRun(side, config.load_clients, outcome.seconds, len(bench.fleet))
        run.latencies, run.errors = outcome.latencies, outcome.errors
        run.probe_latencies, run.rss_mb = outcome.probe_latencies, outcome.samples
        return run

    run = asyncio.run(drive())
    if side == "proxy":
        run.peak_rss_mb = service.memory_mb()[1]
    return run, run.requests


def measure_load(bench: Bench) -> list[LoadRun]:
    """Sustained load on the engine, then on the service (same mix, clients and time)."""
    seconds = bench.config.load_seconds
    return [_run_load(bench, side, seconds, bench.service)[0] for side in ("engine", "proxy")]


def measure_loop_watch(bench: Bench) -> LoopWatch:
    """The proxy's load once more, against a second service in asyncio debug mode.

    Debug mode makes asyncio log every callback or task step that holds the event loop for
    longer than 100 ms; the figure is how many it logged. It also slows the service down,
    which is why the throughput figures come from the service run normally.
    """
    config = bench.config
    watched = Service(
        prefix=config.prefix, network=config.network, extra_env={"PYTHONASYNCIODEBUG": "1"}
    )
    try:
        watched.start()
        run, _ = _run_load(bench, "proxy", config.loop_watch_seconds, watched)
        return LoopWatch(
            seconds=run.seconds,
            requests=run.requests,
            errors=run.error_count,
            slow_callbacks=watched.slow_callbacks(),
        )
    finally:
        watched.close()

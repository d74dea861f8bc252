"""``--only memory``: the service's memory and start-up with thousands of agents.

At each size (smallest first) the fleet grows to that many agents, made straight on the
engine with the service's labels (``engine.create_fleet``): ``running`` of them started,
the others created but never started (status ``pending``), so thousands fit a host that
could not run a runtime shim for each. Then a fresh service process starts; the figures:

- start-up: from the process's start to ``/readyz`` with its watch live and a full paged
  list counting every agent (the read model's snapshot);
- RSS after that snapshot, and the peak (``VmHWM``) over the size's whole run;
- the full list (every page of 1,000) and gets of a sample, against the raw engine's
  filtered list and inspect (``scenarios.measure_list`` and ``measure_get``), with one
  ``/v1/events`` stream open, and a few stops and starts whose events the stream must see.

Everything is named with the run's prefix and removed at the end, pass, fail or Ctrl-C.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial

from .config import BenchConfig
from .engine import FleetAgent, RawEngine, create_fleet, docker_api, engine_socket
from .events import EventListener
from .machine import describe_load, describe_machine
from .results import Comparison
from .scenarios import Bench, ProxyError, measure_get, measure_list
from .service import Service
from .suite import (
    Log,
    prepare_engine,
    release_engine,
    service_warnings,
    shielded,
    stderr_log,
)

__all__ = ["MUTATED", "MemoryFigure", "MemoryResults", "run_memory"]

#: Running agents stopped and started again through the service at each size.
MUTATED = 4
_STARTUP_TIMEOUT = 900.0


@dataclass(slots=True)
class MemoryFigure:
    """One fleet size: how it was made, how the service started, what it held."""

    size: int
    running: int
    created: int  # containers made for this size (the fleet grows from the last size)
    create_s: float
    startup_s: float = float("nan")
    rss_snapshot_mb: float = float("nan")
    peak_rss_mb: float = float("nan")
    comparisons: list[Comparison] = field(default_factory=list)
    events: int = 0  # events the open stream received over the size's run
    mutations: int = 0

    @property
    def list(self) -> Comparison:
        return next(c for c in self.comparisons if c.operation == "list")


@dataclass(slots=True)
class MemoryResults:
    started: str = ""
    duration_s: float = 0.0
    workers: int = 0
    machine: dict[str, str] = field(default_factory=dict)
    figures: list[MemoryFigure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _wait_listed(bench: Bench, size: int, timeout: float) -> None:
    """Until ``/readyz`` says the watch is live and the paged list counts ``size``."""
    deadline = time.monotonic() + timeout
    listed = -1
    while time.monotonic() < deadline:
        ready = bench.proxy.get("/readyz")
        if ready.status_code == 200 and ready.json().get("watch") == "live":
            listed = bench.proxy_count()
            if listed == size:
                return
        time.sleep(0.2)
    raise ProxyError(f"the service listed {listed} of {size} agents after {timeout:g} s")


def _mutate(bench: Bench, listener: EventListener) -> int:
    """Stop and start a few running agents; each change must reach the open stream."""
    running = [agent for agent in bench.fleet if agent.running][:MUTATED]
    for agent in running:
        for action, event in (("stop", "stopped"), ("start", "started")):
            mark = len(listener.received)
            bench.proxy_action(agent.agent_id, action)
            listener.wait_for(agent.agent_id, event, mark)
    return 2 * len(running)


def _measure(bench: Bench, figure: MemoryFigure) -> None:
    """Start-up, memory, reads and changes of one size, into ``figure``."""
    service, size = bench.service, figure.size
    launched = time.perf_counter()
    service.start(timeout=_STARTUP_TIMEOUT)
    _wait_listed(bench, size, _STARTUP_TIMEOUT)
    figure.startup_s = time.perf_counter() - launched
    figure.rss_snapshot_mb = service.memory_mb()[0]
    listener = EventListener(service.url, service.headers)
    try:
        figure.comparisons.append(measure_list(bench, size))
        figure.comparisons.append(measure_get(bench, size))
        figure.mutations = _mutate(bench, listener)
        figure.events = len(listener.received)
        figure.peak_rss_mb = service.memory_mb()[1]
    finally:
        listener.close()


def run_memory(config: BenchConfig, log: Log = stderr_log) -> MemoryResults:
    """Measure every size of ``config``; always leaves the engine as it found it."""
    began = time.perf_counter()
    results = MemoryResults(
        started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), workers=config.fleet_workers
    )
    api = docker_api()
    engine = RawEngine(engine_socket())
    fleet: list[FleetAgent] = []
    service: Service | None = None
    bench: Bench | None = None
    run_id = secrets.token_hex(3)
    try:
        results.machine = describe_machine(engine.version)
        image, network_id = prepare_engine(api, config, log)
        # One owner's fleet, measured by a fresh service at each size.
        bench_of = partial(
            Bench,
            config=config,
            engine=engine,
            api=api,
            image=image,
            network_id=network_id,
            fleet_owner=f"fleet{run_id}",
            spawn_owner=f"spawn{run_id}",
        )
        for size in sorted(set(config.sizes)):
            names = [f"m-{i:05d}" for i in range(len(fleet), size)]
            started = max(0, config.running - sum(agent.running for agent in fleet))
            made = time.perf_counter()
            fleet += create_fleet(
                api,
                image=image,
                owner=f"fleet{run_id}",
                prefix=config.prefix,
                network=config.network,
                names=names,
                workers=config.fleet_workers,
                started=started,
            )
            figure = MemoryFigure(
                size=size,
                running=sum(agent.running for agent in fleet),
                created=len(names),
                create_s=time.perf_counter() - made,
            )
            log(f"fleet of {size}: {len(names)} created in {figure.create_s:.0f} s")
            service = Service(prefix=config.prefix, network=config.network)
            bench = bench_of(service=service, fleet=fleet)
            _measure(bench, figure)
            log(
                f"  start-up {figure.startup_s:.1f} s, RSS after the snapshot "
                f"{figure.rss_snapshot_mb:.0f} MB, peak {figure.peak_rss_mb:.0f} MB, "
                f"list ratio p50 {figure.list.ratio(50).median:.2f}, {figure.events} events"
            )
            results.figures.append(figure)
            results.notes += [f"{size} agents: {w}" for w in service_warnings(service)]
            bench.close()
            service.close()
            bench, service = None, None
    finally:
        with shielded():
            if bench is not None:
                bench.close()
            if service is not None:
                service.close()
            results.notes.append(release_engine(api, engine, config, log))
    results.duration_s = time.perf_counter() - began
    results.machine["load average at end"] = describe_load()
    return results

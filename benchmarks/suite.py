"""One run: set up, measure every figure in order, profile what missed, clean up always.

Order: the fleet grows through the sizes (smallest first); at each size the list, get and
lifecycle figures are taken; at the largest size also the concurrent spawns, the
sustained load and the event-loop watch, and then the profiles of any missed target.
Whatever happens (an error, Ctrl-C, SIGTERM), every container and volume named with the
run's prefix and the run's network are removed before the function returns or raises.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import docker

from orchestrators import labels as L
from testenv.images import BUSYBOX_IMAGE, build_busybox_image

from .config import BenchConfig
from .engine import RawEngine, create_fleet, docker_api, engine_socket, remove_resources
from .kubernetes import kubernetes_list_comparisons, kubernetes_targets
from .machine import describe_load, describe_machine
from .profiling import record
from .results import ProfileSummary, RunResults
from .scenarios import (
    Bench,
    measure_concurrent_spawns,
    measure_get,
    measure_lifecycle,
    measure_list,
    measure_load,
    measure_loop_watch,
)
from .service import Service
from .targets import evaluate_targets

__all__ = [
    "Log",
    "cleanup",
    "leftovers",
    "prepare_engine",
    "release_engine",
    "service_warnings",
    "run_suite",
    "shielded",
    "stderr_log",
]

Log = Callable[[str], None]


def stderr_log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def shielded() -> Iterator[None]:
    """Ctrl-C and SIGTERM are ignored while the cleanup runs (it must finish)."""
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError):  # not the main thread
            previous[sig] = signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def leftovers(api: Any, prefix: str) -> list[str]:
    """Names of containers that still carry ``prefix``."""
    return [
        name.lstrip("/")
        for c in api.containers(all=True, filters={"name": prefix})
        for name in c.get("Names") or []
        if name.lstrip("/").startswith(prefix)
    ]


def cleanup(api: Any, config: BenchConfig, log: Log) -> int:
    """Remove everything named with the run's prefix and the run's network (3 tries)."""
    for attempt in range(3):
        try:
            removed = remove_resources(
                api, prefix=config.prefix, network=config.network, workers=config.fleet_workers
            )
            log(f"cleanup: removed {removed} containers and the network {config.network}")
            return removed
        except docker.errors.APIError as exc:
            log(f"cleanup attempt {attempt + 1} failed: {exc}")
            time.sleep(2)
    return remove_resources(api, prefix=config.prefix, network=config.network)


def release_engine(api: Any, engine: RawEngine, config: BenchConfig, log: Log) -> str:
    """Remove everything named with the run's prefix and close both engine clients; the
    report's note of what was left."""
    cleanup(api, config, log)
    remaining = leftovers(api, config.prefix)
    engine.close()
    api.close()
    return f"cleanup: {len(remaining)} `{config.prefix}*` containers left after the run"


def prepare_engine(api: Any, config: BenchConfig, log: Log) -> tuple[str, str]:
    """An earlier run's leftovers removed, the sleepers' image and the platform network
    ready: the image's name and the network's id."""
    earlier = leftovers(api, config.prefix)
    if earlier:
        log(f"removing {len(earlier)} containers left by an earlier run ({config.prefix}*)")
        cleanup(api, config, log)
    sdk = docker.DockerClient(base_url=f"unix://{engine_socket()}", version="auto")
    try:
        image = build_busybox_image(sdk, BUSYBOX_IMAGE)
    finally:
        sdk.close()
    return image, _ensure_network(api, config.network)


def _ensure_network(api: Any, network: str) -> str:
    """The platform network's id, created as the service creates it (the baseline needs it)."""
    found = sorted(
        (n for n in api.networks(names=[network]) if n.get("Name") == network),
        key=lambda n: str(n["Id"]),
    )
    if found:
        return str(found[0]["Id"])
    created = api.create_network(
        network, driver="bridge", labels={L.MANAGED_BY: L.MANAGED_BY_VALUE}
    )
    return str(created["Id"])


def _profiles(bench: Bench, results: RunResults, log: Log) -> None:
    config = bench.config
    if config.profile_seconds <= 0:
        return
    largest = max(config.sizes)
    wanted: dict[str, str] = {}
    for check in results.targets:
        if check.met:
            continue
        for operation in check.operations:
            kind = "lifecycle" if operation in ("spawn", "stop", "start", "delete") else operation
            if kind in ("list", "get", "lifecycle"):
                wanted.setdefault(kind, check.name)
    subjects = bench.sample_fleet(257)
    counter = iter(range(10**9))

    def cycle() -> None:
        agent = bench.proxy_spawn(bench.fresh_name("q"))
        for action in ("stop", "start", "delete"):
            bench.proxy_action(agent, action)

    drivers: dict[str, tuple[str, Callable[[], object]]] = {
        "list": ("list the fleet", bench.proxy_list),
        "get": (
            "get one agent",
            lambda: bench.proxy.get(f"/v1/agents/{subjects[next(counter) % 257].agent_id}"),
        ),
        "lifecycle": ("one spawn + stop + start + delete cycle", cycle),
    }
    for kind, target in wanted.items():
        operation, drive = drivers[kind]
        log(f"profiling {operation} ({target} missed)")
        summary = ProfileSummary(target, operation, largest, config.profile_seconds, 0)
        try:
            profile, calls = record(bench.service.pid, config.profile_seconds, drive)
            summary.requests = calls
            summary.lines = profile.summary(calls)
        except (RuntimeError, OSError) as exc:
            summary.error = str(exc)
        results.profiles.append(summary)


def run_suite(config: BenchConfig, log: Log = stderr_log) -> RunResults:
    """Measure everything ``config`` asks for; always leaves the engine as it found it."""
    started = time.perf_counter()
    results = RunResults(started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    sizes = sorted(set(config.sizes))
    api = docker_api()
    engine = RawEngine(engine_socket())
    service: Service | None = None
    bench: Bench | None = None
    try:
        results.machine = describe_machine(engine.version)
        image, network_id = prepare_engine(api, config, log)
        service = Service(prefix=config.prefix, network=config.network)
        service.start()
        run_id = secrets.token_hex(3)
        bench = Bench(
            config=config,
            service=service,
            engine=engine,
            api=api,
            image=image,
            fleet_owner=f"fleet{run_id}",
            spawn_owner=f"spawn{run_id}",
            network_id=network_id,
        )
        log(f"agent-api pid {service.pid} on {service.url}; fleet owner {bench.fleet_owner}")
        for size in sizes:
            began = time.perf_counter()
            missing = size - len(bench.fleet)
            names = [f"s-{i:05d}" for i in range(len(bench.fleet), size)]
            bench.fleet += create_fleet(
                api,
                image=image,
                owner=bench.fleet_owner,
                prefix=config.prefix,
                network=config.network,
                names=names,
                workers=config.fleet_workers,
            )
            results.fleet_setup_s[size] = time.perf_counter() - began
            took = time.perf_counter() - began
            log(f"fleet of {size}: {missing} sleepers created in {took:.0f} s")
            results.comparisons.append(measure_list(bench, size))
            log(f"  list at {size}: ratio p50 {results.comparisons[-1].ratio(50).median:.2f}")
            results.comparisons.append(measure_get(bench, size))
            log(f"  get at {size}: ratio p50 {results.comparisons[-1].ratio(50).median:.2f}")
            for figure in measure_lifecycle(bench, size):
                results.comparisons.append(figure)
                log(f"  {figure.operation} at {size}: ratio p50 {figure.ratio(50).median:.2f}")
        largest = sizes[-1]
        rounds = 2 if config.repetitions > 2 else 1
        results.concurrent.append(measure_concurrent_spawns(bench, largest, rounds))
        log(f"  concurrent spawns: wall ratio {results.concurrent[-1].ratio().median:.2f}")
        results.loads = measure_load(bench)
        for run in results.loads:
            log(f"  load {run.side}: {run.throughput:.0f} req/s, {run.error_count} errors")
        results.loop_watch = measure_loop_watch(bench)
        log(f"  loop watch: {len(results.loop_watch.slow_callbacks)} slow callbacks")
        kubernetes = kubernetes_list_comparisons(config, log)
        if isinstance(kubernetes, str):
            results.kubernetes = kubernetes
        else:
            results.comparisons += kubernetes
        results.targets = evaluate_targets(results) + kubernetes_targets(results.comparisons)
        _profiles(bench, results, log)
    except Exception as exc:
        if service is not None and service.returncode is not None:
            tail = "\n".join(service.logs().splitlines()[-20:])
            raise RuntimeError(
                f"agent-api exited with status {service.returncode}; its last lines:\n{tail}"
            ) from exc
        raise
    finally:
        with shielded():
            if bench is not None:
                bench.close()
            if service is not None:
                results.notes += service_warnings(service)
                service.close()
            results.notes.append(release_engine(api, engine, config, log))
    results.duration_s = time.perf_counter() - started
    results.machine["load average at end"] = describe_load()
    return results


def service_warnings(service: Service) -> list[str]:
    """Warnings and errors the service logged during the run (deduplicated, counted)."""
    counts: dict[str, int] = {}
    for line in service.logs().splitlines():
        if '"level": "WARNING"' in line or '"level": "ERROR"' in line:
            start = line.find('"message": ')
            message = line[start + 11 : start + 150] if start >= 0 else line[:140]
            counts[message] = counts.get(message, 0) + 1
    return [f"service log, {n} x: {message}" for message, n in sorted(counts.items())]

"""Load drivers: paired sequential timing, concurrent rounds, and sustained async load.

Sequential figures alternate the two sides call by call (engine, proxy, proxy, engine, ...)
so that both see the same background load of a shared machine. The sustained load is an
asyncio driver on a minimal HTTP/1.1 client (``rawhttp``: a Python client as heavy as httpx
would set the pace itself): ``clients`` tasks, each with a request always in flight, for a
fixed time, plus a probe that asks a trivial route every 100 ms to see how long a request
waits for the server's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from .rawhttp import RawConnection, RawTarget

__all__ = ["LoadOutcome", "paired_rounds", "run_concurrently", "sustained_load"]

Call = Callable[[int], object]


def paired_rounds(
    repetitions: int, per_repetition: int, proxy: Call, engine: Call, *, warmup: int = 2
) -> tuple[list[list[float]], list[list[float]]]:
    """Time ``per_repetition`` calls of each side per repetition, alternating the sides.

    A call gets its index within the repetition, so that both sides of a pair act on the
    same subject. Returns the latencies (seconds) per repetition for the proxy and engine.
    """
    for i in range(warmup):
        engine(i)
        proxy(i)
    proxy_reps: list[list[float]] = []
    engine_reps: list[list[float]] = []
    for rep in range(repetitions):
        p: list[float] = []
        e: list[float] = []
        for i in range(per_repetition):
            order = ((engine, e), (proxy, p)) if (i + rep) % 2 == 0 else ((proxy, p), (engine, e))
            for call, sink in order:
                started = time.perf_counter()
                call(i)
                sink.append(time.perf_counter() - started)
        proxy_reps.append(p)
        engine_reps.append(e)
    return proxy_reps, engine_reps


def run_concurrently(count: int, clients: int, call: Call) -> tuple[float, list[float]]:
    """``count`` calls by ``clients`` threads; the wall time and every call's latency."""

    def timed(i: int) -> float:
        started = time.perf_counter()
        call(i)
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(clients, thread_name_prefix="client") as pool:
        latencies = list(pool.map(timed, range(count)))
    return time.perf_counter() - started, latencies


@dataclass(slots=True)
class LoadOutcome:
    """What the sustained driver saw."""

    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    probe_latencies: list[float] = field(default_factory=list)
    samples: list[float] = field(default_factory=list)  # whatever ``sample`` returned


Pick = Callable[[int, int], tuple[str, str]]
_LOAD_TIMEOUT = 120.0  # seconds one request of the sustained load may take


async def sustained_load(
    target: RawTarget,
    *,
    clients: int,
    seconds: float,
    pick: Pick,
    probe: str,
    sample: Callable[[], float] | None = None,
) -> LoadOutcome:
    """``clients`` workers, each on its own kept-alive connection to ``target``, send GETs
    back to back for ``seconds``.

    ``pick(worker, iteration)`` names each request: ``(kind, url)``. A response other than
    2xx, a transport error or no answer within ``_LOAD_TIMEOUT`` counts as an error of its
    kind; only requests that finished are counted. ``probe`` is asked every 100 ms on a
    connection of its own, without the target's headers; ``sample`` (e.g. the server's
    memory) is called at the same pace.
    """
    outcome = LoadOutcome(seconds=seconds)
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        connection = RawConnection(target)
        iteration = 0
        try:
            while time.perf_counter() < deadline:
                kind, url = pick(index, iteration)
                iteration += 1
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(_LOAD_TIMEOUT):
                        status = await connection.get(url)
                    ok = 200 <= status < 300
                    failure = f"{kind}: HTTP {status}"
                except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
                    ok, failure = False, f"{kind}: {type(exc).__name__}"
                elapsed = time.perf_counter() - started
                if ok:
                    outcome.latencies.setdefault(kind, []).append(elapsed)
                else:
                    outcome.errors[failure] = outcome.errors.get(failure, 0) + 1
        finally:
            connection.close()

    async def prober() -> None:
        connection = RawConnection(replace(target, headers=()))
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                with contextlib.suppress(OSError, ValueError, asyncio.IncompleteReadError):
                    await connection.get(probe)
                    outcome.probe_latencies.append(time.perf_counter() - started)
                if sample is not None:
                    outcome.samples.append(sample())
                await asyncio.sleep(0.1)
        finally:
            connection.close()

    began = time.perf_counter()
    tasks: list[Awaitable[None]] = [worker(i) for i in range(clients)]
    await asyncio.gather(prober(), *tasks)
    outcome.seconds = time.perf_counter() - began
    return outcome

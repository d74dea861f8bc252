"""What a run measured: plain dataclasses that the report and the plot read."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from .stats import Spread, percentile, spread

__all__ = [
    "Comparison",
    "ConcurrentSpawns",
    "LoadRun",
    "LoopWatch",
    "ProfileSummary",
    "RunResults",
    "Side",
    "TargetCheck",
]

Side = Literal["proxy", "engine"]


@dataclass(slots=True)
class Comparison:
    """One operation at one fleet size: latencies (seconds) per repetition, for both sides."""

    operation: str
    size: int
    proxy: list[list[float]] = field(default_factory=list)
    engine: list[list[float]] = field(default_factory=list)

    def side(self, which: Side, q: float) -> Spread:
        """The ``q``-th percentile of each repetition of one side: median and range."""
        reps = self.proxy if which == "proxy" else self.engine
        return spread([percentile(rep, q) for rep in reps if rep])

    def ratio(self, q: float) -> Spread:
        """Proxy / engine of the ``q``-th percentile, per repetition: median and range."""
        values = [
            percentile(p, q) / percentile(e, q)
            for p, e in zip(self.proxy, self.engine, strict=True)
            if p and e
        ]
        return spread(values)

    @property
    def samples(self) -> int:
        return sum(len(rep) for rep in self.proxy)


@dataclass(slots=True)
class ConcurrentSpawns:
    """Rounds of ``count`` spawns by ``clients`` concurrent clients: wall time and latencies."""

    count: int
    clients: int
    size: int
    proxy_walls: list[float] = field(default_factory=list)
    engine_walls: list[float] = field(default_factory=list)
    proxy_latencies: list[float] = field(default_factory=list)
    engine_latencies: list[float] = field(default_factory=list)

    def wall(self, which: Side) -> Spread:
        return spread(self.proxy_walls if which == "proxy" else self.engine_walls)

    def ratio(self) -> Spread:
        return spread(
            [p / e for p, e in zip(self.proxy_walls, self.engine_walls, strict=True) if e > 0]
        )


@dataclass(slots=True)
class LoadRun:
    """Sustained load on one side: every request's latency, errors, probes and memory."""

    side: Side
    clients: int
    seconds: float
    size: int
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    probe_latencies: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    peak_rss_mb: float = math.nan  # the process's high-water mark since it started

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else math.nan

    def all_latencies(self) -> list[float]:
        return [x for v in self.latencies.values() for x in v]


@dataclass(slots=True)
class LoopWatch:
    """The same load against a service run with asyncio's debug mode: slow callbacks seen."""

    seconds: float
    requests: int
    errors: int
    slow_callbacks: list[float] = field(default_factory=list)
    threshold: float = 0.1


@dataclass(slots=True)
class ProfileSummary:
    """Where the service's time went while one operation was repeated (py-spy samples)."""

    target: str
    operation: str
    size: int
    seconds: float
    requests: int
    lines: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(slots=True)
class TargetCheck:
    """One of the performance targets, and whether this run met it."""

    name: str
    goal: str
    measured: str
    met: bool
    operations: tuple[str, ...] = ()  # what to profile if missed
    size: int = 0


@dataclass(slots=True)
class RunResults:
    """Everything one run produced."""

    comparisons: list[Comparison] = field(default_factory=list)
    concurrent: list[ConcurrentSpawns] = field(default_factory=list)
    loads: list[LoadRun] = field(default_factory=list)
    loop_watch: LoopWatch | None = None
    targets: list[TargetCheck] = field(default_factory=list)
    profiles: list[ProfileSummary] = field(default_factory=list)
    kubernetes: str = ""
    machine: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    started: str = ""
    duration_s: float = 0.0
    fleet_setup_s: dict[int, float] = field(default_factory=dict)

    def find(self, operation: str, size: int) -> Comparison | None:
        for item in self.comparisons:
            if item.operation == operation and item.size == size:
                return item
        return None

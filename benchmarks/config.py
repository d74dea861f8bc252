"""What one run of the suite measures, and the presets of the command line."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .noisy import NoisyConfig

__all__ = ["DEFAULT_OUTPUT", "DEFAULT_PREFIX", "BenchConfig", "quick_config"]

DEFAULT_PREFIX = "apbench-"
DEFAULT_OUTPUT = Path("docs/benchmarks.md")


@dataclass(frozen=True, slots=True)
class BenchConfig:
    """Sizes, repetitions and durations of one run (the defaults are the full run)."""

    sizes: tuple[int, ...] = (10, 100, 1000)
    repetitions: int = 5
    list_requests: int = 20  # per repetition and side
    get_requests: int = 40  # per repetition and side
    spawn_repetitions: int = 3
    spawns_per_repetition: int = 4  # per side: each is then stopped, started and deleted
    concurrent_spawns: int = 50
    spawn_clients: int = 8
    load_clients: int = 64
    load_seconds: float = 30.0
    load_list_share: int = 10  # one request in this many is a list, the others are gets
    loop_watch_seconds: float = 10.0
    profile_seconds: float = 6.0  # py-spy per missed target; 0: no profiles
    fleet_workers: int = 8
    running: int = 300  # --only memory: how many of the fleet run; the others never start
    kubernetes: bool = True  # also the list figures on the Kubernetes backend
    prefix: str = DEFAULT_PREFIX
    output: Path = DEFAULT_OUTPUT
    plot: Path | None = None  # default: next to the output, <stem>-list.png
    title: str = "agent-api benchmarks"
    only: str | None = None  # one scenario (``noisy-neighbour``) instead of the suite
    noisy: NoisyConfig = field(default_factory=NoisyConfig)

    @property
    def network(self) -> str:
        return f"{self.prefix}net"

    @property
    def plot_path(self) -> Path:
        if self.plot is not None:
            return self.plot
        return self.output.with_name(f"{self.output.stem}-list.png")


def quick_config(base: BenchConfig) -> BenchConfig:
    """Small sizes and few repetitions: a smoke run of every phase in a minute or two."""
    return replace(
        base,
        sizes=(5, 20),
        repetitions=2,
        list_requests=5,
        get_requests=10,
        spawn_repetitions=2,
        spawns_per_repetition=2,
        concurrent_spawns=8,
        spawn_clients=4,
        load_clients=16,
        load_seconds=3.0,
        loop_watch_seconds=2.0,
        profile_seconds=1.0,
    )

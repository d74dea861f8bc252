"""``python -m benchmarks``: run the suite, print the table, write the report and the plot."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from types import FrameType

from . import changes, events, kube_changes, memory_report, noisy_report
from .config import DEFAULT_OUTPUT, DEFAULT_PREFIX, BenchConfig, quick_config
from .kubernetes import LIST_BEGIN, LIST_END, kubernetes_list_comparisons, kubernetes_targets
from .memory import run_memory
from .noisy import NoisyConfig, quick_noisy, run_noisy
from .noisy_report import carry_section, render_noisy, write_section
from .plot import plot_latency
from .report import comparison_table, render_report
from .results import RunResults, TargetCheck
from .suite import run_suite

__all__ = ["CARRIED", "carry_sections", "main", "parse_args", "shown_command", "write_outputs"]

NOISY = "noisy-neighbour"
KUBERNETES = "kubernetes"
CHANGES = "changes"
KUBE_CHANGES = "kube-changes"
EVENTS = "events"
MEMORY = "memory"

#: The report's sections other commands write (or that are written by hand from their
#: figures), by their markers: a full run keeps them.
CARRIED = (
    (noisy_report.BEGIN, noisy_report.END),
    (events.BEGIN, events.END),
    (changes.BEGIN, changes.END),
    (LIST_BEGIN, LIST_END),
    (kube_changes.KUBE_CHANGES_BEGIN, kube_changes.KUBE_CHANGES_END),
    (memory_report.BEGIN, memory_report.END),
)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from exc
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("sizes must be positive numbers")
    return sizes


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="agent-api against the raw Docker engine, side by side, in one run.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, few repetitions")
    parser.add_argument("--sizes", type=_sizes, help="fleet sizes, e.g. 10,100,1000")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the report")
    parser.add_argument("--plot", type=Path, help="the PNG (default: <output stem>-list.png)")
    parser.add_argument("--repetitions", type=int, help="repetitions of each figure")
    parser.add_argument("--load-seconds", type=float, help="duration of each sustained load")
    parser.add_argument(
        "--profile-seconds", type=float, help="py-spy time per missed target (0: none)"
    )
    parser.add_argument(
        "--prefix", default=DEFAULT_PREFIX, help="name prefix of everything the run creates"
    )
    parser.add_argument(
        "--no-kubernetes",
        action="store_true",
        help="skip the list figures on the Kubernetes backend (they start a control plane)",
    )
    parser.add_argument(
        "--only",
        choices=[NOISY, KUBERNETES, CHANGES, KUBE_CHANGES, EVENTS, MEMORY],
        help="run one scenario: noisy-neighbour, changes, kube-changes and memory update "
        "their section of the report (keeping the rest); kubernetes prints the Kubernetes "
        "list figures at --sizes; events prints the event latency, the staleness across two "
        "replicas and reads from the model; memory measures the service's memory and "
        "start-up at --sizes agents",
    )
    parser.add_argument(
        "--running",
        type=int,
        help="memory: how many of the fleet run (the others are created, never started)",
    )
    parser.add_argument(
        "--fleet-workers", type=int, help="containers created at a time for the fleet"
    )
    parser.add_argument(
        "--phase-seconds", type=float, help="noisy-neighbour: seconds of each attack phase"
    )
    args = parser.parse_args(argv)
    config = BenchConfig(
        output=args.output, plot=args.plot, prefix=args.prefix, kubernetes=not args.no_kubernetes
    )
    if args.quick:
        config = quick_config(config)
    if args.sizes:
        config = replace(config, sizes=args.sizes)
    if args.repetitions:
        config = replace(config, repetitions=max(1, args.repetitions))
    if args.load_seconds is not None:
        config = replace(config, load_seconds=args.load_seconds)
    if args.profile_seconds is not None:
        config = replace(config, profile_seconds=args.profile_seconds)
    if args.running is not None:
        config = replace(config, running=max(0, args.running))
    if args.fleet_workers:
        config = replace(config, fleet_workers=max(1, args.fleet_workers))
    noisy = quick_noisy(NoisyConfig()) if args.quick else NoisyConfig()
    if args.phase_seconds is not None:
        noisy = replace(noisy, phase_seconds=max(1.0, args.phase_seconds))
    return replace(config, only=args.only, noisy=noisy)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def write_outputs(results: RunResults, config: BenchConfig) -> tuple[Path, Path | None]:
    """The plot and the report of a run, where ``config`` says; their paths."""
    plot = plot_latency(results, config.plot_path)
    config.output.parent.mkdir(parents=True, exist_ok=True)
    old = config.output.read_text() if config.output.exists() else ""
    config.output.write_text(carry_sections(old, render_report(results, config, plot) + "\n"))
    return config.output, plot


def carry_sections(old: str, new: str) -> str:
    """``new`` with every ``CARRIED`` section of ``old`` appended, in their order."""
    for begin, end in CARRIED:
        new = carry_section(old, new, begin, end)
    return new


def shown_command(argv: list[str]) -> str:
    """The command a section quotes: as a reader would type it, without the run's own
    ``--prefix`` and ``--output``."""
    shown: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("--prefix", "--output"):
            skip = True
        elif not arg.startswith(("--prefix=", "--output=")):
            shown.append(arg)
    return " ".join(["python -m benchmarks", *shown])


def run_noisy_only(config: BenchConfig, argv: list[str]) -> int:
    """``--only noisy-neighbour``: run the scenario, print and write its section."""
    results = run_noisy(config.noisy)
    command = shown_command(argv)
    section = render_noisy(results, config.noisy, command)
    write_section(config.output, section)
    print(section)
    print(f"\nreport: {config.output}")
    return 0


def _print_targets(checks: Iterable[TargetCheck]) -> None:
    for check in checks:
        print(
            f"{'met   ' if check.met else 'MISSED'}  {check.name}: {check.measured} ({check.goal})"
        )


def run_kubernetes_only(config: BenchConfig) -> int:
    """``--only kubernetes``: the Kubernetes list figures alone, printed."""
    comparisons = kubernetes_list_comparisons(config, log=print)
    if isinstance(comparisons, str):
        print(f"no figures: {comparisons}", file=sys.stderr)
        return 1
    print("\n".join(comparison_table(comparisons)))
    _print_targets(kubernetes_targets(comparisons))
    return 0


def run_changes_only(config: BenchConfig, argv: list[str]) -> int:
    """``--only changes``: a live resize and a replacement against the raw engine calls."""
    settings = changes.ChangesConfig()
    if "--quick" in argv:
        settings = changes.quick_changes(settings)
    results = changes.run_changes(settings)
    command = shown_command(argv)
    section = changes.render_changes(results, settings, command)
    write_section(config.output, section, changes.BEGIN, changes.END)
    print(section)
    print(f"\nreport: {config.output}")
    return 0


def run_memory_only(config: BenchConfig, argv: list[str]) -> int:
    """``--only memory``: memory and start-up at ``--sizes`` agents, written to its section."""
    results = run_memory(config)
    section = memory_report.render_memory(results, config, shown_command(argv))
    write_section(config.output, section, memory_report.BEGIN, memory_report.END)
    print(section)
    print(f"\nreport: {config.output}")
    return 0


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    scenarios: dict[str | None, Callable[[], int]] = {
        KUBERNETES: lambda: run_kubernetes_only(config),
        EVENTS: lambda: events.run_events(config),
        NOISY: lambda: run_noisy_only(config, sys.argv[1:] if argv is None else argv),
        CHANGES: lambda: run_changes_only(config, sys.argv[1:] if argv is None else argv),
        MEMORY: lambda: run_memory_only(config, sys.argv[1:] if argv is None else argv),
        # A change on Kubernetes against its raw API calls (its own control plane, removed).
        KUBE_CHANGES: lambda: kube_changes.main(["--output", str(config.output)]),
    }
    try:
        if config.only in scenarios:
            return scenarios[config.only]()
        results = run_suite(config)
    except KeyboardInterrupt:
        print("interrupted; everything the run created was removed", file=sys.stderr)
        return 130
    report, plot = write_outputs(results, config)
    print("\n".join(comparison_table(results.comparisons)))
    print()
    _print_targets(results.targets)
    print(f"\nreport: {report}" + (f", plot: {plot}" if plot else ""))
    return 0

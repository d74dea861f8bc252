"""The performance targets, checked against one run's figures (ratios proxy / raw engine)."""

from __future__ import annotations

import math

from .results import RunResults, TargetCheck

__all__ = ["LIMITS", "evaluate_targets"]

LIMITS = {
    "list": 0.5,  # answered from the read model
    "get": 1.0,
    "spawn": 1.15,
    "stop": 1.15,
    "start": 1.15,
    "delete": 1.15,
}
MAX_RSS_MB = 150.0
MIN_THROUGHPUT_RATIO = 1.5  # sustained load: the service's requests/s over the engine's


def _worst_ratio(results: RunResults, operation: str) -> tuple[float, int]:
    """The largest p50 ratio of an operation over the fleet sizes, and where it was."""
    worst, where = math.nan, 0
    for item in results.comparisons:
        if item.operation != operation:
            continue
        ratio = item.ratio(50).median
        if math.isnan(worst) or ratio > worst:
            worst, where = ratio, item.size
    return worst, where


def evaluate_targets(results: RunResults) -> list[TargetCheck]:
    """Each target met or not; ratios are medians of per-repetition p50 ratios."""
    checks: list[TargetCheck] = []
    sizes = sorted({c.size for c in results.comparisons})
    largest = sizes[-1] if sizes else 0
    listed = results.find("list", largest)
    if listed is not None:
        ratio = listed.ratio(50).median
        checks.append(
            TargetCheck(
                name=f"list at {largest} agents",
                goal=f"p50 ratio <= {LIMITS['list']}",
                measured=f"{ratio:.2f} (p95 ratio {listed.ratio(95).median:.2f})",
                met=ratio <= LIMITS["list"],
                operations=("list",),
                size=largest,
            )
        )
    for operation in ("get", "spawn", "stop", "start", "delete"):
        worst, where = _worst_ratio(results, operation)
        if math.isnan(worst):
            continue
        measured = f"{worst:.2f} (worst fleet size: {where})"
        met = worst <= LIMITS[operation]
        if operation == "spawn":
            for run in results.concurrent:
                wall = run.ratio().median
                measured += f"; {run.count} spawns x {run.clients} clients: {wall:.2f}"
                met = met and wall <= LIMITS["spawn"]
        checks.append(
            TargetCheck(
                name=operation if operation != "get" else "get one agent",
                goal=f"p50 ratio <= {LIMITS[operation]} at every fleet size",
                measured=measured,
                met=met,
                operations=(operation,),
                size=largest,
            )
        )
    proxy_loads = [run for run in results.loads if run.side == "proxy"]
    if proxy_loads:
        errors = sum(run.error_count for run in proxy_loads)
        if results.loop_watch is not None:
            errors += results.loop_watch.errors
        checks.append(
            TargetCheck("sustained load: errors", "0", str(errors), errors == 0, ("load",))
        )
        engine = [run for run in results.loads if run.side == "engine"]
        if engine:
            ratio = proxy_loads[0].throughput / engine[0].throughput
            checks.append(
                TargetCheck(
                    "sustained load: requests/s against the raw engine's",
                    f">= {MIN_THROUGHPUT_RATIO}x",
                    f"{proxy_loads[0].throughput:.0f} against {engine[0].throughput:.0f}: "
                    f"{ratio:.2f}x",
                    ratio >= MIN_THROUGHPUT_RATIO,
                    ("load",),
                )
            )
        peak = max(run.peak_rss_mb for run in proxy_loads)
        checks.append(
            TargetCheck(
                "sustained load: peak RSS of the service",
                f"<= {MAX_RSS_MB:.0f} MB",
                f"{peak:.0f} MB",
                peak <= MAX_RSS_MB,
                ("load",),
            )
        )
    if results.loop_watch is not None:
        slow = results.loop_watch.slow_callbacks
        longest = f", longest {max(slow) * 1000:.0f} ms" if slow else ""
        checks.append(
            TargetCheck(
                "sustained load: event loop never blocked",
                "no callback holds the loop >= 100 ms (asyncio debug mode)",
                f"{len(slow)} slow callbacks{longest}",
                not slow,
                ("load",),
            )
        )
    return checks

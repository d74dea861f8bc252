"""The PNG: list and get latency of both sides against fleet size, and their ratios."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .results import Comparison, RunResults, Side
from .targets import LIMITS

__all__ = ["plot_latency"]

_TITLES = {
    "list": "list: GET /v1/agents vs GET /containers/json",
    "get": "get: GET /v1/agents/{id} vs inspect",
}
_SIDES: tuple[tuple[Side, str, str], ...] = (
    ("proxy", "tab:blue", "agent-api"),
    ("engine", "tab:orange", "raw engine"),
)


def _by_size(results: RunResults, operation: str) -> list[Comparison]:
    return sorted(
        (c for c in results.comparisons if c.operation == operation), key=lambda c: c.size
    )


def _log_axes(axis: Any, sizes: list[int]) -> None:
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    axis.set_xscale("log")
    axis.set_xticks(sizes, [str(s) for s in sizes])
    axis.xaxis.set_minor_formatter(NullFormatter())
    axis.set_xlabel("managed agents")
    axis.grid(True, which="both", alpha=0.3)
    axis.yaxis.set_major_formatter(ScalarFormatter())


def plot_latency(results: RunResults, path: Path) -> Path | None:
    """Write the plot to ``path``; None when there is nothing to plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [op for op in ("list", "get") if _by_size(results, op)]
    if not panels:
        return None
    figure, axes = plt.subplots(1, len(panels) + 1, figsize=(5.5 * (len(panels) + 1), 4.5))
    for axis, operation in zip(axes[: len(panels)], panels, strict=True):
        items = _by_size(results, operation)
        sizes = [c.size for c in items]
        for side, colour, label in _SIDES:
            for q, style in ((50, "-"), (95, "--")):
                spreads = [c.side(side, q) for c in items]
                axis.errorbar(
                    sizes,
                    [s.median * 1000 for s in spreads],
                    yerr=[
                        [(s.median - s.low) * 1000 for s in spreads],
                        [(s.high - s.median) * 1000 for s in spreads],
                    ],
                    fmt=style + "o",
                    color=colour,
                    capsize=3,
                    markersize=4,
                    label=f"{label} p{q}",
                )
        axis.set_yscale("log")
        _log_axes(axis, sizes)
        axis.set_ylabel("latency (ms)")
        axis.set_title(_TITLES[operation], fontsize=10)
        axis.legend(fontsize=8)
    ratio_axis = axes[-1]
    every_size: set[int] = set()
    for operation, colour in (("list", "tab:green"), ("get", "tab:purple")):
        items = _by_size(results, operation)
        if not items:
            continue
        sizes = [c.size for c in items]
        every_size.update(sizes)
        ratios = [c.ratio(50) for c in items]
        ratio_axis.errorbar(
            sizes,
            [r.median for r in ratios],
            yerr=[[r.median - r.low for r in ratios], [r.high - r.median for r in ratios]],
            fmt="-o",
            color=colour,
            capsize=3,
            markersize=4,
            label=f"{operation} p50 ratio",
        )
    ratio_axis.axhline(LIMITS["list"], color="grey", linestyle=":", label="target 1.3")
    ratio_axis.axhline(1.0, color="black", linewidth=0.8)
    _log_axes(ratio_axis, sorted(every_size))
    ratio_axis.set_ylabel("agent-api / raw engine")
    ratio_axis.set_ylim(bottom=0)
    ratio_axis.set_title("ratio (median of repetitions, range as bars)", fontsize=10)
    ratio_axis.legend(fontsize=8)
    figure.suptitle("agent-api against the raw Docker engine, same run (median, range as bars)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path

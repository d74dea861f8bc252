"""Percentiles, medians and spreads of latency samples; nothing here does I/O.

Every figure of the suite is measured as several repetitions. A repetition gives each side
(proxy and raw engine) its own p50 and p95; a figure quotes the median of those per
repetition, the spread (min..max over repetitions), and the ratio proxy / engine computed
per repetition, so that both sides of a ratio always come from the same moment of the run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["Spread", "percentile", "spread"]


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation; NaN for no samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Spread:
    """The median of a few values and their range."""

    median: float
    low: float
    high: float
    values: tuple[float, ...] = field(default=(), repr=False)

    def scaled(self, factor: float) -> Spread:
        return Spread(
            self.median * factor,
            self.low * factor,
            self.high * factor,
            tuple(v * factor for v in self.values),
        )


def spread(values: Sequence[float]) -> Spread:
    """Median and min..max of ``values`` (NaN when there are none)."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return Spread(math.nan, math.nan, math.nan)
    return Spread(statistics.median(finite), min(finite), max(finite), tuple(finite))

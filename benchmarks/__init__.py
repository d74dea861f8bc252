"""Benchmarks of agent-api against the raw Docker engine, measured side by side in one run.

``python -m benchmarks`` starts its own service process, builds a fleet of busybox
sleepers, times every operation through the service and straight on the engine, writes
``docs/benchmarks.md`` and a plot, and removes everything it created.
"""

from __future__ import annotations

from .config import BenchConfig, quick_config
from .results import RunResults
from .suite import run_suite

__all__ = ["BenchConfig", "RunResults", "quick_config", "run_suite"]

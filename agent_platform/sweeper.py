"""The background sweep: TTL deadlines and leftovers, at start and then periodically.

Running at start is what stops an agent whose deadline passed while the service was down.
Every replica sweeps; the steps are idempotent, so two replicas never fight.
"""

from __future__ import annotations

import asyncio

from loguru import logger

from orchestrators.base import Orchestrator
from orchestrators.errors import OrchestratorError

__all__ = ["run_sweeper"]


async def run_sweeper(orchestrator: Orchestrator, interval: float) -> None:
    while True:
        try:
            report = await orchestrator.sweep()
            if report.stopped or report.removed:
                logger.bind(stopped=report.stopped, removed=report.removed).info("sweep")
        except OrchestratorError as exc:
            logger.warning("sweep skipped: {}", exc.detail)
        except Exception as exc:  # the sweeper must outlive any single failure
            logger.opt(exception=exc).error("sweep failed")
        await asyncio.sleep(interval)

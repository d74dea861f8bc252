"""How a backend calls its synchronous client: on its bounded thread pool, never on the
event loop, with the client's exceptions translated into the orchestrator's own."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from .errors import OrchestratorError, WatchExpired
from .types import T

__all__ = ["in_thread"]


async def in_thread(
    executor: Executor,
    translate: Callable[[Exception], OrchestratorError],
    fn: Callable[..., T],
    *args: Any,
    **kwargs: Any,
) -> T:
    """``fn(*args, **kwargs)`` on ``executor``; what it raises goes through ``translate``
    (but ``WatchExpired``, which is the caller's to handle, not an engine error)."""
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(executor, functools.partial(fn, *args, **kwargs))
    except WatchExpired:
        raise
    except Exception as exc:
        raise translate(exc) from exc

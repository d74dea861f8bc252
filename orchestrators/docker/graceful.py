"""A stop whose grace period holds no thread.

The SDK's ``stop(timeout=grace)`` is one HTTP call that the engine answers only once the
container exited or the grace ran out, so it held an engine thread for up to the whole
grace (an hour at most): a few long-grace stops starved every other call. Here the stop
signal is sent in one short call, the wait happens on the event loop (a cheap inspect now
and then, on the engine pool), and at the deadline a ``stop`` with no grace kills what is
left. The engine's own bookkeeping is the same as for ``docker stop``: a signal equal to the
container's stop signal marks it stopped on request, so its restart policy does not bring
it back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import docker.errors
from docker import APIClient

__all__ = ["stop_container"]

Run = Callable[..., Awaitable[Any]]

_FIRST_POLL = 0.05
_LONGEST_POLL = 1.0


def _signal(api: APIClient, container_id: str) -> bool:
    """Send the container's stop signal; False if it is not running (nothing to wait for)."""
    info = api.inspect_container(container_id)
    state = info.get("State") or {}
    if not state.get("Running") or state.get("Restarting"):
        return False
    stop_signal = (info.get("Config") or {}).get("StopSignal") or "SIGTERM"
    try:
        api.kill(container_id, signal=stop_signal)
    except docker.errors.NotFound:
        raise
    except docker.errors.APIError:
        # It stopped between the inspect and the signal (409 "not running").
        return False
    return True


def _running(api: APIClient, container_id: str) -> bool:
    try:
        info = api.inspect_container(container_id)
    except docker.errors.NotFound:
        return False
    return bool((info.get("State") or {}).get("Running"))


def _kill(api: APIClient, container_id: str) -> None:
    with contextlib.suppress(docker.errors.NotFound):
        api.stop(container_id, timeout=0)


async def stop_container(
    run: Run, client: Callable[[], APIClient], container_id: str, grace: int
) -> None:
    """Stop ``container_id``: its stop signal, up to ``grace`` seconds to exit, then SIGKILL.

    ``run`` runs a synchronous call on the engine pool; each call it makes is short.
    Raises ``docker.errors.NotFound`` (translated by ``run``) if the container is gone.
    """
    if grace <= 0:
        await run(lambda: _kill(client(), container_id))
        return
    if not await run(lambda: _signal(client(), container_id)):
        # Not running, or restarting: a stop without grace settles it as `docker stop` would.
        await run(lambda: _kill(client(), container_id))
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    delay = _FIRST_POLL
    while loop.time() < deadline:
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        if not await run(lambda: _running(client(), container_id)):
            return
        delay = min(_LONGEST_POLL, delay * 2)
    await run(lambda: _kill(client(), container_id))

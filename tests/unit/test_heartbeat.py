"""A watch's heartbeat on its own: items flow, a silence has the engine pinged, a ping that
fails ends the watch, and closing a watch is never lost to an item that arrives with it."""

from __future__ import annotations

import asyncio

import pytest

from orchestrators.errors import OrchestratorUnavailable
from orchestrators.watch import Heartbeat

pytestmark = pytest.mark.anyio

EVERY = 0.05  # seconds: short, so that the silences of these tests are


async def test_items_are_handed_out_and_a_silence_is_pinged() -> None:
    loop = asyncio.get_running_loop()
    pinged = asyncio.Event()
    heartbeat = Heartbeat(
        lambda timeout: loop.call_soon_threadsafe(pinged.set), every=EVERY, engine="the engine"
    )
    queue: asyncio.Queue[str] = asyncio.Queue()
    try:
        queue.put_nowait("first")
        assert await heartbeat.next(queue) == "first"
        waiting = asyncio.create_task(heartbeat.next(queue))
        await pinged.wait()
        assert not waiting.done()  # the engine answered: the watch waits on
        queue.put_nowait("after a silence")
        assert await waiting == "after a silence"
    finally:
        heartbeat.close()


async def test_a_ping_that_fails_ends_the_watch() -> None:
    def frozen(timeout: float) -> None:
        raise TimeoutError(f"no answer in {timeout} s")

    heartbeat = Heartbeat(frozen, every=EVERY, engine="the Docker engine")
    try:
        with pytest.raises(OrchestratorUnavailable, match="the Docker engine did not answer"):
            await heartbeat.next(asyncio.Queue())
    finally:
        heartbeat.close()


async def test_within_bounds_a_wait_without_a_ping() -> None:
    heartbeat = Heartbeat(lambda timeout: None, every=60, engine="the engine")
    try:
        with pytest.raises(TimeoutError):
            await heartbeat.next(asyncio.Queue(), within=EVERY)
    finally:
        heartbeat.close()


async def test_a_cancellation_that_comes_with_an_item_is_not_lost() -> None:
    heartbeat = Heartbeat(lambda timeout: None, every=60, engine="the engine")
    queue: asyncio.Queue[str] = asyncio.Queue()
    try:
        reading = asyncio.create_task(heartbeat.next(queue))
        await asyncio.sleep(0)  # the reader waits on the queue
        queue.put_nowait("an item")
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        assert queue.get_nowait() == "an item"  # left for whoever reads next
    finally:
        heartbeat.close()

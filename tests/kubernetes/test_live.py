"""The read model on Kubernetes: fed by the watch, reads cost the API server nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from agent_platform.eventbus import EventBus
from agent_platform.live import LiveFeed
from agent_platform.metrics import Metrics
from orchestrators.kubernetes import KubernetesOrchestrator
from orchestrators.models import AgentStatus
from testenv.backends import SMALL
from testenv.kube_env import KubeTestEnv
from testenv.kube_fixture import kubernetes_orchestrator

from .helpers import WAIT, sleeper

pytestmark = [pytest.mark.anyio, pytest.mark.kubernetes]


class Counted:
    """The backend's calls to the API server (lists, reads, writes), counted; the watch's
    own streams are not calls."""

    def __init__(self, backend: KubernetesOrchestrator) -> None:
        kube = backend._kube
        real: Callable[..., Any] = kube.call
        self.calls = 0

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        kube.call = call  # type: ignore[method-assign]


@pytest.fixture
async def feed(kube_env: KubeTestEnv, kube_namespace: str) -> AsyncIterator[LiveFeed]:
    backend = kubernetes_orchestrator(kube_env.kubeconfig, kube_namespace)
    live = LiveFeed(backend, bus=EventBus(ring=1000, buffer=100), metrics=Metrics())
    task = asyncio.get_running_loop().create_task(live.run())
    try:
        await settled(live, lambda _: live.live)
        yield live
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await backend.close()


async def settled(feed: LiveFeed, probe: Callable[[list[Any]], bool]) -> list[Any]:
    with anyio.fail_after(WAIT):
        while True:
            agents = await feed.list(owner=None, labels=None)
            if probe(agents):
                return agents
            await asyncio.sleep(0.05)


async def test_lists_and_gets_come_from_the_watch_without_an_api_call(feed: LiveFeed) -> None:
    backend = feed._engine
    assert isinstance(backend, KubernetesOrchestrator)
    spawned = [
        await backend.spawn(sleeper(f"aptest-live-{n}"), owner=owner, resources=SMALL)
        for n, owner in enumerate(("alice", "alice", "bob"))
    ]
    ids = {a.id for a in spawned}
    await settled(
        feed,
        lambda agents: {a.id for a in agents if a.status is AgentStatus.RUNNING} == ids,
    )

    counted = Counted(backend)
    for _ in range(20):
        assert {a.id for a in await feed.list(owner="alice", labels=None)} == {
            spawned[0].id,
            spawned[1].id,
        }
        got = await feed.get(spawned[2].id, owner="bob")
        assert (got.owner, got.status) == ("bob", AgentStatus.RUNNING)
    assert counted.calls == 0

    # A change made by anyone is seen without asking the API server either.
    await backend.stop(spawned[0].id, owner="alice", timeout=1)
    during_stop = counted.calls
    await settled(
        feed,
        lambda agents: any(
            a.id == spawned[0].id and a.status is AgentStatus.STOPPED for a in agents
        ),
    )
    assert counted.calls == during_stop
    # And the model agrees with the engine.
    engine = sorted((a.id, a.status, a.detail) for a in await backend.list())
    model = sorted((a.id, a.status, a.detail) for a in await feed.list(owner=None, labels=None))
    assert model == engine


async def test_a_call_answer_is_not_set_back_by_the_lagging_watch(feed: LiveFeed) -> None:
    """Read-your-writes: what the spawn answered stays what reads say, though the watch
    then delivers the changes the spawn went through (created, pending...). A consistency
    check: the mechanism, a change dated before the call that read it, is proven without a
    server in ``test_watch_cache.py``, where the watch's lag is not left to chance."""
    backend = feed._engine
    agent = feed.wrote(await backend.spawn(sleeper("aptest-ryw"), owner="alice", resources=SMALL))
    assert agent.status is AgentStatus.RUNNING
    for _ in range(40):
        assert (await feed.get(agent.id, owner="alice")).status is AgentStatus.RUNNING
        await asyncio.sleep(0.05)

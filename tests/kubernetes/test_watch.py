"""The Kubernetes watch against the real API server: snapshots, observations, resume, expiry."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import anyio
import pytest
from kubernetes import client

from orchestrators.errors import OrchestratorUnavailable, WatchExpired
from orchestrators.kubernetes import KubernetesOrchestrator
from orchestrators.kubernetes import watch as kube_watch
from orchestrators.models import AgentStatus, FailureReason, StoppedBy
from orchestrators.watch import Observation
from testenv.backends import SMALL
from testenv.kube_env import KubeTestEnv
from testenv.kube_fixture import ServiceAccountAccess, kubernetes_orchestrator

from .helpers import WAIT, kubelet, pod_names, sleeper

pytestmark = [pytest.mark.anyio, pytest.mark.kubernetes]


class Recorder:
    """Consumes a watch in the background; the test waits for what it expects."""

    def __init__(self, watch: AsyncIterator[Observation]) -> None:
        self.seen: list[Observation] = []
        self.error: BaseException | None = None
        self._watch = watch
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._consume())

    async def _consume(self) -> None:
        try:
            async for observation in self._watch:
                self.seen.append(observation)
                self._changed.set()
        except Exception as exc:
            self.error = exc
            self._changed.set()

    async def until(self, what: str, probe: Callable[[Observation], bool]) -> Observation:
        with anyio.fail_after(WAIT):
            while True:
                for observation in self.seen:
                    if probe(observation):
                        return observation
                if self.error is not None:
                    raise AssertionError(f"the watch ended waiting for {what}") from self.error
                self._changed.clear()
                await self._changed.wait()
        raise AssertionError("unreachable")

    async def ended(self) -> BaseException:
        """What ended the watch, once something has."""
        while self.error is None:
            self._changed.clear()
            await self._changed.wait()
        return self.error

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        aclose = getattr(self._watch, "aclose", None)
        if aclose is not None:
            await aclose()


def of(agent_id: str, status: AgentStatus | None) -> Callable[[Observation], bool]:
    return lambda o: o.agent_id == agent_id and o.status is status


async def test_a_snapshot_lists_every_agent_with_a_position(
    kube_backend: KubernetesOrchestrator,
) -> None:
    first = await kube_backend.spawn(sleeper("aptest-snap-a"), owner="alice", resources=SMALL)
    second = await kube_backend.spawn(sleeper("aptest-snap-b"), owner="bob", resources=SMALL)
    snapshot = await kube_backend.snapshot()
    assert sorted((a.id, a.owner, a.status) for a in snapshot.agents) == sorted(
        [(first.id, "alice", AgentStatus.RUNNING), (second.id, "bob", AgentStatus.RUNNING)]
    )
    deployments, dot, pods = snapshot.token.partition(".")
    assert dot == "."
    assert deployments.isdigit()
    assert pods.isdigit()


async def test_spawn_oom_stop_and_delete_are_observed_as_they_happen(
    kube_backend: KubernetesOrchestrator,
    kube_env: KubeTestEnv,
    kube_api: client.ApiClient,
    kube_namespace: str,
) -> None:
    recorder = Recorder(kube_backend.watch())
    try:
        await asyncio.sleep(0.5)  # the watch lists first; what follows is a change to it
        agent = await kube_backend.spawn(sleeper("aptest-watched"), owner="alice", resources=SMALL)
        created = await recorder.until("created", lambda o: o.agent_id == agent.id)
        assert (created.name, created.owner) == ("aptest-watched", "alice")
        assert created.status is AgentStatus.PENDING
        running = await recorder.until("started", of(agent.id, AgentStatus.RUNNING))
        assert running.agent is not None
        assert running.agent.id == agent.id

        (name,) = pod_names(kube_api, kube_namespace, agent.id)
        kubelet(kube_env).oom_kill(kube_namespace, name)
        failed = await recorder.until("the OOM kill", of(agent.id, AgentStatus.FAILED))
        assert failed.reason is FailureReason.OOM_KILLED
        assert failed.exit_code == 137
        assert failed.detail is not None
        assert failed.detail.startswith("oom_killed")
        assert failed.restarts == 1

        await kube_backend.stop(agent.id, owner="alice", timeout=1)
        stopped = await recorder.until("the stop", of(agent.id, AgentStatus.STOPPED))
        assert stopped.stopped_by is StoppedBy.CALL

        await kube_backend.delete(agent.id, owner="alice")
        deleted = await recorder.until("the delete", lambda o: o.deleted)
        assert (deleted.agent_id, deleted.name, deleted.owner) == (
            agent.id,
            "aptest-watched",
            "alice",
        )
        # Tokens move forward: each is a later position of both watches.
        positions = [tuple(int(v) for v in o.token.split(".")) for o in recorder.seen]
        assert positions == sorted(positions)
    finally:
        await recorder.close()


async def test_a_watch_resumes_from_a_token_with_what_happened_since(
    kube_backend: KubernetesOrchestrator,
) -> None:
    before = (await kube_backend.snapshot()).token
    agent = await kube_backend.spawn(sleeper("aptest-resumed"), owner="alice", resources=SMALL)
    recorder = Recorder(kube_backend.watch(before))
    try:
        created = await recorder.until("the replayed spawn", lambda o: o.agent_id == agent.id)
        assert created.status is AgentStatus.PENDING
        running = await recorder.until("the replayed start", of(agent.id, AgentStatus.RUNNING))
    finally:
        await recorder.close()

    # From the start's own token: nothing of the spawn again, only what came after.
    later = Recorder(kube_backend.watch(running.token))
    try:
        await kube_backend.stop(agent.id, owner="alice", timeout=1)
        await later.until("the stop", of(agent.id, AgentStatus.STOPPED))
        replayed = [(o.status, o.detail) for o in later.seen if o.detail == "being created"]
        assert replayed == [], [(o.status, o.detail, o.token) for o in later.seen]
    finally:
        await later.close()


async def test_a_position_compacted_away_raises_watch_expired(
    kube_backend: KubernetesOrchestrator, kube_env: KubeTestEnv, kube_namespace: str
) -> None:
    before = (await kube_backend.snapshot()).token
    await kube_backend.spawn(sleeper("aptest-expired"), owner="alice", resources=SMALL)
    kube_env.compact()
    # A client resuming there on another replica: that history is gone.
    other = kubernetes_orchestrator(kube_env.kubeconfig, kube_namespace)
    try:
        with anyio.fail_after(WAIT), pytest.raises(WatchExpired):
            async for _ in other.watch(before):
                pass
        # The position of a new snapshot is good again.
        recorder = Recorder(other.watch((await other.snapshot()).token))
        try:
            await asyncio.sleep(0.5)
            assert recorder.error is None
        finally:
            await recorder.close()
    finally:
        await other.close()


@pytest.mark.parametrize("token", ["not-a-token", "12", "1.x"])
async def test_a_token_that_is_not_ours_raises_watch_expired(
    kube_backend: KubernetesOrchestrator, token: str
) -> None:
    with anyio.fail_after(WAIT), pytest.raises(WatchExpired):
        async for _ in kube_backend.watch(token):
            pass


async def test_the_role_is_enough_to_snapshot_and_watch(
    service_account: ServiceAccountAccess, service_account_namespace: str
) -> None:
    backend = kubernetes_orchestrator(service_account.kubeconfig, service_account_namespace)
    recorder = Recorder(backend.watch((await backend.snapshot()).token))
    try:
        agent = await backend.spawn(sleeper("aptest-role"), owner="alice", resources=SMALL)
        await recorder.until("the start", of(agent.id, AgentStatus.RUNNING))
        await backend.delete(agent.id, owner="alice")
        await recorder.until("the delete", lambda o: o.deleted)
    finally:
        await recorder.close()
        await backend.close()


async def test_a_watch_the_server_ends_is_opened_again_from_where_it_was(
    kube_backend: KubernetesOrchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API server ends every watch after its timeout (here one second instead of
    minutes): the watch goes on from its last resource version, losing nothing."""
    monkeypatch.setattr(kube_watch, "WATCH_SECONDS", 1)
    recorder = Recorder(kube_backend.watch())
    try:
        await asyncio.sleep(2.5)  # the server has ended the first watches meanwhile
        agent = await kube_backend.spawn(sleeper("aptest-rewatch"), owner="alice", resources=SMALL)
        await recorder.until("the start", of(agent.id, AgentStatus.RUNNING))
        await asyncio.sleep(1.5)
        await kube_backend.stop(agent.id, owner="alice", timeout=1)
        await recorder.until("the stop", of(agent.id, AgentStatus.STOPPED))
        assert recorder.error is None
    finally:
        await recorder.close()


async def test_a_silent_api_server_ends_the_watch_within_the_heartbeat(
    kube_env: KubeTestEnv, kube_namespace: str
) -> None:
    """An API server that stops answering with the watches open: they stay silent, and the
    heartbeat (a second of silence, then a ping that waits a second) ends the watch with
    ``OrchestratorUnavailable`` instead of leaving it open for the watch's minutes."""
    backend = kubernetes_orchestrator(kube_env.kubeconfig, kube_namespace, watch_heartbeat=1.0)
    recorder = Recorder(backend.watch())
    try:
        agent = await backend.spawn(sleeper("aptest-silent"), owner="alice", resources=SMALL)
        await recorder.until("the start", of(agent.id, AgentStatus.RUNNING))
        with kube_env.api_server_frozen():
            with anyio.fail_after(2 * 1.0 + 1 + 5):  # the bound, with slack
                ended = await recorder.ended()
        assert isinstance(ended, OrchestratorUnavailable), ended
        assert "did not answer a ping" in ended.detail
    finally:
        await recorder.close()
        await backend.close()

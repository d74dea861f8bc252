"""Changing a running agent on a real API server: what the Deployment, its pods, its Secret
and its revisions show after each change."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime

import pytest
from kubernetes import client

from orchestrators import labels as L
from orchestrators.errors import (
    AgentNotFound,
    AgentQuotaExceeded,
    ChangeInFlight,
    ImageNotFound,
    NotSupported,
    PolicyViolation,
    RevisionMismatch,
)
from orchestrators.kubernetes import KubernetesOrchestrator
from orchestrators.kubernetes.changes import CHANGING
from orchestrators.models import AgentChange, Resources
from orchestrators.policy import OwnerCeilings, SpawnPolicy
from testenv.backends import SMALL
from testenv.kube_env import KubeTestEnv
from testenv.kube_fixture import ServiceAccountAccess, kubernetes_orchestrator, wait_until

from .test_backend import pods_of, read, spec, the_deployment

pytestmark = [pytest.mark.anyio, pytest.mark.kubernetes]

POLICY = SpawnPolicy(
    default_resources=SMALL, max_resources=Resources(cpus=2.0, memory_mb=256, pids=256)
)


def change(**fields: object) -> AgentChange:
    return AgentChange.model_validate(fields)


def _at(obj: dict[str, object], path: tuple[str, ...]) -> object:
    for key in path:
        obj = obj[key]  # type: ignore[assignment]
    return obj


def limits(deployment: dict[str, object]) -> dict[str, str]:
    template = deployment["spec"]["template"]  # type: ignore[index]
    found: dict[str, str] = template["spec"]["containers"][0]["resources"]["limits"]
    return found


async def test_a_resize_patches_the_limits_and_rolls_out_one_new_pod(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    agent = await kube_backend.spawn(spec("aptest-resize"), owner="alice", resources=SMALL)
    (old_pod,) = pods_of(kube_api, kube_namespace, agent.id)

    result = await kube_backend.update(
        agent.id, change(resources={"memory_mb": 128, "cpus": 1}), owner="alice", policy=POLICY
    )

    assert result.revision == 2
    assert result.agent.revision == 2
    # Kubernetes before 1.33 cannot resize a running pod: the change is a rollout.
    assert result.restarted is True
    assert result.changes == ["resources.cpus", "resources.memory_mb"]
    assert result.agent.resources == Resources(cpus=1.0, memory_mb=128, pids=64)
    assert result.agent.status.value == "running"
    deployment = the_deployment(kube_api, kube_namespace, agent.id)
    assert limits(deployment)["memory"] == "128Mi"
    assert limits(deployment)["cpu"] == "1"  # the API server's canonical form of 1000m
    (new_pod,) = pods_of(kube_api, kube_namespace, agent.id)
    assert new_pod["metadata"]["uid"] != old_pod["metadata"]["uid"]
    assert new_pod["metadata"]["annotations"][L.REVISION] == "2"
    assert (await kube_backend.get(agent.id, owner="alice")).revision == 2
    await kube_backend.delete(agent.id)


async def test_a_relabel_is_live_and_filters_lists(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    agent = await kube_backend.spawn(
        spec("aptest-relabel", labels={"team": "a"}), owner="alice", resources=SMALL
    )
    (pod,) = pods_of(kube_api, kube_namespace, agent.id)
    result = await kube_backend.update(
        agent.id, change(labels={"team": "b", "tier": "gold"}), owner="alice", policy=POLICY
    )
    assert result.restarted is False
    assert result.agent.labels == {"team": "b", "tier": "gold"}
    (same,) = pods_of(kube_api, kube_namespace, agent.id)
    assert same["metadata"]["uid"] == pod["metadata"]["uid"]
    listed = await kube_backend.list(owner="alice", labels={"tier": "gold"})
    assert [(a.id, a.status.value) for a in listed] == [(agent.id, "running")]
    assert await kube_backend.list(owner="alice", labels={"team": "a"}) == []
    await kube_backend.delete(agent.id)


async def test_an_image_change_keeps_the_claim_the_id_and_the_name_and_rolls_back(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    agent = await kube_backend.spawn(
        spec("aptest-image", workspace=True), owner="alice", resources=SMALL
    )
    core = client.CoreV1Api(kube_api)
    (claim,) = read(core.list_namespaced_persistent_volume_claim, kube_namespace)["items"]

    result = await kube_backend.update(
        "aptest-image", change(image="aptest/busybox:next"), owner="alice", policy=POLICY
    )
    assert (result.agent.id, result.agent.name, result.agent.image) == (
        agent.id,
        "aptest-image",
        "aptest/busybox:next",
    )
    assert result.restarted is True
    (pod,) = pods_of(kube_api, kube_namespace, agent.id)
    assert pod["spec"]["containers"][0]["image"] == "aptest/busybox:next"
    (still,) = read(core.list_namespaced_persistent_volume_claim, kube_namespace)["items"]
    assert still["metadata"]["uid"] == claim["metadata"]["uid"]
    mounted = [v["persistentVolumeClaim"]["claimName"] for v in pod["spec"]["volumes"]]
    assert mounted == [claim["metadata"]["name"]]

    back = await kube_backend.rollback(agent.id, owner="alice", policy=POLICY)
    assert back.revision == 3
    assert back.agent.image == agent.image
    assert back.changes == ["image"]
    (pod,) = pods_of(kube_api, kube_namespace, agent.id)
    assert pod["spec"]["containers"][0]["image"] == agent.image
    history = await kube_backend.revisions(agent.id, owner="alice")
    assert [(r.number, r.spec.image) for r in history.items] == [
        (3, agent.image),
        (2, "aptest/busybox:next"),
        (1, agent.image),
    ]
    assert history.kept == 10
    again = await kube_backend.rollback(agent.id, owner="alice", policy=POLICY, to=2)
    assert again.agent.image == "aptest/busybox:next"
    with pytest.raises(AgentNotFound):
        await kube_backend.rollback(agent.id, owner="alice", policy=POLICY, to=99)
    await kube_backend.delete(agent.id)


async def test_two_changes_from_one_revision_one_wins_one_is_refused(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    agent = await kube_backend.spawn(spec("aptest-race"), owner="alice", resources=SMALL)
    outcomes = await asyncio.gather(
        kube_backend.update(
            agent.id,
            change(env={"WHO": "first"}),
            owner="alice",
            policy=POLICY,
            expected_revision=1,
        ),
        kube_backend.update(
            agent.id,
            change(env={"WHO": "second"}),
            owner="alice",
            policy=POLICY,
            expected_revision=1,
        ),
        return_exceptions=True,
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(won) == 1, outcomes
    assert len(lost) == 1, outcomes
    assert isinstance(lost[0], RevisionMismatch)
    now = await kube_backend.get(agent.id, owner="alice")
    assert now.revision == 2
    assert now.env == won[0].agent.env
    # A stale revision is refused before anything is sent.
    with pytest.raises(RevisionMismatch):
        await kube_backend.update(
            agent.id, change(env={"WHO": "late"}), policy=POLICY, expected_revision=1
        )
    await kube_backend.delete(agent.id)


async def test_past_a_ceiling_or_for_another_owner_nothing_changes(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    agent = await kube_backend.spawn(spec("aptest-ceiling"), owner="alice", resources=SMALL)
    before = the_deployment(kube_api, kube_namespace, agent.id)
    with pytest.raises(PolicyViolation):
        await kube_backend.update(
            agent.id, change(resources={"memory_mb": 4096}), owner="alice", policy=POLICY
        )
    with pytest.raises(PolicyViolation):
        await kube_backend.update(
            agent.id,
            change(image="evil/miner:1"),
            owner="alice",
            policy=SpawnPolicy(
                default_resources=SMALL, max_resources=SMALL, allowed_images=("aptest/*",)
            ),
        )
    with pytest.raises(AgentNotFound):
        await kube_backend.update(agent.id, change(labels={"x": "y"}), owner="bob", policy=POLICY)
    with pytest.raises(AgentNotFound):
        await kube_backend.revisions(agent.id, owner="bob")
    with pytest.raises(AgentNotFound):
        await kube_backend.rollback(agent.id, owner="bob", policy=POLICY)
    after = the_deployment(kube_api, kube_namespace, agent.id)
    # (its status may move: the controller writes it)
    for part in (("metadata", "labels"), ("metadata", "annotations"), ("spec",)):
        assert _at(after, part) == _at(before, part)
    assert (await kube_backend.get(agent.id)).revision == 1
    await kube_backend.delete(agent.id)


async def test_a_secret_rotation_reaches_the_secret_and_the_pod_but_no_deployment_or_revision(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    agent = await kube_backend.spawn(
        spec("aptest-rotate", secrets={"TOKEN": "old-value-1"}), owner="alice", resources=SMALL
    )
    result = await kube_backend.update(
        agent.id,
        change(secrets={"TOKEN": "rotated-value-2", "EXTRA": "extra-value-3"}),
        owner="alice",
        policy=POLICY,
    )
    assert result.restarted is True
    assert result.changes == ["secrets.EXTRA", "secrets.TOKEN"]
    assert result.agent.secret_names == ["EXTRA", "TOKEN"]
    core = client.CoreV1Api(kube_api)
    (secret,) = [
        s
        for s in read(core.list_namespaced_secret, kube_namespace)["items"]
        if s["metadata"].get("labels", {}).get(L.ID) == agent.id
    ]
    assert base64.b64decode(secret["data"]["TOKEN"]) == b"rotated-value-2"
    assert base64.b64decode(secret["data"]["EXTRA"]) == b"extra-value-3"
    deployment = the_deployment(kube_api, kube_namespace, agent.id)
    history = await kube_backend.revisions(agent.id, owner="alice")
    visible = json.dumps(deployment) + history.model_dump_json() + result.model_dump_json()
    for value in ("old-value-1", "rotated-value-2", "extra-value-3"):
        assert value not in visible
        assert base64.b64encode(value.encode()).decode() not in visible
    (pod,) = pods_of(kube_api, kube_namespace, agent.id)
    assert pod["metadata"]["annotations"][L.REVISION] == "2"
    assert {e["name"] for e in pod["spec"]["containers"][0]["env"]} == {"TOKEN", "EXTRA"}

    removed = await kube_backend.update(
        agent.id, change(secrets={"EXTRA": None}), owner="alice", policy=POLICY
    )
    assert removed.agent.secret_names == ["TOKEN"]
    (secret,) = [
        s
        for s in read(core.list_namespaced_secret, kube_namespace)["items"]
        if s["metadata"].get("labels", {}).get(L.ID) == agent.id
    ]
    assert set(secret["data"]) == {"TOKEN"}
    await kube_backend.delete(agent.id)


async def test_stats_without_a_metrics_api_are_not_supported(
    kube_backend: KubernetesOrchestrator,
) -> None:
    agent = await kube_backend.spawn(spec("aptest-stats"), owner="alice", resources=SMALL)
    with pytest.raises(NotSupported, match="metrics"):
        await kube_backend.stats(agent.id, owner="alice")
    with pytest.raises(AgentNotFound):
        await kube_backend.stats(agent.id, owner="bob")
    await kube_backend.delete(agent.id)


async def test_the_services_role_is_enough_to_rotate_resize_and_read_usage(
    service_account: ServiceAccountAccess, service_account_namespace: str
) -> None:
    backend = kubernetes_orchestrator(service_account.kubeconfig, service_account_namespace)
    try:
        agent = await backend.spawn(
            spec("aptest-role", secrets={"TOKEN": "t1"}), owner="alice", resources=SMALL
        )
        result = await backend.update(
            agent.id,
            change(secrets={"TOKEN": "t2", "NEW": "n"}, resources={"memory_mb": 96}),
            policy=POLICY,
        )
        assert result.agent.secret_names == ["NEW", "TOKEN"]
        assert result.agent.resources.memory_mb == 96
        back = await backend.rollback(agent.id, policy=POLICY)
        assert back.agent.resources.memory_mb == 64
        # Allowed by the Role, then absent from this cluster: 501, not 403.
        with pytest.raises(NotSupported):
            await backend.stats(agent.id)
        await backend.delete(agent.id)
    finally:
        await backend.close()


async def test_a_change_cut_off_after_its_claim_holds_others_off_until_it_expires(
    kube_env: KubeTestEnv, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    # A one-second API timeout: a claim is abandoned after two seconds.
    backend = kubernetes_orchestrator(kube_env.kubeconfig, kube_namespace, engine_timeout=1.0)
    try:
        agent = await backend.spawn(spec("aptest-cutoff"), owner="alice", resources=SMALL)
        deployment = the_deployment(kube_api, kube_namespace, agent.id)
        # What a service killed right after claiming a secret rotation leaves.
        client.AppsV1Api(kube_api).patch_namespaced_deployment(
            deployment["metadata"]["name"],
            kube_namespace,
            {"metadata": {"annotations": {CHANGING: datetime.now(UTC).isoformat()}}},
        )
        with pytest.raises(RevisionMismatch):
            await backend.update(
                agent.id, change(env={"A": "1"}), policy=POLICY, expected_revision=1
            )
        with pytest.raises(ChangeInFlight):
            await backend.update(agent.id, change(env={"A": "1"}), policy=POLICY)
        assert (await backend.get(agent.id)).revision == 1
        await asyncio.sleep(2.5)
        # The sweep drops the abandoned claim; the agent is one agent, at its revision.
        await backend.sweep()
        stored = the_deployment(kube_api, kube_namespace, agent.id)
        assert CHANGING not in stored["metadata"]["annotations"]
        assert [a.id for a in await backend.list()] == [agent.id]
        done = await backend.update(
            agent.id, change(env={"A": "1"}), policy=POLICY, expected_revision=1
        )
        assert done.revision == 2
        await backend.delete(agent.id)
    finally:
        await backend.close()


async def test_an_image_that_cannot_be_pulled_is_refused_and_the_change_undone(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    agent = await kube_backend.spawn(
        spec("aptest-badimage", labels={"team": "a"}), owner="alice", resources=SMALL
    )
    with pytest.raises(ImageNotFound, match="undone"):
        await kube_backend.update(
            agent.id,
            change(image="registry.example/does-not-exist:2", labels={"team": "b"}),
            owner="alice",
            policy=POLICY,
        )
    now = await kube_backend.get(agent.id, owner="alice")
    assert (now.revision, now.image, now.labels) == (1, agent.image, {"team": "a"})
    deployment = the_deployment(kube_api, kube_namespace, agent.id)
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == agent.image
    assert [r.number for r in (await kube_backend.revisions(agent.id)).items] == [1]

    def running_again() -> bool:
        pods = pods_of(kube_api, kube_namespace, agent.id)
        return [p["spec"]["containers"][0]["image"] for p in pods] == [agent.image] and all(
            p["status"].get("phase") == "Running" for p in pods
        )

    wait_until("the agent's own image to run again", running_again)
    await kube_backend.delete(agent.id)


async def test_a_resize_past_the_owners_totals_is_refused_and_changes_nothing(
    kube_backend: KubernetesOrchestrator,
) -> None:
    first = await kube_backend.spawn(spec("aptest-total-a"), owner="alice", resources=SMALL)
    await kube_backend.spawn(spec("aptest-total-b"), owner="alice", resources=SMALL)
    ceilings = OwnerCeilings(cpus=1.5)
    with pytest.raises(AgentQuotaExceeded, match="cpus"):
        await kube_backend.update(
            first.id, change(resources={"cpus": 1.5}), policy=POLICY, ceilings=ceilings
        )
    assert (await kube_backend.get(first.id)).revision == 1
    within = await kube_backend.update(
        first.id, change(resources={"cpus": 1.0}), policy=POLICY, ceilings=ceilings
    )
    assert within.agent.resources.cpus == 1.0

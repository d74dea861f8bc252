"""What only a Kubernetes API server shows: the objects as stored, ownership, cost, errors."""

from __future__ import annotations

import contextlib
import json
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client import rest

from orchestrators import labels as L
from orchestrators.config import KubernetesConfig
from orchestrators.errors import (
    AgentQuotaExceeded,
    EngineError,
    ImageNotFound,
    OrchestratorUnavailable,
)
from orchestrators.kubernetes import KubernetesOrchestrator
from orchestrators.kubernetes.objects import build_deployment, deployment_name
from orchestrators.models import AgentSpec, AgentStatus, LogOptions, StoredSpec
from orchestrators.policy import OwnerCeilings
from testenv.backends import SMALL
from testenv.engine import TEST_PREFIX
from testenv.kube_env import KubeTestEnv
from testenv.kube_fixture import (
    ServiceAccountAccess,
    kubernetes_orchestrator,
    leftovers,
    wait_until,
)

pytestmark = [pytest.mark.anyio, pytest.mark.kubernetes]

IMAGE = "aptest/busybox:latest"
JSON = dict[str, Any]


def spec(name: str, **extra: object) -> AgentSpec:
    return AgentSpec.model_validate(
        {
            "name": name,
            "image": IMAGE,
            "command": ["sh", "-c", "echo started; exec sleep 3600"],
            **extra,
        }
    )


def read(method: Callable[..., Any], *args: Any) -> JSON:
    """An object (or list) as the API server stores it, as JSON."""
    response = method(*args, _preload_content=False, _request_timeout=30)
    try:
        answer: JSON = json.loads(response.data)
    finally:
        response.release_conn()
    return answer


def the_deployment(api: client.ApiClient, namespace: str, agent_id: str) -> JSON:
    found: list[JSON] = read(client.AppsV1Api(api).list_namespaced_deployment, namespace)["items"]
    matching = [d for d in found if d["metadata"]["labels"].get(L.ID) == agent_id]
    assert len(matching) == 1
    return matching[0]


def pods_of(api: client.ApiClient, namespace: str, agent_id: str) -> list[JSON]:
    pods = read(client.CoreV1Api(api).list_namespaced_pod, namespace)["items"]
    return [p for p in pods if p["metadata"]["labels"].get(L.ID) == agent_id]


def names(api: client.ApiClient, method: Callable[..., Any], namespace: str) -> set[str]:
    return {item["metadata"]["name"] for item in read(method, namespace)["items"]}


async def test_the_stored_deployment_is_restricted_and_only_refers_to_its_secret(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    agent = await kube_backend.spawn(
        spec(
            "aptest-stored",
            env={"LOG_LEVEL": "info"},
            secrets={"OPENAI_API_KEY": "sk-only-in-the-secret"},
            labels={"team": "research"},
            workspace=True,
        ),
        owner="alice",
        resources=SMALL,
    )
    assert agent.status is AgentStatus.RUNNING
    deployment = the_deployment(kube_api, kube_namespace, agent.id)
    assert "sk-only-in-the-secret" not in json.dumps(deployment)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["metadata"]["labels"][L.OWNER] == "alice"
    assert deployment["metadata"]["labels"]["user.agents.hive.io/team"] == "research"
    assert json.loads(deployment["metadata"]["annotations"][L.SPEC])["secret_names"] == [
        "OPENAI_API_KEY"
    ]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # Scratch space is bounded by default, so one agent cannot fill its node's disk.
    assert container["resources"]["limits"] == {
        "cpu": "500m",
        "memory": "64Mi",
        "ephemeral-storage": "2Gi",
    }
    assert container["resources"]["requests"] == {
        "cpu": "500m",
        "memory": "64Mi",
        "ephemeral-storage": "256Mi",
    }
    assert {"name": "LOG_LEVEL", "value": "info"} in container["env"]
    secret_ref = next(e for e in container["env"] if e["name"] == "OPENAI_API_KEY")
    secret_name = secret_ref["valueFrom"]["secretKeyRef"]["name"]

    owner = {"kind": "Deployment", "name": deployment["metadata"]["name"]}
    secret = read(client.CoreV1Api(kube_api).read_namespaced_secret, secret_name, kube_namespace)
    assert secret["data"] == {"OPENAI_API_KEY": "c2stb25seS1pbi10aGUtc2VjcmV0"}
    claims = read(
        client.CoreV1Api(kube_api).list_namespaced_persistent_volume_claim, kube_namespace
    )
    assert len(claims["items"]) == 1
    for owned in (secret, claims["items"][0]):
        (reference,) = owned["metadata"]["ownerReferences"]
        assert reference["uid"] == deployment["metadata"]["uid"]
        assert {k: reference[k] for k in owner} == owner
        assert owned["metadata"]["labels"][L.ID] == agent.id
    (running,) = pods_of(kube_api, kube_namespace, agent.id)
    assert running["spec"]["nodeName"] == "fake-node"
    assert running["spec"]["hostname"] == "aptest-stored"


async def test_the_workspace_survives_stop_and_start_and_goes_with_delete(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    agent = await kube_backend.spawn(
        spec("aptest-ws", workspace=True), owner="alice", resources=SMALL
    )
    claims = names(kube_api, core.list_namespaced_persistent_volume_claim, kube_namespace)
    assert len(claims) == 1

    assert (
        await kube_backend.stop(agent.id, owner="alice", timeout=0)
    ).status is AgentStatus.STOPPED
    assert pods_of(kube_api, kube_namespace, agent.id) == []
    assert the_deployment(kube_api, kube_namespace, agent.id)["spec"]["replicas"] == 0
    assert names(kube_api, core.list_namespaced_persistent_volume_claim, kube_namespace) == claims

    assert (await kube_backend.start(agent.id, owner="alice")).status is AgentStatus.RUNNING
    (pod,) = pods_of(kube_api, kube_namespace, agent.id)
    mounted = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert set(mounted) == claims

    await kube_backend.delete(agent.id, owner="alice")
    wait_until("everything to go", lambda: not leftovers(kube_api, kube_namespace))


async def test_network_none_is_a_deny_all_policy_on_the_agent_only(
    kube_env: KubeTestEnv, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    networking = client.NetworkingV1Api(kube_api)
    enforced = kubernetes_orchestrator(
        kube_env.kubeconfig, kube_namespace, kube_network_policy_enforced=True
    )
    try:
        isolated = await enforced.spawn(
            spec("aptest-alone", network="none"), owner="alice", resources=SMALL
        )
        social = await enforced.spawn(spec("aptest-social"), owner="alice", resources=SMALL)

        policies = read(networking.list_namespaced_network_policy, kube_namespace)["items"]
        by_agent = {p["spec"]["podSelector"]["matchLabels"][L.ID]: p for p in policies}
        assert sorted(by_agent) == sorted([isolated.id, social.id])
        # Only the deny-all: the baseline's allows would be added to it.
        policy = by_agent[isolated.id]
        assert policy["metadata"]["name"] == f"{TEST_PREFIX}isolate-{isolated.id}"
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert not policy["spec"].get("ingress")
        assert not policy["spec"].get("egress")
        assert isolated.network == "none"

        await enforced.delete(isolated.id, owner="alice")
        remaining = read(networking.list_namespaced_network_policy, kube_namespace)["items"]
        assert [p["metadata"]["name"] for p in remaining] == [f"{TEST_PREFIX}baseline-{social.id}"]
    finally:
        await enforced.close()


async def test_an_image_that_cannot_be_pulled_leaves_nothing(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    missing = AgentSpec(
        name="aptest-pull",
        image="registry.example/does-not-exist:1",
        secrets={"TOKEN": "t"},  # type: ignore[dict-item]
        workspace=True,
    )
    with pytest.raises(ImageNotFound) as refused:
        await kube_backend.spawn(missing, owner="alice", resources=SMALL)
    assert "registry.example/does-not-exist:1" in refused.value.detail
    assert "ErrImagePull" in refused.value.detail
    assert await kube_backend.list() == []
    apps, core = client.AppsV1Api(kube_api), client.CoreV1Api(kube_api)
    assert read(apps.list_namespaced_deployment, kube_namespace)["items"] == []
    assert names(kube_api, core.list_namespaced_secret, kube_namespace) <= {
        s["metadata"]["name"]
        for s in read(core.list_namespaced_secret, kube_namespace)["items"]
        if s["type"] == "kubernetes.io/service-account-token"
    }
    wait_until("everything to go", lambda: not leftovers(kube_api, kube_namespace))


async def test_a_crashing_agent_is_failed_with_the_reason(
    kube_backend: KubernetesOrchestrator,
) -> None:
    agent = await kube_backend.spawn(
        AgentSpec(name="aptest-crash", image=IMAGE, command=["false"]),
        owner="alice",
        resources=SMALL,
    )
    assert agent.status is AgentStatus.FAILED
    assert agent.detail is not None
    assert agent.detail.startswith("crash_loop: exited with code 1")
    assert "CrashLoopBackOff" in agent.detail
    listed = await kube_backend.list(owner="alice")
    assert [(a.status, a.detail) for a in listed] == [(agent.status, agent.detail)]


async def test_restart_rolls_out_a_new_pod(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    agent = await kube_backend.spawn(spec("aptest-roll"), owner="alice", resources=SMALL)
    (before,) = pods_of(kube_api, kube_namespace, agent.id)

    restarted = await kube_backend.restart(agent.id, owner="alice", timeout=0)

    assert restarted.status is AgentStatus.RUNNING
    wait_until("the old pod to go", lambda: len(pods_of(kube_api, kube_namespace, agent.id)) == 1)
    (after,) = pods_of(kube_api, kube_namespace, agent.id)
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert "kubectl.kubernetes.io/restartedAt" in after["metadata"]["annotations"]


async def test_logs_of_a_stopped_agent_are_empty_and_follow_ends_with_delete(
    kube_backend: KubernetesOrchestrator,
) -> None:
    agent = await kube_backend.spawn(spec("aptest-quiet"), owner="alice", resources=SMALL)
    follow = await kube_backend.logs(agent.id, owner="alice", options=LogOptions(follow=True))
    first = await anext(aiter(follow))
    assert b"started" in first
    await kube_backend.delete(agent.id, owner="alice")
    rest_of_it = b"".join([chunk async for chunk in follow])
    assert b"fake-kubelet: tick" in rest_of_it or rest_of_it == b""

    other = await kube_backend.spawn(spec("aptest-stopped"), owner="alice", resources=SMALL)
    await kube_backend.stop(other.id, owner="alice", timeout=0)
    stopped = await kube_backend.logs(other.id, owner="alice", options=LogOptions())
    assert [chunk async for chunk in stopped] == []
    future = LogOptions(since=datetime.now(UTC) + timedelta(hours=1))
    await kube_backend.start(other.id, owner="alice")
    assert [c async for c in await kube_backend.logs(other.id, owner="alice", options=future)] == []


@contextlib.contextmanager
def api_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """``METHOD url`` of every request sent to the API server while the block runs."""
    calls: list[str] = []
    original: Callable[..., Any] = rest.RESTClientObject.request

    def counting(self: rest.RESTClientObject, method: str, url: str, *args: Any, **kw: Any) -> Any:
        calls.append(f"{method} {url}")
        return original(self, method, url, *args, **kw)

    monkeypatch.setattr(rest.RESTClientObject, "request", counting)
    try:
        yield calls
    finally:
        monkeypatch.setattr(rest.RESTClientObject, "request", original)


async def test_a_list_costs_two_calls_whatever_the_fleet(
    kube_backend: KubernetesOrchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def calls_for_list() -> list[str]:
        with api_calls(monkeypatch) as calls:
            await kube_backend.list()
        return calls

    await kube_backend.spawn(spec("aptest-n0"), owner="alice", resources=SMALL)
    with_one = await calls_for_list()
    for index in (1, 2, 3):
        await kube_backend.spawn(spec(f"aptest-n{index}"), owner="alice", resources=SMALL)
    with_four = await calls_for_list()

    assert len(with_one) == len(with_four) == 2
    assert "/deployments?" in with_four[0]
    assert "/pods?" in with_four[1]


async def test_a_spawn_with_a_key_and_a_quota_lists_the_owners_agents_once(
    kube_backend: KubernetesOrchestrator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One query of the owner's Deployments answers both the Idempotency-Key replay and the
    # quota, before the Deployment is created.
    with api_calls(monkeypatch) as calls:
        await kube_backend.spawn(
            spec("aptest-q1"), owner="alice", resources=SMALL, idempotency_key="q-1", max_agents=5
        )
    create = next(i for i, c in enumerate(calls) if c.startswith("POST") and "/deployments" in c)
    assert [c.split(" ")[0] for c in calls[:create]] == ["GET"]
    assert "/deployments?" in calls[0]


async def test_the_quota_counts_the_owners_agents(kube_backend: KubernetesOrchestrator) -> None:
    first = await kube_backend.spawn(
        spec("aptest-q1"), owner="alice", resources=SMALL, idempotency_key="k1", max_agents=1
    )
    with pytest.raises(AgentQuotaExceeded):
        await kube_backend.spawn(spec("aptest-q2"), owner="alice", resources=SMALL, max_agents=1)
    again = await kube_backend.spawn(
        spec("aptest-q1"), owner="alice", resources=SMALL, idempotency_key="k1", max_agents=1
    )
    assert again.id == first.id
    await kube_backend.spawn(spec("aptest-q1"), owner="bob", resources=SMALL, max_agents=1)


async def test_per_owner_ceilings_count_cpus_and_memory(
    kube_backend: KubernetesOrchestrator,
) -> None:
    cpus = OwnerCeilings(cpus=0.75)
    await kube_backend.spawn(spec("aptest-c1"), owner="alice", resources=SMALL, ceilings=cpus)
    with pytest.raises(AgentQuotaExceeded, match=r"^cpus:"):
        await kube_backend.spawn(spec("aptest-c2"), owner="alice", resources=SMALL, ceilings=cpus)
    memory = OwnerCeilings(memory_mb=100)
    with pytest.raises(AgentQuotaExceeded, match=r"^memory_mb:"):
        await kube_backend.spawn(spec("aptest-c3"), owner="alice", resources=SMALL, ceilings=memory)
    # Another owner has ceilings of its own.
    await kube_backend.spawn(spec("aptest-c1"), owner="bob", resources=SMALL, ceilings=cpus)
    assert {a.name for a in await kube_backend.list(owner="alice")} == {"aptest-c1"}


async def test_ephemeral_storage_comes_from_the_settings(
    kube_env: KubeTestEnv, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    backend = kubernetes_orchestrator(
        kube_env.kubeconfig,
        kube_namespace,
        kube_ephemeral_storage_request="64Mi",
        kube_ephemeral_storage_limit="512Mi",
    )
    try:
        agent = await backend.spawn(spec("aptest-disk"), owner="alice", resources=SMALL)
        deployment = the_deployment(kube_api, kube_namespace, agent.id)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"]["requests"]["ephemeral-storage"] == "64Mi"
        assert container["resources"]["limits"]["ephemeral-storage"] == "512Mi"
        await backend.delete(agent.id)
    finally:
        await backend.close()


def interrupted_spawn(
    api: client.ApiClient, namespace: str, agent: AgentSpec, *, key: str | None = None
) -> JSON:
    """A Deployment as a spawn leaves it when the service dies right after creating it."""
    schema = L.system_labels(
        instance=L.instance_name(TEST_PREFIX),
        agent_id=uuid.uuid4().hex,
        owner="alice",
        created_at=datetime.now(UTC),
        spec=StoredSpec.from_spec(agent, SMALL),
        idempotency=L.idempotency_hash("alice", key) if key else None,
    )
    manifest = build_deployment(
        agent,
        labels=schema,
        name=deployment_name(TEST_PREFIX, "alice", agent.name),
        prefix=TEST_PREFIX,
        resources=SMALL,
        settings=KubernetesConfig(),
    )
    return read(client.AppsV1Api(api).create_namespaced_deployment, namespace, manifest)


async def test_a_replayed_key_finishes_an_interrupted_spawn(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    agent = spec("aptest-half", secrets={"TOKEN": "t0k3n"})
    created = interrupted_spawn(kube_api, kube_namespace, agent, key="spawn-1")
    assert (await kube_backend.list())[0].status is AgentStatus.PENDING

    finished = await kube_backend.spawn(
        agent, owner="alice", resources=SMALL, idempotency_key="spawn-1"
    )

    assert finished.id == created["metadata"]["labels"][L.ID]
    core = client.CoreV1Api(kube_api)
    secrets = [
        s
        for s in read(core.list_namespaced_secret, kube_namespace)["items"]
        if s["type"] == "Opaque"
    ]
    assert [s["metadata"]["labels"][L.ID] for s in secrets] == [finished.id]
    wait_until(
        "the finished agent to run",
        lambda: any(
            p["status"].get("phase") == "Running"
            for p in pods_of(kube_api, kube_namespace, finished.id)
        ),
    )


async def test_the_sweep_removes_what_interrupted_spawns_left(
    kube_backend: KubernetesOrchestrator, kube_api: client.ApiClient, kube_namespace: str
) -> None:
    core = client.CoreV1Api(kube_api)
    kept = await kube_backend.spawn(
        spec("aptest-kept", secrets={"A": "1"}, workspace=True), owner="alice", resources=SMALL
    )
    stale = interrupted_spawn(kube_api, kube_namespace, spec("aptest-stale"))
    orphan_labels = L.owned_labels(
        instance=L.instance_name(TEST_PREFIX),
        agent_id="f" * 32,
        owner="alice",
        kind=L.Kind.WORKSPACE,
    )
    orphan = {
        "metadata": {"name": f"{TEST_PREFIX}ws-{'f' * 32}", "labels": orphan_labels},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    core.create_namespaced_persistent_volume_claim(kube_namespace, orphan)  # type: ignore[arg-type]
    # The sweep never lists Secrets (that would read every value in the namespace).
    stranger = {"metadata": {"name": "not-ours", "labels": orphan_labels}, "stringData": {"x": "y"}}
    core.create_namespaced_secret(kube_namespace, stranger)  # type: ignore[arg-type]

    young = await kube_backend.sweep()
    assert young.removed == []
    later = await kube_backend.sweep(now=datetime.now(UTC) + timedelta(hours=1))

    assert sorted(later.removed) == sorted([stale["metadata"]["name"], orphan["metadata"]["name"]])
    assert later.stopped == []
    assert [a.id for a in await kube_backend.list()] == [kept.id]
    assert "not-ours" in names(kube_api, core.list_namespaced_secret, kube_namespace)
    claims = names(kube_api, core.list_namespaced_persistent_volume_claim, kube_namespace)
    assert orphan["metadata"]["name"] not in claims
    core.delete_namespaced_secret("not-ours", kube_namespace)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_an_unreachable_or_unconfigured_cluster_is_unavailable(
    kube_env: KubeTestEnv, tmp_path: Path
) -> None:
    config = json.loads(kube_env.kubeconfig.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{closed_port()}"
    down = tmp_path / "down.kubeconfig"
    down.write_text(json.dumps(config))
    for path in (down, tmp_path / "missing.kubeconfig"):
        backend = kubernetes_orchestrator(path, "default", engine_timeout=2.0, kube_retries=1)
        try:
            with pytest.raises(OrchestratorUnavailable):
                await backend.ping()
            with pytest.raises(OrchestratorUnavailable):
                await backend.list()
        finally:
            await backend.close()


async def test_a_namespace_without_the_role_is_forbidden(
    service_account: ServiceAccountAccess, kube_namespace: str
) -> None:
    backend = kubernetes_orchestrator(service_account.kubeconfig, kube_namespace)
    try:
        with pytest.raises(EngineError) as forbidden:
            await backend.list()
        assert "forbid" in forbidden.value.detail
        with pytest.raises(EngineError):
            await backend.spawn(spec("aptest-nope"), owner="alice", resources=SMALL)
    finally:
        await backend.close()

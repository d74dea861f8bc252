"""The list figures on the Kubernetes backend: agent-api against the API server itself.

``kubernetes_list_comparisons`` starts a disposable control plane
(``testenv.kube_env.KubeTestEnv``: etcd, kube-apiserver, controller-manager,
scheduler and a fake kubelet that makes pods Running), a fresh namespace named with the
run's prefix, and a service process with ``ORCHESTRATOR=kubernetes`` pointed at it with
the admin's kubeconfig. At each fleet size the fleet grows as the backend's own objects:
the Deployment ``orchestrators.kubernetes.objects`` builds for a busybox sleeper, scaled to
one and without the spawning mark (what a finished spawn leaves), owned by one owner,
created straight on the API server in parallel and waited for until every pod is ready.
Then ``GET /v1/agents?owner=`` (every page of 1000) is timed against the API server's own
list of those Deployments with the label selector the service sends, over HTTPS with httpx
and the admin token, with ``drivers.paired_rounds`` as the Docker figures are. Last, the
staleness of the service's model: ten agents are stopped straight on the API server (as
another replica would) and timed until the service's get says so (logged).

The namespace, the service and the control plane are removed whatever happens. Without the
control-plane binaries (``scripts/kube-testenv-build.sh`` builds them; it is run when they
are missing unless ``KUBE_TESTENV_NO_BUILD=1``) the figures are skipped, with the reason.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import statistics
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from orchestrators import labels as L
from orchestrators.config import KubernetesConfig
from orchestrators.kubernetes.api import label_selector
from orchestrators.kubernetes.objects import (
    SPAWNING,
    Manifest,
    build_deployment,
    deployment_name,
)
from orchestrators.kubernetes.status import is_ready
from orchestrators.models import ResourceRequest, Resources, StoredSpec
from testenv.fake_kubelet import RESOURCES as NODE_RESOURCES
from testenv.images import BUSYBOX_IMAGE
from testenv.kube_env import KubeTestEnv, KubeTestEnvError, missing_binaries

from .config import BenchConfig
from .drivers import paired_rounds
from .engine import sleeper_spec
from .results import Comparison, TargetCheck
from .service import Service
from .targets import LIMITS

__all__ = [
    "FLEET_RESOURCES",
    "LIST_BEGIN",
    "LIST_END",
    "OPERATION",
    "fleet_deployment",
    "kubernetes_list_comparisons",
    "kubernetes_targets",
]

OPERATION = "list (kubernetes)"
# The report's section of ``--only kubernetes`` (written by hand, kept by a full run).
LIST_BEGIN = "<!-- kubernetes-list: figures of python -m benchmarks --only kubernetes -->"
LIST_END = "<!-- /kubernetes-list -->"
_BUILD_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "kube-testenv-build.sh"
_LAST_PAGE = b'"next_cursor":null}'
# The fake kubelet's one node takes 1000 pods and 64 CPUs: the Docker sleepers' tenth of a
# CPU would leave 360 of 1000 pods Pending, so the fleet requests a hundredth.
FLEET_RESOURCES = Resources(cpus=0.01, memory_mb=16, pids=16)
NODE_PODS = int(NODE_RESOURCES["pods"])
Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class KubernetesBenchError(RuntimeError):
    """The Kubernetes figures could not be taken (a fleet that never became ready, ...)."""


# -- the control plane and the namespace -------------------------------------------------


def _build_binaries(log: Log) -> str | None:
    """Run the build script when binaries are missing; why they are still missing, or None."""
    if not missing_binaries():
        return None
    if os.environ.get("KUBE_TESTENV_NO_BUILD") != "1":
        log(f"building the control-plane binaries ({_BUILD_SCRIPT.name}, several minutes)")
        try:
            result = subprocess.run(  # noqa: S603 - the repository's script, fixed arguments
                ["bash", str(_BUILD_SCRIPT)],  # noqa: S607
                capture_output=True,
                text=True,
                timeout=3600,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{_BUILD_SCRIPT.name} did not complete: {exc}"
        if result.returncode != 0:
            tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
            return f"{_BUILD_SCRIPT.name} failed: {tail[0][:300]}"
    missing = missing_binaries()
    return f"missing {', '.join(missing)} (see {_BUILD_SCRIPT.name})" if missing else None


def _control_plane(log: Log) -> KubeTestEnv | str:
    """A started control plane, or why there is none (the figures are then skipped)."""
    reason = _build_binaries(log)
    if reason is not None:
        return f"skipped: no Kubernetes control plane to run against: {reason}"
    try:
        return KubeTestEnv().start()
    except KubeTestEnvError as exc:
        return f"skipped: the Kubernetes control plane did not start: {str(exc)[:500]}"


def _call(method: Callable[..., Any], *args: Any) -> None:
    """One API call whose answer is read but not deserialised."""
    response = method(*args, _preload_content=False, _request_timeout=60)
    try:
        response.drain_conn()  # a connection goes back to the pool with nothing unread
    finally:
        response.release_conn()


def _delete_namespace(core: client.CoreV1Api, name: str, *, wait: float) -> None:
    """Delete it; wait up to ``wait`` seconds until it is gone (0: do not wait)."""
    try:
        _call(core.delete_namespace, name)
    except ApiException as exc:
        if exc.status != 404:
            raise
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            _call(core.read_namespace, name)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        time.sleep(0.5)
    if wait > 0:
        raise KubernetesBenchError(f"namespace {name} still exists after {wait:.0f} s")


# -- the fleet ------------------------------------------------------------------------------


def fleet_deployment(prefix: str, owner: str, name: str) -> Manifest:
    """The Deployment the backend leaves after spawning a busybox sleeper ``name`` for
    ``owner``: its labels and pod, scaled to one, without the spawning mark."""
    spec = sleeper_spec(name, BUSYBOX_IMAGE).model_copy(
        update={"resources": ResourceRequest(**FLEET_RESOURCES.model_dump())}
    )
    schema = L.system_labels(
        instance=L.instance_name(prefix),
        agent_id=uuid.uuid4().hex,
        owner=owner,
        created_at=datetime.now(UTC),
        spec=StoredSpec.from_spec(spec, FLEET_RESOURCES),
        idempotency=None,
    )
    manifest = build_deployment(
        spec,
        labels=schema,
        name=deployment_name(prefix, owner, name),
        prefix=prefix,
        resources=FLEET_RESOURCES,
        settings=KubernetesConfig(pull_missing_images=False),  # as the service is configured
    )
    manifest["spec"]["replicas"] = 1
    del manifest["metadata"]["annotations"][SPAWNING]
    return manifest


def _create_fleet(
    apps: client.AppsV1Api, namespace: str, manifests: Sequence[Manifest], workers: int
) -> None:
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="kube-fleet")
    try:
        list(pool.map(lambda m: _call(apps.create_namespaced_deployment, namespace, m), manifests))
    finally:
        pool.shutdown(cancel_futures=True)  # Ctrl-C: no more creates


def _ready(api: httpx.Client, namespace: str, selector: str) -> tuple[int, int]:
    """How many Deployments are available and how many of their pods are ready."""
    params = {"labelSelector": selector}
    deployments = _expect(
        api.get(f"/apis/apps/v1/namespaces/{namespace}/deployments", params=params)
    ).json()["items"]
    pods = _expect(api.get(f"/api/v1/namespaces/{namespace}/pods", params=params)).json()["items"]
    available = sum(1 for d in deployments if (d.get("status") or {}).get("availableReplicas"))
    return available, sum(1 for p in pods if is_ready(p))


def _wait_until_ready(api: httpx.Client, namespace: str, selector: str, size: int) -> None:
    """Until every agent runs and the controllers are done (nothing changes while timed)."""
    timeout = 120.0 + 0.5 * size
    deadline = time.monotonic() + timeout
    while (counts := _ready(api, namespace, selector)) != (size, size):
        if time.monotonic() > deadline:
            raise KubernetesBenchError(
                f"after {timeout:.0f} s, {counts[0]} of {size} Deployments available and "
                f"{counts[1]} pods ready"
            )
        time.sleep(0.5)


# -- the two sides ----------------------------------------------------------------------------


def _expect(response: httpx.Response) -> httpx.Response:
    if response.status_code != 200:
        raise KubernetesBenchError(
            f"GET {response.request.url.path} answered {response.status_code}: "
            f"{response.text[:300]}"
        )
    return response


def _api_server_client(env: KubeTestEnv) -> httpx.Client:
    """The baseline: httpx over HTTPS, the admin token, the control plane's CA."""
    return httpx.Client(
        base_url=env.server,
        headers={"Authorization": f"Bearer {env.admin_token}"},
        verify=ssl.create_default_context(cafile=str(env.ca_file)),
        timeout=120,
        trust_env=False,
    )


def _service_list(service: httpx.Client, owner: str) -> int:
    """Every agent of ``owner`` through ``GET /v1/agents`` (pages of 1000); the pages read."""
    params = {"owner": owner, "limit": "1000"}
    pages = 0
    while True:
        response = _expect(service.get("/v1/agents", params=params))
        pages += 1
        if response.content.endswith(_LAST_PAGE):
            return pages
        params["cursor"] = response.json()["next_cursor"]


def _service_statuses(service: httpx.Client, owner: str) -> list[str]:
    params = {"owner": owner, "limit": "1000"}
    statuses: list[str] = []
    while True:
        body: dict[str, Any] = _expect(service.get("/v1/agents", params=params)).json()
        statuses += [str(agent["status"]) for agent in body["items"]]
        if body["next_cursor"] is None:
            return statuses
        params["cursor"] = body["next_cursor"]


def _wait_for_service(service: httpx.Client, owner: str, size: int, wait: float = 120.0) -> None:
    """Until the service lists the whole fleet running: its list comes from the model the
    watch feeds, which may lag the API server by the last changes."""
    deadline = time.monotonic() + wait
    while (statuses := _service_statuses(service, owner)) != ["running"] * size:
        if time.monotonic() > deadline:
            counts = {s: statuses.count(s) for s in set(statuses)}
            raise KubernetesBenchError(f"the service lists {len(statuses)} agents: {counts}")
        time.sleep(0.5)


def _staleness(
    apps: client.AppsV1Api,
    service: httpx.Client,
    namespace: str,
    prefix: str,
    owner: str,
    names: list[str],
) -> list[float]:
    """Seconds from a stop written straight on the API server (another replica's, in
    effect) until the service's ``GET /v1/agents/{name}`` says stopped: how stale a
    replica's model is. Polled every 5 ms; those agents are left stopped."""
    lags = []
    for name in names:
        began = time.perf_counter()
        stop = {"spec": {"replicas": 0}}
        apps.patch_namespaced_deployment(deployment_name(prefix, owner, name), namespace, stop)
        while True:
            agent = _expect(service.get(f"/v1/agents/{name}", params={"owner": owner})).json()
            if agent["status"] == "stopped":
                break
            if time.perf_counter() - began > 60:
                raise KubernetesBenchError(f"{name} still {agent['status']} after 60 s")
            time.sleep(0.005)
        lags.append(time.perf_counter() - began)
    return lags


def _measure(
    config: BenchConfig,
    size: int,
    service: Callable[[], object],
    api_server: Callable[[], object],
) -> Comparison:
    # As the Docker list figure: fewer calls per repetition for big fleets, never fewer than 8.
    calls = max(8, min(config.list_requests, 8000 // size))
    proxy, engine = paired_rounds(
        config.repetitions, calls, lambda _: service(), lambda _: api_server()
    )
    return Comparison(OPERATION, size, proxy, engine)


# -- the figures ------------------------------------------------------------------------------


def _start_service(env: KubeTestEnv, namespace: str, config: BenchConfig) -> Service:
    """agent-api with ``ORCHESTRATOR=kubernetes``, the admin's kubeconfig, that namespace."""
    service = Service(
        prefix=config.prefix,
        network=config.network,
        extra_env={
            "ORCHESTRATOR": "kubernetes",
            "AGENT_API_KUBECONFIG": str(env.kubeconfig),
            "AGENT_API_KUBE_NAMESPACE": namespace,
        },
    )
    try:
        service.start()
    except BaseException:
        service.close()
        raise
    return service


def _figures(env: KubeTestEnv, namespace: str, config: BenchConfig, log: Log) -> list[Comparison]:
    """Start the service on ``namespace``, grow the fleet through the sizes, time the lists."""
    owner = f"fleet{secrets.token_hex(3)}"
    selector = label_selector(L.selector(instance=L.instance_name(config.prefix), owner=owner))
    deployments = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    apps = client.AppsV1Api(env.api_client())
    figures: list[Comparison] = []
    with contextlib.ExitStack() as stack:
        service = _start_service(env, namespace, config)
        stack.callback(service.close)
        log(f"kubernetes: agent-api pid {service.pid} on {service.url}, namespace {namespace}")
        api = stack.enter_context(_api_server_client(env))
        proxy = stack.enter_context(
            httpx.Client(
                base_url=service.url, headers=service.headers, timeout=120, trust_env=False
            )
        )

        def api_server_list() -> object:
            return _expect(api.get(deployments, params={"labelSelector": selector}))

        def service_list() -> object:
            return _service_list(proxy, owner)

        grown = 0
        for size in sorted(set(config.sizes)):
            began = time.perf_counter()
            names = [f"k-{i:05d}" for i in range(grown, size)]
            manifests = [fleet_deployment(config.prefix, owner, name) for name in names]
            _create_fleet(apps, namespace, manifests, config.fleet_workers)
            grown = size
            _wait_until_ready(api, namespace, selector, size)
            log(f"kubernetes: fleet of {size} ready in {time.perf_counter() - began:.0f} s")
            _wait_for_service(proxy, owner, size)
            figures.append(_measure(config, size, service_list, api_server_list))
            log(f"  {OPERATION} at {size}: ratio p50 {figures[-1].ratio(50).median:.2f}")
        stopped = [f"k-{i:05d}" for i in range(min(10, grown))]
        lags = _staleness(apps, proxy, namespace, config.prefix, owner, stopped)
        log(
            f"kubernetes: staleness over {len(lags)} stops made on the API server, until the "
            f"service's get shows them: p50 {statistics.median(lags) * 1000:.0f} ms, "
            f"max {max(lags) * 1000:.0f} ms"
        )
    return figures


def _in_namespace(
    env: KubeTestEnv, config: BenchConfig, log: Log, *, wait: float
) -> list[Comparison] | str:
    """The figures in a fresh namespace, deleted afterwards whatever happens; an error
    becomes the reason the figures are missing (the rest of a run keeps its figures)."""
    core = client.CoreV1Api(env.api_client())
    namespace = f"{config.prefix}k8s-{secrets.token_hex(3)}"
    _call(core.create_namespace, {"metadata": {"name": namespace}})
    try:
        env.wait_for_service_account(namespace)  # pods are refused until it has its token
        return _figures(env, namespace, config, log)
    except Exception as exc:
        log(f"kubernetes: failed: {exc}")
        return f"failed: {type(exc).__name__}: {str(exc)[:500]}"
    finally:
        _delete_namespace(core, namespace, wait=wait)


def kubernetes_list_comparisons(
    config: BenchConfig, log: Log = _quiet, env: KubeTestEnv | None = None
) -> list[Comparison] | str:
    """The list figures on Kubernetes, or why they were not measured.

    ``env`` is a running control plane to use (the tests'); without one, one is started
    here and stopped at the end. The namespace is deleted in any case; on a control plane
    that is not ours, the call returns only once it is gone.
    """
    if not config.kubernetes:
        return "skipped: turned off (--no-kubernetes)"
    if max(config.sizes) > NODE_PODS:
        return (
            f"skipped: the test cluster's one node holds {NODE_PODS} pods, not {max(config.sizes)}"
        )
    if env is not None:
        return _in_namespace(env, config, log, wait=120.0)
    started = _control_plane(log)
    if isinstance(started, str):
        return started
    try:
        return _in_namespace(started, config, log, wait=0.0)
    finally:
        started.stop()


def kubernetes_targets(comparisons: Sequence[Comparison]) -> list[TargetCheck]:
    """The list target at the largest Kubernetes fleet, when the figures were measured."""
    measured = [c for c in comparisons if c.operation == OPERATION]
    if not measured:
        return []
    largest = max(measured, key=lambda c: c.size)
    ratio = largest.ratio(50).median
    return [
        TargetCheck(
            name=f"list at {largest.size} agents on Kubernetes",
            goal=f"p50 ratio <= {LIMITS['list']}",
            measured=f"{ratio:.2f} (p95 ratio {largest.ratio(95).median:.2f})",
            met=ratio <= LIMITS["list"],
            size=largest.size,
        )
    ]

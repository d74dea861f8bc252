"""Smoke tests: the Kubernetes test environment runs workloads through a real kube-apiserver.

The control plane is the session's (``testenv/kube_fixture.py``): built by
``scripts/kube-testenv-build.sh`` when the binaries are missing (a one-time build of several
minutes; ``KUBE_TESTENV_NO_BUILD=1`` prevents it). With ``CI=true`` a missing or failing
environment fails the tests; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import base64
import functools
import re
import secrets
import time
from collections.abc import Callable, Iterator
from typing import TypeVar, cast

import pytest
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from testenv.kube_env import KubeTestEnv

pytestmark = pytest.mark.kubernetes

MERGE_PATCH = "application/merge-patch+json"
SCRIPT = "echo hello from agent; echo second line; sleep 3600"
T = TypeVar("T")


@pytest.fixture(scope="session")
def core(kube_env: KubeTestEnv) -> client.CoreV1Api:
    return client.CoreV1Api(kube_env.api_client())


@pytest.fixture(scope="session")
def apps(kube_env: KubeTestEnv) -> client.AppsV1Api:
    return client.AppsV1Api(kube_env.api_client())


@pytest.fixture
def namespace(kube_env: KubeTestEnv, core: client.CoreV1Api) -> Iterator[str]:
    name = f"aptest-{secrets.token_hex(4)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    kube_env.wait_for_service_account(name)
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None and value is not False:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def container(name: str, image: str, command: list[str]) -> client.V1Container:
    return client.V1Container(name=name, image=image, command=command)


def create_deployment(apps: client.AppsV1Api, namespace: str, name: str) -> None:
    labels = {"app": name}
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=labels),
        spec=client.V1PodSpec(
            containers=[container("agent", "busybox:test", ["sh", "-c", SCRIPT])]
        ),
    )
    spec = client.V1DeploymentSpec(
        replicas=1, selector=client.V1LabelSelector(match_labels=labels), template=template
    )
    body = client.V1Deployment(metadata=client.V1ObjectMeta(name=name), spec=spec)
    apps.create_namespaced_deployment(namespace, body)


def running_pod(core: client.CoreV1Api, namespace: str, app: str) -> client.V1Pod:
    def probe() -> client.V1Pod | None:
        for pod in core.list_namespaced_pod(namespace, label_selector=f"app={app}").items:
            status = pod.status
            if (
                status is not None
                and status.phase == "Running"
                and pod.metadata is not None
                and pod.metadata.deletion_timestamp is None
                and all(c.ready for c in status.container_statuses or [])
            ):
                return pod
        return None

    return wait_for(f"a Running pod of {app}", probe)


def pod_names(core: client.CoreV1Api, namespace: str, app: str) -> list[str]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [str(pod.metadata.name) for pod in pods if pod.metadata is not None]


def test_deployment_gets_a_running_pod_and_scales_to_zero(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str
) -> None:
    create_deployment(apps, namespace, "smoke")
    pod = running_pod(core, namespace, "smoke")
    assert pod.spec is not None
    assert pod.spec.node_name == "fake-node"
    assert pod.status is not None
    assert str(pod.status.pod_ip).startswith("10.244.")

    apps.patch_namespaced_deployment_scale(
        "smoke", namespace, {"spec": {"replicas": 0}}, _content_type=MERGE_PATCH
    )
    wait_for("the pod to go", lambda: not pod_names(core, namespace, "smoke"))


def test_pod_logs_flow_through_the_api_server(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str
) -> None:
    create_deployment(apps, namespace, "logs")
    pod = str(running_pod(core, namespace, "logs").metadata.name)  # type: ignore[union-attr]
    started = f"fake-kubelet: started {pod}/agent\n"

    assert core.read_namespaced_pod_log(pod, namespace) == (
        f"{started}hello from agent\nsecond line\n"
    )
    assert core.read_namespaced_pod_log(pod, namespace, tail_lines=1) == "second line\n"
    stamped = core.read_namespaced_pod_log(pod, namespace, timestamps=True).splitlines()
    assert all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z ", line) for line in stamped)

    follow = cast(
        urllib3.BaseHTTPResponse,
        core.read_namespaced_pod_log(pod, namespace, follow=True, _preload_content=False),
    )
    lines = []
    for raw in follow:
        lines.append(raw.decode().rstrip("\n"))
        if len(lines) == 5:
            break
    follow.close()  # the client cancels
    follow.release_conn()
    assert lines[:3] == [started.strip(), "hello from agent", "second line"]
    assert lines[3:] == ["fake-kubelet: tick 1", "fake-kubelet: tick 2"]

    follow = cast(
        urllib3.BaseHTTPResponse,
        core.read_namespaced_pod_log(
            pod, namespace, follow=True, tail_lines=0, _preload_content=False
        ),
    )
    assert next(iter(follow)) == b"fake-kubelet: tick 1\n"
    core.delete_namespaced_pod(pod, namespace)
    begun = time.monotonic()
    follow.read()  # the stream ends once the pod is being deleted
    follow.close()
    follow.release_conn()
    assert time.monotonic() - begun < 10


def test_simulated_failures(core: client.CoreV1Api, namespace: str) -> None:
    cases = {
        "pull": (
            container("agent", "registry.local/does-not-exist:1", ["sleep", "1"]),
            "ErrImagePull",
        ),
        "crash": (container("agent", "busybox:test", ["false"]), "CrashLoopBackOff"),
    }
    for name, (spec, _) in cases.items():
        body = client.V1Pod(
            metadata=client.V1ObjectMeta(name=name), spec=client.V1PodSpec(containers=[spec])
        )
        core.create_namespaced_pod(namespace, body)

    def reason(name: str) -> str | None:
        status = core.read_namespaced_pod(name, namespace).status
        statuses = (status.container_statuses if status else None) or []
        waiting = statuses[0].state.waiting if statuses and statuses[0].state else None
        return waiting.reason if waiting else None

    for name, (_, expected) in cases.items():
        assert wait_for(f"{name} to fail", functools.partial(reason, name)) == expected
    with pytest.raises(ApiException) as pulling:
        core.read_namespaced_pod_log("pull", namespace)
    assert pulling.value.status == 400


def test_delete_deployment_and_namespace_clean_up(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str
) -> None:
    create_deployment(apps, namespace, "gone")
    running_pod(core, namespace, "gone")

    apps.delete_namespaced_deployment("gone", namespace, propagation_policy="Foreground")
    wait_for("the pods to go", lambda: not pod_names(core, namespace, "gone"))
    create_deployment(apps, namespace, "gone-too")
    running_pod(core, namespace, "gone-too")

    core.delete_namespace(namespace)

    def namespace_gone() -> bool:
        try:
            core.read_namespace(namespace)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_for(f"namespace {namespace} to go", namespace_gone, timeout=120)


def test_service_account_token_kubeconfig(
    kube_env: KubeTestEnv, core: client.CoreV1Api, namespace: str
) -> None:
    rbac = client.RbacAuthorizationV1Api(kube_env.api_client())
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader"))
    )
    rule = client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])
    meta = client.V1ObjectMeta(name="reader")
    rbac.create_namespaced_role(namespace, client.V1Role(metadata=meta, rules=[rule]))
    subject = client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)
    ref = client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="reader")
    binding = client.V1RoleBinding(metadata=meta, subjects=[subject], role_ref=ref)
    rbac.create_namespaced_role_binding(namespace, binding)

    def token() -> str | None:
        account = core.read_namespaced_service_account("reader", namespace)
        if not account.secrets:
            return None
        secret = core.read_namespaced_secret(str(account.secrets[0].name), namespace)
        return base64.b64decode((secret.data or {})["token"]).decode()

    path = kube_env.kubeconfig_for_token(wait_for("the reader token", token))
    reader = config.new_client_from_config(config_file=str(path))  # type: ignore[no-untyped-call]
    as_reader = client.CoreV1Api(reader)
    try:
        assert as_reader.list_namespaced_pod(namespace).items == []
        with pytest.raises(ApiException) as denied:
            as_reader.list_namespaced_secret(namespace)
        assert denied.value.status == 403
    finally:
        reader.rest_client.close()


def test_claims_get_a_volume_that_goes_with_them(
    core: client.CoreV1Api, apps: client.AppsV1Api, namespace: str
) -> None:
    claim = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    core.create_namespaced_persistent_volume_claim(namespace, claim)  # type: ignore[arg-type]

    def bound() -> str | None:
        found = core.read_namespaced_persistent_volume_claim("data", namespace)
        if found.status is None or found.status.phase != "Bound" or found.spec is None:
            return None
        return found.spec.volume_name

    volume = wait_for("the claim to be bound", bound)
    assert core.read_persistent_volume(volume).spec is not None
    labels = {"app": "with-claim"}
    template = client.V1PodTemplateSpec(
        metadata=client.V1ObjectMeta(labels=labels),
        spec=client.V1PodSpec(
            containers=[container("agent", "busybox:test", ["sleep", "3600"])],
            volumes=[
                client.V1Volume(
                    name="data",
                    persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(
                        claim_name="data"
                    ),
                )
            ],
        ),
    )
    spec = client.V1DeploymentSpec(
        replicas=1, selector=client.V1LabelSelector(match_labels=labels), template=template
    )
    body = client.V1Deployment(metadata=client.V1ObjectMeta(name="with-claim"), spec=spec)
    apps.create_namespaced_deployment(namespace, body)
    running_pod(core, namespace, "with-claim")

    apps.delete_namespaced_deployment("with-claim", namespace)
    core.delete_namespaced_persistent_volume_claim("data", namespace)

    def volume_gone() -> bool:
        try:
            core.read_persistent_volume(volume)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    wait_for("the volume to go", volume_gone)

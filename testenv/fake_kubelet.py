"""A fake kubelet for tests: the idea of kwok on the ``kubernetes`` Python client.

:class:`FakeKubelet` registers a Ready, schedulable Node (address 127.0.0.1, with large
allocatable resources), watches the pods the scheduler binds to it and patches their
status to Running (ready containers, a pod IP from 10.244.0.0/16), finishes deletions
(pods with a ``deletionTimestamp`` are deleted with grace period 0), and serves
``/containerLogs/{namespace}/{pod}/{container}`` over HTTPS on the port registered as the
node's kubelet endpoint, so ``pods/log`` works through the real API server.

Simulated failures (by container):

* image name contains ``does-not-exist``: Waiting, reason ``ErrImagePull``; the pod
  stays Pending and asking for its logs fails with 400 like a real kubelet.
* command + args exactly ``["false"]`` or image name contains ``crashloop``: Waiting, reason
  ``CrashLoopBackOff`` (restartCount 5, last state terminated with exit code 1); its
  logs are those of the failed run.

* image name contains ``flaky-registry``: Waiting, reason ``ErrImagePull`` with a
  passing registry error (an i/o timeout) that a real kubelet would retry; the pod stays
  Pending.

Failures a test triggers on a running pod (the pod is patched as a real kubelet reports it):

* :meth:`FakeKubelet.oom_kill`: every container was killed for memory; it waits in
  ``CrashLoopBackOff``, last state terminated ``OOMKilled`` with exit code 137, not ready.
* :meth:`FakeKubelet.evict`: the pod was evicted (phase ``Failed``, reason ``Evicted``,
  containers terminated); the ReplicaSet replaces it and the evicted pod stays in the API.

Log content of a container (see :func:`container_log_lines`):

1. ``fake-kubelet: started <pod>/<container>``;
2. when the pod has the annotation ``fake-kubelet/logs``, its lines; otherwise, when
   command + args is ``<shell> -c <script>`` (sh, bash, ash, dash), the words of each
   ``echo`` in the script (split naively on newlines, ``;``, ``&&`` and ``||``, flags
   ``-n``/``-e``/``-E`` dropped, no variable expansion); otherwise one line per element
   of command + args.

All lines carry the container's start time (plus one microsecond per line). The query
parameters ``tailLines``, ``sinceSeconds``, ``sinceTime``, ``timestamps`` and (without
``follow``) ``limitBytes`` are honoured. With ``follow=true`` the lines are sent, then a line
``fake-kubelet: tick <n>`` every ``follow_interval`` seconds (ticks are not part of the
stored log) until the pod is being deleted, the client leaves or the kubelet stops.

Volumes: there is no storage driver, so the kubelet also plays a dynamic provisioner
(``provision_volumes``, on by default). For every Pending PersistentVolumeClaim without a
volume it creates a PersistentVolume ``fake-pv-<claim uid>`` of the requested size, already
claimed by it (the real PV controller then binds the pair and the scheduler places pods
that use the claim); when the claim goes, so does its volume.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import json
import logging
import re
import shlex
import socket
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

__all__ = ["FakeKubelet", "container_log_lines"]

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
LOGS_ANNOTATION = "fake-kubelet/logs"
VOLUME_LABEL = "fake-kubelet/provisioned-for"
SHELLS = frozenset({"sh", "bash", "ash", "dash"})
ECHO_FLAGS = frozenset({"-n", "-e", "-E"})
RESOURCES = {"cpu": "64", "memory": "256Gi", "pods": "1000", "ephemeral-storage": "1Ti"}
NODE_CONDITIONS = {
    "MemoryPressure": "KubeletHasSufficientMemory",
    "DiskPressure": "KubeletHasNoDiskPressure",
    "PIDPressure": "KubeletHasSufficientPID",
    "Ready": "KubeletReady",
}
_log = logging.getLogger(__name__)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _rfc3339(when: dt.datetime, *, nano: bool = False) -> str:
    if nano:
        return when.strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _echo_lines(script: str) -> list[str]:
    lines = []
    for command in re.split(r"\n|;|&&|\|\|", script):
        try:
            words = shlex.split(command)
        except ValueError:
            continue
        if words[:1] == ["echo"]:
            words = words[1:]
            while words and words[0] in ECHO_FLAGS:
                words = words[1:]
            lines.append(" ".join(words))
    return lines


def container_log_lines(pod: JSON, container: str) -> list[str]:
    """Return the stored log lines of ``container`` in ``pod`` (see the module rule)."""
    name = pod["metadata"]["name"]
    lines = [f"fake-kubelet: started {name}/{container}"]
    annotation = (pod["metadata"].get("annotations") or {}).get(LOGS_ANNOTATION)
    if annotation is not None:
        return lines + str(annotation).splitlines()
    spec = _find_container(pod, container) or {}
    argv = [str(arg) for arg in (spec.get("command") or []) + (spec.get("args") or [])]
    if (
        len(argv) >= 3
        and argv[0].rsplit("/", 1)[-1] in SHELLS
        and re.fullmatch(r"-[a-z]*c[a-z]*", argv[1])
    ):
        return lines + _echo_lines(argv[2])
    return lines + argv


def _find_container(pod: JSON, name: str) -> JSON | None:
    spec = pod.get("spec") or {}
    for container in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        if container.get("name") == name:
            return cast(JSON, container)
    return None


def _failure(container: JSON) -> str | None:
    image = str(container.get("image", ""))
    if "does-not-exist" in image or "flaky-registry" in image:
        return "ErrImagePull"
    argv = (container.get("command") or []) + (container.get("args") or [])
    if argv == ["false"] or "crashloop" in image:
        return "CrashLoopBackOff"
    return None


def _container_status(container: JSON, pod_uid: str, started: str) -> JSON:
    name, image = container["name"], container.get("image", "")
    status: JSON = {"name": name, "image": image, "imageID": "", "restartCount": 0}
    failure = _failure(container)
    if failure == "ErrImagePull":
        cause = "i/o timeout" if "flaky-registry" in image else "not found"
        message = f'failed to pull image "{image}": {cause} (fake-kubelet)'
        waiting = {"reason": failure, "message": message}
        return status | {"ready": False, "started": False, "state": {"waiting": waiting}}
    status |= {"imageID": f"fake://{image}", "containerID": f"fake://{pod_uid}/{name}"}
    if failure == "CrashLoopBackOff":
        message = f"back-off 5m0s restarting failed container={name} (fake-kubelet)"
        last = {"exitCode": 1, "reason": "Error", "startedAt": started, "finishedAt": started}
        return status | {
            "ready": False,
            "started": False,
            "restartCount": 5,
            "state": {"waiting": {"reason": failure, "message": message}},
            "lastState": {"terminated": last},
        }
    return status | {"ready": True, "started": True, "state": {"running": {"startedAt": started}}}


class _TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], kubelet: FakeKubelet, tls: ssl.SSLContext) -> None:
        super().__init__(address, _Handler)
        self.kubelet = kubelet
        self.tls = tls

    def finish_request(self, request: Any, client_address: Any) -> None:
        raw = cast(socket.socket, request)
        raw.settimeout(30)
        try:
            conn = self.tls.wrap_socket(raw, server_side=True)
        except OSError:  # includes ssl.SSLError: a client that did not speak TLS
            return
        try:
            super().finish_request(conn, client_address)
        finally:
            conn.close()


class _Handler(BaseHTTPRequestHandler):
    server: _TLSServer

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        parts = [unquote(part) for part in url.path.strip("/").split("/")]
        if len(parts) == 4 and parts[0] == "containerLogs":
            query = {key: values[-1] for key, values in parse_qs(url.query).items()}
            self.server.kubelet.serve_logs(self, parts[1], parts[2], parts[3], query)
        elif url.path == "/healthz":
            self.reply(200, "ok")
        else:
            self.reply(404, f"fake-kubelet: no handler for {url.path}")

    def reply(self, code: int, text: str) -> None:
        body = text.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("fake-kubelet http: " + format, *args)


class FakeKubelet:
    """Register a fake Node and act as its kubelet until :meth:`stop`."""

    def __init__(
        self,
        api: client.ApiClient,
        *,
        cert_file: str,
        key_file: str,
        node_name: str = "fake-node",
        address: str = "127.0.0.1",
        follow_interval: float = 1.0,
        heartbeat_interval: float = 10.0,
        provision_volumes: bool = True,
    ) -> None:
        self.core = client.CoreV1Api(api)
        self.provision_volumes = provision_volumes
        self.node_name, self.address = node_name, address
        self.follow_interval, self.heartbeat_interval = follow_interval, heartbeat_interval
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert_file, key_file)
        self._server = _TLSServer((address, 0), self, tls)
        self.port: int = self._server.server_address[1]
        self._since = _rfc3339(_now())
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._pods: dict[tuple[str, str], JSON] = {}
        self._started: dict[str, dt.datetime] = {}
        self._ips = ipaddress.ip_network("10.244.0.0/16").hosts()
        self._watches: set[urllib3.BaseHTTPResponse] = set()
        self._threads: list[threading.Thread] = []

    # lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Register the node and start serving, watching and heart-beating."""
        self._register_node()
        targets = (self._server.serve_forever, self._run_pods, self._run_heartbeat)
        for target in (*targets, *((self._run_volumes,) if self.provision_volumes else ())):
            thread = threading.Thread(target=target, name=f"fake-kubelet-{target.__name__}")
            thread.daemon = True
            thread.start()
            self._threads.append(thread)

    def stop(self, *, unregister: bool = True) -> None:
        """Stop all threads; delete the Node unless ``unregister`` is false."""
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            watches = list(self._watches)
        for watch in watches:
            with contextlib.suppress(Exception):
                watch.shutdown()
        for thread in self._threads:
            thread.join(timeout=15)
        if unregister:
            try:
                self.core.delete_node(self.node_name, _request_timeout=10)
            except (ApiException, urllib3.exceptions.HTTPError) as exc:
                _log.warning("fake-kubelet: could not delete node: %s", exc)

    # node ------------------------------------------------------------------------------
    def _node_status(self) -> JSON:
        now = _rfc3339(_now())
        conditions = [
            {"type": kind, "status": "False" if kind != "Ready" else "True", "reason": reason}
            for kind, reason in NODE_CONDITIONS.items()
        ]
        for condition in conditions:
            condition |= {"lastHeartbeatTime": now, "lastTransitionTime": self._since}
        info = dict.fromkeys(("machineID", "systemUUID", "bootID", "kernelVersion"), "fake")
        info |= {
            "osImage": "fake-kubelet",
            "containerRuntimeVersion": "fake://0",
            "kubeletVersion": "v1.20.2",
            "kubeProxyVersion": "v1.20.2",
            "operatingSystem": "linux",
            "architecture": "amd64",
        }
        return {
            "capacity": RESOURCES,
            "allocatable": RESOURCES,
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": self.address},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": info,
        }

    def _register_node(self) -> None:
        labels = {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "type": "fake-kubelet",
        }
        meta = client.V1ObjectMeta(name=self.node_name, labels=labels)
        try:
            self.core.create_node(client.V1Node(metadata=meta))
        except ApiException as exc:
            if exc.status != 409:
                raise
        # TaintNodesByCondition adds a not-ready taint on creation: this node is ready.
        self.core.patch_node(self.node_name, {"spec": {"taints": None}}, _content_type=MERGE_PATCH)
        self._patch_node_status()

    def _patch_node_status(self) -> None:
        body = {"status": self._node_status()}
        self.core.patch_node_status(self.node_name, body, _content_type=MERGE_PATCH)

    def _run_heartbeat(self) -> None:
        while not self._stopped.wait(self.heartbeat_interval):
            try:
                self._patch_node_status()
            except Exception as exc:  # a missed beat is harmless; keep beating
                _log.warning("fake-kubelet: node heartbeat failed: %s", exc)

    # watches -----------------------------------------------------------------------------
    def _list_and_watch(
        self,
        what: str,
        lister: Callable[..., Any],
        on_list: Callable[[list[JSON]], None],
        on_event: Callable[[str, JSON], None],
        **query: Any,
    ) -> None:
        """List, then follow a watch from that version; resync from a new list on any error."""
        while not self._stopped.is_set():
            try:
                listing = cast(
                    urllib3.BaseHTTPResponse,
                    lister(**query, _preload_content=False, _request_timeout=30),
                )
                try:
                    answer = json.loads(listing.data)
                finally:
                    listing.release_conn()
                on_list(answer["items"])
                self._follow(lister, answer["metadata"]["resourceVersion"], on_event, query)
            except Exception:  # keep going whatever the API server says
                if not self._stopped.is_set():
                    _log.exception("fake-kubelet: %s loop failed; resyncing", what)
                    self._stopped.wait(1)

    def _follow(
        self,
        lister: Callable[..., Any],
        version: str,
        on_event: Callable[[str, JSON], None],
        query: dict[str, Any],
    ) -> None:
        watch = cast(
            urllib3.BaseHTTPResponse,
            lister(
                **query,
                watch=True,
                resource_version=version,
                timeout_seconds=30,
                _preload_content=False,
                _request_timeout=(10, 60),
            ),
        )
        with self._lock:
            self._watches.add(watch)
        try:
            for line in watch:
                event = json.loads(line)
                if event["type"] == "ERROR" or self._stopped.is_set():
                    return
                on_event(event["type"], event["object"])
        finally:
            with self._lock:
                self._watches.discard(watch)
            watch.close()  # never reuse a connection with unread events
            watch.release_conn()

    # pods ------------------------------------------------------------------------------
    def _run_pods(self) -> None:
        self._list_and_watch(
            "pod",
            self.core.list_pod_for_all_namespaces,
            self._on_pod_list,
            self._on_pod_event,
            field_selector=f"spec.nodeName={self.node_name}",
        )

    def _on_pod_list(self, pods: list[JSON]) -> None:
        with self._lock:
            self._pods = {_key(pod): pod for pod in pods}
        for pod in pods:
            self._reconcile(pod)

    def _on_pod_event(self, kind: str, pod: JSON) -> None:
        with self._lock:
            if kind == "DELETED":
                self._pods.pop(_key(pod), None)
                self._started.pop(pod["metadata"]["uid"], None)
            else:
                self._pods[_key(pod)] = pod
        if kind != "DELETED":
            self._reconcile(pod)

    def _reconcile(self, pod: JSON) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            try:
                options = client.V1DeleteOptions(
                    grace_period_seconds=0, preconditions=client.V1Preconditions(uid=meta["uid"])
                )
                self.core.delete_namespaced_pod(meta["name"], meta["namespace"], body=options)
            except ApiException as exc:
                if exc.status not in (404, 409):  # gone, or a new pod with the same name
                    raise
            return
        if meta["uid"] in self._started:
            return
        started = _now()
        stamp = _rfc3339(started)
        spec = pod["spec"]
        statuses = [_container_status(c, meta["uid"], stamp) for c in spec["containers"]]
        ready = all(status["ready"] for status in statuses)
        pulling = any(_failure(c) == "ErrImagePull" for c in spec["containers"])
        conditions = [
            {"type": kind, "status": "True" if ok else "False", "lastTransitionTime": stamp}
            for kind, ok in (
                ("PodScheduled", True),
                ("Initialized", True),
                ("ContainersReady", ready),
                ("Ready", ready),
            )
        ]
        ip = str(next(self._ips))
        init = [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": f"fake://{c.get('image', '')}",
                "ready": True,
                "restartCount": 0,
                "state": {
                    "terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": stamp}
                },
            }
            for c in spec.get("initContainers") or []
        ]
        status = {
            "phase": "Pending" if pulling else "Running",
            "conditions": conditions,
            "hostIP": self.address,
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": stamp,
            "containerStatuses": statuses,
            "initContainerStatuses": init,
        }
        self.core.patch_namespaced_pod_status(
            meta["name"], meta["namespace"], {"status": status}, _content_type=MERGE_PATCH
        )
        self._started[meta["uid"]] = started

    # failures a test triggers -----------------------------------------------------------
    def oom_kill(self, namespace: str, name: str) -> None:
        """Report every container of the pod killed for memory, waiting to be restarted."""
        pod = self.core.read_namespaced_pod_status(name, namespace).to_dict()
        stamp = _rfc3339(_now())
        killed = {"exitCode": 137, "reason": "OOMKilled", "startedAt": stamp, "finishedAt": stamp}
        waiting = {"reason": "CrashLoopBackOff", "message": "back-off 10s (fake-kubelet)"}
        statuses = [
            _status_json(c)
            | {
                "ready": False,
                "started": False,
                "restartCount": int(c.get("restart_count") or 0) + 1,
                "state": {"waiting": waiting},
                "lastState": {"terminated": killed},
            }
            for c in pod["status"]["container_statuses"] or []
        ]
        self._patch_pod_status(namespace, name, statuses, ready=False)

    def evict(self, namespace: str, name: str) -> None:
        """Report the pod evicted: finished (phase Failed), its containers terminated."""
        pod = self.core.read_namespaced_pod_status(name, namespace).to_dict()
        stamp = _rfc3339(_now())
        ended = {"exitCode": 137, "reason": "Error", "startedAt": stamp, "finishedAt": stamp}
        statuses = [
            _status_json(c) | {"ready": False, "started": False, "state": {"terminated": ended}}
            for c in pod["status"]["container_statuses"] or []
        ]
        message = "The node was low on resource: memory. (fake-kubelet)"
        extra = {"phase": "Failed", "reason": "Evicted", "message": message}
        self._patch_pod_status(namespace, name, statuses, ready=False, **extra)

    def _patch_pod_status(
        self, namespace: str, name: str, statuses: list[JSON], *, ready: bool, **extra: str
    ) -> None:
        stamp = _rfc3339(_now())
        conditions = [
            {"type": kind, "status": "True" if ready else "False", "lastTransitionTime": stamp}
            for kind in ("ContainersReady", "Ready")
        ]
        body = {"status": {"containerStatuses": statuses, "conditions": conditions, **extra}}
        # Strategic: conditions merge by type (PodScheduled stays), container statuses are replaced.
        self.core.patch_namespaced_pod_status(
            name, namespace, body, _content_type="application/strategic-merge-patch+json"
        )

    # volumes ---------------------------------------------------------------------------
    def _run_volumes(self) -> None:
        self._list_and_watch(
            "claim",
            self.core.list_persistent_volume_claim_for_all_namespaces,
            self._on_claim_list,
            self._on_claim_event,
        )

    def _on_claim_list(self, claims: list[JSON]) -> None:
        for claim in claims:
            self._provision(claim)
        alive = {claim["metadata"]["uid"] for claim in claims}
        volumes = cast(
            urllib3.BaseHTTPResponse,
            self.core.list_persistent_volume(
                label_selector=f"{VOLUME_LABEL}={self.node_name}",
                _preload_content=False,
                _request_timeout=30,
            ),
        )
        try:
            items = json.loads(volumes.data)["items"]
        finally:
            volumes.release_conn()
        for volume in items:
            if volume["spec"].get("claimRef", {}).get("uid") not in alive:
                self._release_volume(volume["metadata"]["name"])

    def _on_claim_event(self, kind: str, claim: JSON) -> None:
        if kind == "DELETED":
            self._release_volume(_volume_name(claim))
        else:
            self._provision(claim)

    def _provision(self, claim: JSON) -> None:
        """Create a volume already bound to ``claim``; the real PV controller binds them."""
        meta, spec = claim["metadata"], claim.get("spec") or {}
        if spec.get("volumeName") or meta.get("deletionTimestamp"):
            return
        if (claim.get("status") or {}).get("phase", "Pending") != "Pending":
            return
        requested = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        volume: Any = {  # the client validates a dict into its model
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": _volume_name(claim), "labels": {VOLUME_LABEL: self.node_name}},
            "spec": {
                "capacity": {"storage": requested},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": spec.get("storageClassName") or "",
                "volumeMode": spec.get("volumeMode") or "Filesystem",
                "hostPath": {"path": f"/fake-kubelet/volumes/{meta['uid']}"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        try:
            self.core.create_persistent_volume(volume, _request_timeout=30)
        except ApiException as exc:
            if exc.status != 409:  # 409: provisioned already
                raise

    def _release_volume(self, name: str) -> None:
        try:
            self.core.delete_persistent_volume(name, _request_timeout=30)
        except ApiException as exc:
            if exc.status != 404:
                raise

    # logs ------------------------------------------------------------------------------
    def serve_logs(
        self, handler: _Handler, namespace: str, name: str, container: str, query: dict[str, str]
    ) -> None:
        """Answer one ``containerLogs`` request (called from the HTTPS server threads)."""
        with self._lock:
            pod = self._pods.get((namespace, name))
        spec = _find_container(pod, container) if pod else None
        if pod is None or spec is None:
            handler.reply(404, f"container {container} in pod {namespace}/{name} not found")
            return
        if _failure(spec) == "ErrImagePull":
            message = f'container "{container}" in pod "{name}" is waiting to start: '
            handler.reply(400, message + "trying and failing to pull image")
            return
        start = self._started.get(pod["metadata"]["uid"], _now())
        entries = [
            (start + dt.timedelta(microseconds=i), line)
            for i, line in enumerate(container_log_lines(pod, container))
        ]
        if "sinceSeconds" in query:
            cutoff = _now() - dt.timedelta(seconds=int(query["sinceSeconds"]))
            entries = [entry for entry in entries if entry[0] >= cutoff]
        if "sinceTime" in query:
            cutoff = dt.datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
            entries = [entry for entry in entries if entry[0] >= cutoff]
        if "tailLines" in query:
            tail = int(query["tailLines"])
            entries = entries[-tail:] if tail > 0 else []
        stamps = query.get("timestamps") == "true"
        text = "".join(
            (f"{_rfc3339(t, nano=True)} " if stamps else "") + f"{s}\n" for t, s in entries
        )
        limit = int(query.get("limitBytes", 0)) or None
        if query.get("follow") != "true":
            handler.reply(200, text.encode()[:limit].decode(errors="ignore"))
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.end_headers()
        try:
            handler.wfile.write(text.encode())
            handler.wfile.flush()
            tick = 0
            while not self._stopped.wait(self.follow_interval):
                with self._lock:
                    current = self._pods.get((namespace, name))
                if current is None or current["metadata"].get("deletionTimestamp"):
                    return
                tick += 1
                prefix = f"{_rfc3339(_now(), nano=True)} " if stamps else ""
                handler.wfile.write(f"{prefix}fake-kubelet: tick {tick}\n".encode())
                handler.wfile.flush()
        except OSError:  # the client left
            return


def _status_json(container: JSON) -> JSON:
    """The identity of a container status (read through the client's model) as API JSON."""
    return {
        "name": container["name"],
        "image": container.get("image") or "",
        "imageID": container.get("image_id") or "",
        "containerID": container.get("container_id") or "",
    }


def _volume_name(claim: JSON) -> str:
    return f"fake-pv-{claim['metadata']['uid']}"


def _key(pod: JSON) -> tuple[str, str]:
    return pod["metadata"]["namespace"], pod["metadata"]["name"]

"""A disposable Kubernetes v1.20 control plane on 127.0.0.1 for tests.

:class:`KubeTestEnv` starts etcd, kube-apiserver (TLS, static admin token, RBAC),
kube-controller-manager and kube-scheduler on free loopback ports, with certificates,
tokens, logs and data in a temporary directory (etcd's data on /dev/shm when it has
room), plus a :class:`FakeKubelet` node so pods become Running, their logs flow through
the API server and claims get volumes. ``stop()`` kills every process group and removes
the directories.

The control-plane binaries come from ``scripts/kube-testenv-build.sh`` (cached in
``${AGENT_PLATFORM_CACHE:-~/.cache/agent-platform}/kube-v1.20.2/bin``, or the directory
in ``KUBE_TESTENV_BIN_DIR``); ``etcd`` and ``openssl`` are found on ``PATH``.

Usage::

    with KubeTestEnv() as env:
        api = env.api_client()  # admin; env.api_client(token) for another identity
        ...
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from kubernetes import client

from .fake_kubelet import FakeKubelet

__all__ = [
    "KUBE_VERSION",
    "SERVER_BINARIES",
    "KubeTestEnv",
    "KubeTestEnvError",
    "default_bin_dir",
    "missing_binaries",
]

KUBE_VERSION = "v1.20.2"
SERVER_BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
ADMIN_USER = "test-admin"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SHM = Path("/dev/shm")
_log = logging.getLogger(__name__)


class KubeTestEnvError(RuntimeError):
    """The control plane could not be started."""


def default_bin_dir() -> Path:
    """Where the build script caches the control-plane binaries."""
    explicit = os.environ.get("KUBE_TESTENV_BIN_DIR")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("AGENT_PLATFORM_CACHE") or str(Path.home() / ".cache" / "agent-platform")
    return Path(cache) / f"kube-{KUBE_VERSION}" / "bin"


def missing_binaries(bin_dir: Path | None = None) -> list[str]:
    """Names of the programs the environment needs and cannot find."""
    directory = bin_dir or default_bin_dir()
    missing = [name for name in SERVER_BINARIES if not os.access(directory / name, os.X_OK)]
    return missing + [name for name in ("etcd", "openssl") if shutil.which(name) is None]


def _free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (all bound at once, so never the same twice)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _free_bytes(directory: Path) -> int:
    try:
        stat = os.statvfs(directory)
    except OSError:
        return 0
    return stat.f_bavail * stat.f_frsize


def _tail(path: Path, lines: int = 30) -> str:
    """The last log lines, skipping Go stack dumps, after the last klog errors."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    dump = next((i for i, line in enumerate(text) if re.match(r"goroutine \d+ \[", line)), None)
    text = text[:dump]
    errors = [line for line in text[:-lines] if re.match(r"[EF]\d{4} ", line)][-10:]
    return "\n".join([*errors, "...", *text[-lines:]] if errors else text[-lines:])


class KubeTestEnv:
    """etcd + kube-apiserver + controller-manager + scheduler (+ fake kubelet)."""

    def __init__(
        self,
        bin_dir: Path | None = None,
        *,
        fake_kubelet: bool = True,
        node_name: str = "fake-node",
        startup_timeout: float = 120.0,
    ) -> None:
        self.bin_dir = bin_dir or default_bin_dir()
        self.node_name = node_name
        self.startup_timeout = startup_timeout
        self.admin_token = secrets.token_hex(24)
        self.kubelet: FakeKubelet | None = None
        self._with_kubelet = fake_kubelet
        self._workdir: Path | None = None
        self._etcd_dir: Path | None = None
        self._processes: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self._api_clients: list[client.ApiClient] = []
        self.port = 0
        self.etcd_url = ""

    # public properties -----------------------------------------------------------------
    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            raise KubeTestEnvError("the environment is not started")
        return self._workdir

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.workdir / "ca.crt"

    @property
    def kubeconfig(self) -> Path:
        """A kubeconfig for the admin user (group system:masters)."""
        return self.workdir / "admin.kubeconfig"

    def compact(self) -> int:
        """Compact etcd's history up to now, as the API server does every five minutes:
        every resource version before it is gone (410 on a list or watch from it). Returns
        the revision compacted to."""
        key = base64.b64encode(b"/").decode()
        header = json.loads(_post(f"{self.etcd_url}/v3/kv/range", {"key": key}))["header"]
        revision = int(header["revision"])
        _post(f"{self.etcd_url}/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    # lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> KubeTestEnv:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> KubeTestEnv:
        """Start everything and wait until pods can be created; return ``self``."""
        missing = missing_binaries(self.bin_dir)
        if missing:
            raise KubeTestEnvError(
                f"missing {', '.join(missing)} (bin dir {self.bin_dir}); "
                "run scripts/kube-testenv-build.sh"
            )
        self._workdir = Path(tempfile.mkdtemp(prefix="kube-testenv-"))
        atexit.register(self.stop)
        try:
            self._write_credentials()
            self._start_control_plane()
            if self._with_kubelet:
                self.kubelet = FakeKubelet(
                    self.api_client(),
                    cert_file=str(self.workdir / "server.crt"),
                    key_file=str(self.workdir / "server.key"),
                    node_name=self.node_name,
                )
                self.kubelet.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the fake kubelet and all processes; delete the temporary directory."""
        atexit.unregister(self.stop)
        if self.kubelet is not None:
            self.kubelet.stop(unregister=False)
            self.kubelet = None
        for api in self._api_clients:
            api.rest_client.close()
        self._api_clients.clear()
        for _name, process, _log in reversed(self._processes):
            _kill(process)
        self._processes.clear()
        for directory in (self._workdir, self._etcd_dir):
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
        self._workdir = self._etcd_dir = None

    @contextlib.contextmanager
    def api_server_frozen(self) -> Iterator[None]:
        """The API server stopped (SIGSTOP) with its connections open, as a hung server
        is, and resumed on exit. It is this environment's own process, nobody else's."""
        pid = next(p.pid for name, p, _log in self._processes if name == "kube-apiserver")
        os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(pid, signal.SIGCONT)

    # clients ---------------------------------------------------------------------------
    def kubeconfig_for_token(self, token: str, path: Path | None = None) -> Path:
        """Write a kubeconfig authenticating with ``token``; return its path."""
        target = path or self.workdir / f"token-{secrets.token_hex(4)}.kubeconfig"
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": self.server, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": "test-user", "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test-user"}}],
            "current-context": "test",
        }
        target.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
        target.chmod(0o600)
        return target

    def api_client(self, token: str | None = None) -> client.ApiClient:
        """An ApiClient for the admin, or for ``token``; closed by :meth:`stop`."""
        config = client.Configuration(
            host=self.server,
            api_key={"BearerToken": token or self.admin_token},
            api_key_prefix={"BearerToken": "Bearer"},
            ssl_ca_cert=str(self.ca_file),
        )
        api = client.ApiClient(config)
        self._api_clients.append(api)
        return api

    def service_account_ready(self, namespace: str, name: str = "default") -> bool:
        """Whether the account has its token: pods using it are refused until then."""
        url = f"{self.server}/api/v1/namespaces/{namespace}/serviceaccounts/{name}"
        account = json.loads(_get(url, self._auth(), self.ca_file))
        return bool(account.get("secrets"))

    def wait_for_service_account(
        self, namespace: str, name: str = "default", timeout: float = 30.0
    ) -> None:
        """Wait until pods may use the account (in a new namespace, about a second)."""
        deadline = time.monotonic() + timeout
        while not self.service_account_ready(namespace, name):
            if time.monotonic() > deadline:
                raise KubeTestEnvError(f"service account {namespace}/{name} has no token")
            time.sleep(0.1)

    # internals -------------------------------------------------------------------------
    def _openssl(self, *args: str) -> None:
        result = subprocess.run(
            ["openssl", *args], cwd=self.workdir, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise KubeTestEnvError(f"openssl {' '.join(args)} failed:\n{result.stderr}")

    def _write_credentials(self) -> None:
        self._openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
            "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=kube-testenv-ca",
        )  # fmt: skip
        self._openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=kube-apiserver",
        )  # fmt: skip
        (self.workdir / "server.ext").write_text(
            "basicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,"
            "DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.0.0.1\n"
        )
        self._openssl(
            "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "3650", "-extfile", "server.ext", "-out", "server.crt",
        )  # fmt: skip
        self._openssl("genrsa", "-out", "sa.key", "2048")
        self._openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)

    def _spawn(self, name: str, args: list[str]) -> None:
        log_path = self.workdir / f"{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        self._processes.append((name, process, log_path))

    def _start_control_plane(self) -> None:
        work = self.workdir
        etcd_port, peer_port, self.port = _free_ports(3)
        # etcd fsyncs every write: on tmpfs, a busy disk cannot stall the API server.
        if _free_bytes(SHM) > 2**30:
            self._etcd_dir = Path(tempfile.mkdtemp(prefix="kube-testenv-etcd-", dir=SHM))
        etcd_data = (self._etcd_dir or work) / "etcd"
        etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
        self.etcd_url = etcd_url
        self._spawn(
            "etcd",
            [
                "etcd", "--name=test", f"--data-dir={etcd_data}", "--logger=zap",
                f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=test={peer_url}",
            ],
        )  # fmt: skip
        self._wait("etcd", lambda: b'"health":"true"' in _get(f"{etcd_url}/health"))
        self._spawn(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1", f"--secure-port={self.port}", "--insecure-port=0",
                "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
                f"--cert-dir={work}",
                f"--tls-cert-file={work / 'server.crt'}",
                f"--tls-private-key-file={work / 'server.key'}",
                f"--client-ca-file={work / 'ca.crt'}",
                f"--token-auth-file={work / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={work / 'sa.pub'}",
                f"--service-account-signing-key-file={work / 'sa.key'}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-certificate-authority={work / 'ca.crt'}",
                "--allow-privileged=true",
                "--profiling=false",
            ],
        )  # fmt: skip
        self._wait(
            "kube-apiserver",
            lambda: _get(f"{self.server}/readyz", self._auth(), self.ca_file) == b"ok",
        )
        self.kubeconfig_for_token(self.admin_token, self.kubeconfig)
        common = [f"--kubeconfig={self.kubeconfig}", "--leader-elect=false", "--port=0"]
        self._spawn(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"), *common,
                "--secure-port=0",
                f"--service-account-private-key-file={work / 'sa.key'}",
                f"--root-ca-file={work / 'ca.crt'}",
            ],
        )  # fmt: skip
        self._spawn(
            "kube-scheduler",
            [str(self.bin_dir / "kube-scheduler"), *common, "--secure-port=0"],
        )
        self._wait("kube-controller-manager", lambda: self.service_account_ready("default"))

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def _wait(self, name: str, ready: Callable[[], bool]) -> None:
        begun = time.monotonic()
        deadline = begun + self.startup_timeout
        error = ""
        while time.monotonic() < deadline:
            for proc_name, process, log_path in self._processes:
                if process.poll() is not None:
                    raise KubeTestEnvError(
                        f"{proc_name} exited with {process.returncode} while waiting for "
                        f"{name}; last log lines:\n{_tail(log_path)}"
                    )
            try:
                if ready():
                    _log.info("%s ready in %.1f s", name, time.monotonic() - begun)
                    return
            except (OSError, ValueError) as exc:
                error = str(exc)
            time.sleep(0.25)
        log_path = self.workdir / f"{name}.log"
        raise KubeTestEnvError(
            f"{name} not ready after {self.startup_timeout:.0f} s ({error}); "
            f"last log lines:\n{_tail(log_path)}"
        )


def _post(url: str, body: dict[str, Any]) -> bytes:
    """POST ``body`` as JSON to a plain-HTTP ``url`` (etcd's gateway), directly."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    with opener.open(request, timeout=10) as response:
        answer: bytes = response.read()
        return answer


def _get(url: str, headers: dict[str, str] | None = None, ca_file: Path | None = None) -> bytes:
    """GET ``url`` directly (no proxy); HTTPS is verified against ``ca_file``."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=5) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        with exc:
            error: bytes = exc.read()
            return error


def _kill(process: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue

"""The calls to the Kubernetes API server, on the official (synchronous) client.

Every call has the configured timeout; calls that are safe to repeat (reads, merge
patches that set absolute values, deletes) are retried a bounded number of times when the
connection fails or the server answers 429 or 5xx; creates are never repeated. Answers are
read as JSON (the manifests in ``objects`` are plain dicts too) and every response is
released. Exceptions of the client and of urllib3 become the platform's errors in
:func:`translate`, the one place that maps them.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pydantic_core
import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from ..errors import EngineError, OrchestratorError, OrchestratorUnavailable
from ..types import JSON

__all__ = [
    "ApiAccess",
    "KubeApi",
    "api_message",
    "label_selector",
    "parse_version",
    "release",
    "translate",
]

MERGE_PATCH = "application/merge-patch+json"
_TRANSIENT = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class ApiAccess:
    """How to reach the API server: a kubeconfig file, in-cluster, or the client default."""

    kubeconfig: str | None = None  # None: in-cluster in a pod, else KUBECONFIG/~/.kube/config
    context: str | None = None
    timeout: float = 30.0
    retries: int = 2
    pool_size: int = 32


def api_message(exc: ApiException) -> str:
    """The API server's own explanation (its Status ``message``), shortened."""
    try:
        body = json.loads(exc.body or "")
        message = str(body.get("message") or exc.reason or exc.status)
    except (TypeError, ValueError, AttributeError):
        message = str(exc.reason or exc.status)
    return message[:300]


def _cause(exc: BaseException) -> BaseException:
    """urllib3 reports every transport failure as MaxRetryError; its reason says which."""
    if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None:
        return exc.reason
    return exc


def translate(exc: BaseException) -> OrchestratorError:
    """A client or transport exception as one of ours; the message names no secret."""
    exc = _cause(exc)
    if isinstance(exc, OrchestratorError):
        return exc
    if isinstance(exc, ApiException):
        status = exc.status or 0
        if status == 0:
            return OrchestratorUnavailable("the Kubernetes API server is not reachable")
        if status == 401:
            return OrchestratorUnavailable(
                "the Kubernetes API server did not accept the service's credentials"
            )
        if status in _TRANSIENT:
            return OrchestratorUnavailable(
                f"the Kubernetes API server is unavailable ({status}): {api_message(exc)}"
            )
        if status == 403:
            return EngineError(f"the Kubernetes API server forbade the call: {api_message(exc)}")
        return EngineError(
            f"the Kubernetes API server refused the request ({status}): {api_message(exc)}"
        )
    if isinstance(exc, urllib3.exceptions.NewConnectionError):  # a ConnectTimeoutError too
        return OrchestratorUnavailable("the Kubernetes API server is not reachable")
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError):
        return OrchestratorUnavailable("the Kubernetes API server did not answer in time")
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return OrchestratorUnavailable("the Kubernetes API server is not reachable")
    if isinstance(exc, ConfigException):
        return OrchestratorUnavailable(f"no usable Kubernetes configuration: {str(exc)[:200]}")
    return EngineError(f"unexpected error talking to the Kubernetes API: {type(exc).__name__}")


def _transient(exc: BaseException) -> bool:
    """Worth one more try: refused or dropped connections, 429 and 5xx. Not a timeout (the
    wait would double) and not a TLS failure (it would fail again)."""
    exc = _cause(exc)
    if isinstance(exc, ApiException):
        return (exc.status or 0) in _TRANSIENT
    return isinstance(exc, urllib3.exceptions.NewConnectionError | urllib3.exceptions.ProtocolError)


def _load_configuration(access: ApiAccess) -> client.Configuration:
    configuration = client.Configuration()
    if access.kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        # In a pod: the service account's token, re-read when it is rotated.
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        path = access.kubeconfig
        if path is not None and not Path(path).is_file():
            raise ConfigException(f"kubeconfig {path} does not exist")
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path,
            context=access.context,
            client_configuration=configuration,
            persist_config=False,
        )
    # Retries are ours (bounded, only for calls safe to repeat); urllib3 must not add its own.
    configuration.retries = 0
    configuration.connection_pool_maxsize = access.pool_size
    configuration.keep_alive = True
    return configuration


class KubeApi:
    """The API groups the backend uses, created on first use so that the service starts
    while the API server is down or its configuration is still missing."""

    def __init__(self, access: ApiAccess) -> None:
        self.access = access
        self._lock = threading.Lock()
        self._api: client.ApiClient | None = None
        self._core: client.CoreV1Api | None = None
        self._apps: client.AppsV1Api | None = None
        self._networking: client.NetworkingV1Api | None = None
        self._version: client.VersionApi | None = None
        self._custom: client.CustomObjectsApi | None = None
        self.timeout = (float(access.timeout), float(access.timeout))

    def _connect(self) -> None:
        with self._lock:
            if self._api is None:
                api = client.ApiClient(_load_configuration(self.access))
                self._core = client.CoreV1Api(api)
                self._apps = client.AppsV1Api(api)
                self._networking = client.NetworkingV1Api(api)
                self._version = client.VersionApi(api)
                self._custom = client.CustomObjectsApi(api)
                self._api = api

    @property
    def core(self) -> client.CoreV1Api:
        self._connect()
        assert self._core is not None
        return self._core

    @property
    def apps(self) -> client.AppsV1Api:
        self._connect()
        assert self._apps is not None
        return self._apps

    @property
    def networking(self) -> client.NetworkingV1Api:
        self._connect()
        assert self._networking is not None
        return self._networking

    @property
    def custom(self) -> client.CustomObjectsApi:
        self._connect()
        assert self._custom is not None
        return self._custom

    def server_version(self) -> tuple[int, int] | None:
        """The API server's (major, minor) version (``/version``, readable by anyone who is
        authenticated); None when it does not say in numbers."""
        self._connect()
        assert self._version is not None
        return parse_version(self.call(self._version.get_code, idempotent=True))

    def ping_within(self, timeout: float) -> None:
        """``/version`` answered within ``timeout`` seconds, not retried; raises otherwise."""
        self._connect()
        assert self._version is not None
        response = cast(
            urllib3.BaseHTTPResponse,
            self._version.get_code(_preload_content=False, _request_timeout=(timeout, timeout)),
        )
        response.release_conn()

    def close(self) -> None:
        with self._lock:
            if self._api is not None:
                self._api.rest_client.close()
                self._api = self._core = self._apps = self._networking = None
                self._version = self._custom = None

    # -- calls ----------------------------------------------------------------------------

    def call(self, method: Callable[..., Any], *args: Any, idempotent: bool, **kwargs: Any) -> JSON:
        """One API call with the timeout, its answer as JSON; repeated on transient errors
        (at most ``retries`` more times, backing off) when ``idempotent``."""
        attempts = 1 + (self.access.retries if idempotent else 0)
        for attempt in range(attempts):
            try:
                return self._once(method, *args, **kwargs)
            except Exception as exc:
                if attempt + 1 >= attempts or not _transient(exc):
                    raise
                time.sleep(min(2.0, 0.2 * 2**attempt))
        raise AssertionError("unreachable")

    def _once(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> JSON:
        response = cast(
            urllib3.BaseHTTPResponse,
            method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs),
        )
        try:
            data = response.data
        finally:
            response.release_conn()
        # pydantic-core's parser: twice as fast as json.loads on the megabytes of a big list.
        answer: JSON = pydantic_core.from_json(data) if data else {}
        return answer

    def stream(
        self, method: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> urllib3.BaseHTTPResponse:
        """An unread response (pod logs); the caller reads it and then :func:`release` it."""
        return cast(urllib3.BaseHTTPResponse, method(*args, _preload_content=False, **kwargs))

    # -- helpers of the backend -----------------------------------------------------------

    def list_items(
        self, method: Callable[..., Any], namespace: str, selector: Mapping[str, str]
    ) -> list[JSON]:
        answer = self.call(
            method, namespace, label_selector=label_selector(selector), idempotent=True
        )
        items: list[JSON] = answer.get("items") or []
        return items

    def merge_patch(
        self, method: Callable[..., Any], name: str, namespace: str, body: JSON
    ) -> JSON | None:
        """Apply a JSON merge patch to one object; None when it is gone."""
        try:
            return self.call(
                method, name, namespace, body, _content_type=MERGE_PATCH, idempotent=True
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def delete(self, method: Callable[..., Any], name: str, namespace: str, **kwargs: Any) -> bool:
        """Delete one object; False when it was already gone."""
        try:
            self.call(method, name, namespace, idempotent=True, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True


def parse_version(info: Mapping[str, Any]) -> tuple[int, int] | None:
    """(major, minor) of a ``/version`` answer; managed clusters write a minor like ``27+``."""
    try:
        major = int(str(info.get("major", "")).rstrip("+"))
        minor = int(str(info.get("minor", "")).rstrip("+"))
    except ValueError:
        return None
    return major, minor


def label_selector(terms: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in terms.items())


def release(response: urllib3.BaseHTTPResponse) -> None:
    """Free a streamed response from any thread: a reader blocked on it returns at once."""
    with contextlib.suppress(Exception):
        response.shutdown()
    with contextlib.suppress(Exception):
        response.close()
    with contextlib.suppress(Exception):
        response.release_conn()

"""Fixtures of the Kubernetes backend's tests: the session's API server, a namespace per test."""

from __future__ import annotations

from testenv.kube_fixture import (  # noqa: F401 - fixtures, found by name
    kube_api,
    kube_backend,
    kube_env,
    kube_namespace,
    service_account,
    service_account_namespace,
)

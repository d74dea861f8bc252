"""The session's control plane (shared with every other Kubernetes test)."""

from __future__ import annotations

from ..support.kube_fixture import kube_env  # noqa: F401 - a fixture, found by name

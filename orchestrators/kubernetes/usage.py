"""An agent's usage from the cluster's metrics API (``metrics.k8s.io``): pure.

The metrics API (metrics-server, on AKS by default) gives CPU and memory per container,
sampled by the kubelet about every 15 s; it has no pids, network or block I/O, so those are
null. A cluster without it answers 404 for the whole group, which the backend reports as
``NotSupported``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from ..models import AgentStats

__all__ = ["METRICS_GROUP", "METRICS_VERSION", "parse_quantity", "usage_of"]

METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSION = "v1beta1"

_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
}


def parse_quantity(text: str) -> Decimal | None:
    """A Kubernetes quantity (``250m``, ``123456n``, ``64Mi``, ``1e3``) as a number; None
    when it is not one."""
    for length in (2, 1, 0):
        suffix = text[-length:] if length else ""
        if suffix in _SUFFIXES and len(text) > length:
            try:
                return Decimal(text[: len(text) - length]) * _SUFFIXES[suffix]
            except InvalidOperation:
                return None
    return None


def usage_of(
    pods: Iterable[Mapping[str, Any]], *, memory_limit_bytes: int, read_at: datetime
) -> AgentStats:
    """One sample from the agent's ``PodMetrics`` (normally one pod; a rollout may show
    two, whose figures add up). No sample yet (a pod just started): usage is null."""
    cpu: Decimal | None = None
    memory: Decimal | None = None
    for pod in pods:
        for container in pod.get("containers") or []:
            usage = container.get("usage") or {}
            if (value := parse_quantity(str(usage.get("cpu", "")))) is not None:
                cpu = (cpu or Decimal(0)) + value
            if (value := parse_quantity(str(usage.get("memory", "")))) is not None:
                memory = (memory or Decimal(0)) + value
    return AgentStats(
        read_at=read_at,
        cpu_percent=None if cpu is None else round(float(cpu) * 100, 2),
        memory_bytes=None if memory is None else int(memory),
        memory_limit_bytes=memory_limit_bytes,
    )

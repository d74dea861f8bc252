"""One sample of the Docker stats API (``stream=False``) as the platform's ``AgentStats``.

Pure: no I/O here. CPU is the share of one CPU used between the engine's two readings
(``cpu_stats`` and ``precpu_stats``), as ``docker stats`` computes it; memory is the usage
without the page cache the kernel can drop, as ``docker stats`` shows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..models import AgentStats

__all__ = ["sample_stats"]


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) else None


def _cpu_percent(sample: Mapping[str, Any]) -> float | None:
    now, before = sample.get("cpu_stats") or {}, sample.get("precpu_stats") or {}
    used = _int((now.get("cpu_usage") or {}).get("total_usage"))
    used_before = _int((before.get("cpu_usage") or {}).get("total_usage"))
    system, system_before = _int(now.get("system_cpu_usage")), _int(before.get("system_cpu_usage"))
    if used is None or used_before is None or system is None or system_before is None:
        return None
    if system <= system_before:
        return None
    cpus = (
        _int(now.get("online_cpus"))
        or len((now.get("cpu_usage") or {}).get("percpu_usage") or ())
        or 1
    )
    return round(max(0, used - used_before) / (system - system_before) * cpus * 100.0, 2)


def _memory(sample: Mapping[str, Any]) -> tuple[int | None, int | None]:
    memory = sample.get("memory_stats") or {}
    usage = _int(memory.get("usage"))
    details = memory.get("stats") or {}
    cache = _int(details.get("total_inactive_file", details.get("inactive_file")))
    if usage is not None and cache is not None and cache < usage:
        usage -= cache
    return usage, _int(memory.get("limit"))


def _io(sample: Mapping[str, Any]) -> tuple[int | None, int | None]:
    entries = (sample.get("blkio_stats") or {}).get("io_service_bytes_recursive")
    if entries is None:
        return None, None
    totals = {"read": 0, "write": 0}
    for entry in entries:
        op = str(entry.get("op", "")).lower()
        if op in totals:
            totals[op] += _int(entry.get("value")) or 0
    return totals["read"], totals["write"]


def _network(sample: Mapping[str, Any]) -> tuple[int | None, int | None]:
    networks = sample.get("networks")
    if not networks:
        return None, None
    rx = sum(_int(n.get("rx_bytes")) or 0 for n in networks.values())
    tx = sum(_int(n.get("tx_bytes")) or 0 for n in networks.values())
    return rx, tx


def sample_stats(sample: Mapping[str, Any], *, running: bool) -> AgentStats:
    """The platform's view of one engine sample; a stopped agent uses nothing."""
    now = datetime.now(UTC)
    if not running:
        return AgentStats(read_at=now, cpu_percent=0.0, memory_bytes=0, pids=0)
    memory, limit = _memory(sample)
    rx, tx = _network(sample)
    read, write = _io(sample)
    return AgentStats(
        read_at=now,
        cpu_percent=_cpu_percent(sample),
        memory_bytes=memory,
        memory_limit_bytes=limit,
        pids=_int((sample.get("pids_stats") or {}).get("current")),
        network_rx_bytes=rx,
        network_tx_bytes=tx,
        block_read_bytes=read,
        block_write_bytes=write,
    )

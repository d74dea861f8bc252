"""The machine and the versions a run measured, for the report's header."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "describe_load", "describe_machine", "machine_line"]

PACKAGES = (
    "agent-platform",
    "fastapi",
    "starlette",
    "uvicorn",
    "pydantic",
    "pydantic-core",
    "docker",
    "requests",
    "httpx",
    "loguru",
    "uvloop",
    "httptools",
    "matplotlib",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe_load() -> str:
    """The 1, 5 and 15 minute load averages (the host may be shared)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def describe_machine(engine_version: dict[str, Any]) -> dict[str, str]:
    """CPU, cores, memory, kernel, load, engine, Python and package versions."""
    load = describe_load()
    info = {
        "CPU": _cpu_model(),
        "cores": str(os.cpu_count() or "unknown"),
        "memory": _memory(),
        "kernel": f"{platform.system()} {platform.release()}",
        "load average at start": load,
        "Docker engine": (
            f"{engine_version.get('Version', '?')} (API {engine_version.get('ApiVersion', '?')}, "
            f"{engine_version.get('Os', '?')}/{engine_version.get('Arch', '?')})"
        ),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
    }
    info.update({package: _version(package) for package in PACKAGES})
    return info


_LINE_KEYS = ("CPU", "cores", "memory", "kernel", "Docker engine", "Python", "uvicorn")


def machine_line(machine: dict[str, str]) -> str:
    """The machine in one line, as a section of the report quotes it (with the loads)."""
    return ", ".join(f"{k}: {v}" for k, v in machine.items() if k in _LINE_KEYS or "load" in k)

"""Where the service's time goes: py-spy samples of the running process, summarised.

A profile attaches py-spy to the service while one operation is repeated through the API,
samples every thread (idle ones included) and sorts each sample into one bucket:

- *idle*: the event loop waiting in ``select``, or an engine thread waiting for work;
- *engine wait*: an engine thread inside a docker SDK call, blocked on the socket;
- *CPU*: anything else, by thread kind and by package.

Divided by the number of requests served meanwhile, that gives a per-request budget to set
against the raw engine's latency for the same operation.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["StackProfile", "find_py_spy", "parse_collapsed", "record"]

_IDLE_LEAVES = frozenset({"select", "poll", "_worker", "get", "wait", "acquire", "sleep"})
_SOCKET_LEAVES = frozenset(
    {"recv_into", "recv", "readinto", "sendall", "send", "connect", "_readinto"}
)


def find_py_spy() -> str | None:
    """py-spy next to this interpreter (a venv) or on ``PATH``."""
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass(slots=True)
class StackProfile:
    """Sample counts per bucket, at ``rate`` samples a second per thread."""

    rate: int
    loop_cpu: int = 0
    loop_idle: int = 0
    worker_cpu: int = 0
    engine_wait: int = 0
    other_cpu: int = 0
    packages: Counter[str] = field(default_factory=Counter)  # CPU samples, every thread
    functions: Counter[str] = field(default_factory=Counter)  # CPU samples by leaf function
    engine_calls: Counter[str] = field(default_factory=Counter)  # samples in each SDK call

    def per_request_ms(self, samples: int, requests: int) -> float:
        return 1000.0 * samples / self.rate / max(1, requests)

    def summary(self, requests: int, *, top: int = 6) -> list[str]:
        """Markdown list items: the per-request budget, then the busiest packages and frames."""
        cpu = self.loop_cpu + self.worker_cpu + self.other_cpu
        lines = [
            f"per request: event-loop CPU {self.per_request_ms(self.loop_cpu, requests):.2f} ms, "
            f"engine-thread CPU {self.per_request_ms(self.worker_cpu, requests):.2f} ms, "
            f"waiting on the engine {self.per_request_ms(self.engine_wait, requests):.2f} ms, "
            f"other threads {self.per_request_ms(self.other_cpu, requests):.2f} ms "
            f"({requests} requests)",
        ]
        if self.engine_calls:
            calls = ", ".join(
                f"`{name}` {self.per_request_ms(count, requests):.2f} ms"
                for name, count in self.engine_calls.most_common(top)
            )
            lines.append(f"time inside docker SDK calls, per request: {calls}")
        if cpu:
            packages = ", ".join(
                f"{name} {100 * count / cpu:.0f}%" for name, count in self.packages.most_common(top)
            )
            lines.append(f"CPU by package (innermost non-stdlib frame): {packages}")
            functions = ", ".join(
                f"`{name}` {100 * count / cpu:.0f}%"
                for name, count in self.functions.most_common(top)
            )
            lines.append(f"CPU by function (self): {functions}")
        return lines


def _frame(text: str) -> tuple[str, str]:
    """``func (path/to/file.py)`` or ``func (file.py:12)`` as (function, file)."""
    name, _, rest = text.rpartition(" (")
    path = rest.rstrip(")").rsplit(":", 1)[0]
    return (name or text), path


def _package(path: str) -> str:
    return path.split("/", 1)[0].removesuffix(".py") if path else "?"


_STDLIB_HINT = frozenset(
    {
        "asyncio",
        "concurrent",
        "threading",
        "socket",
        "selectors",
        "json",
        "http",
        "email",
        "queue",
        "re",
        "typing",
        "functools",
        "contextlib",
        "logging",
        "datetime",
        "_strptime",
        "enum",
        "abc",
        "collections",
        "ssl",
        "urllib",
        "base64",
        "uuid",
        "copy",
        "inspect",
        "weakref",
        "traceback",
        "linecache",
        "<frozen importlib._bootstrap>",
    }
)


def parse_collapsed(text: str, rate: int) -> StackProfile:
    """Bucket py-spy's raw output (``--threads --idle``: ``thread (id): name;frames count``)."""
    profile = StackProfile(rate=rate)
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        parts = stack.split(";")
        thread = parts[0].split(":", 1)[1].strip() if ":" in parts[0] else parts[0]
        frames = [_frame(p) for p in parts[1:]]
        if not frames:
            continue
        leaf_name, leaf_path = frames[-1]
        leaf = leaf_name.rsplit(".", 1)[-1]
        sdk_call = next((name for name, path in frames if path.startswith("docker/api/")), None)
        if thread == "MainThread":
            if leaf in ("select", "poll") and "selectors" in leaf_path:
                profile.loop_idle += count
                continue
            profile.loop_cpu += count
        elif sdk_call is not None:
            profile.engine_calls[sdk_call] += count
            if leaf in _SOCKET_LEAVES:
                profile.engine_wait += count
                continue
            profile.worker_cpu += count
        elif leaf in _IDLE_LEAVES:
            continue
        elif thread.startswith("docker"):
            profile.worker_cpu += count
        else:
            profile.other_cpu += count
        package = next(
            (_package(path) for _, path in reversed(frames) if _package(path) not in _STDLIB_HINT),
            _package(leaf_path),
        )
        profile.packages[package] += count
        profile.functions[f"{leaf_name} ({leaf_path})"] += count
    return profile


def record(
    pid: int, seconds: float, drive: Callable[[], object], *, rate: int = 200
) -> tuple[StackProfile, int]:
    """Sample ``pid`` for ``seconds`` while calling ``drive`` in a loop; profile and calls."""
    py_spy = find_py_spy()
    if py_spy is None:
        raise RuntimeError("py-spy is not installed")
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as work:
        output = Path(work) / "stacks.txt"
        process = subprocess.Popen(  # noqa: S603 - py-spy from the venv, fixed arguments
            [
                py_spy,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, round(seconds))),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--threads",
                "--idle",
                "--nolineno",
                "--output",
                str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        calls = 0
        time.sleep(0.3)  # let py-spy attach before the first request
        try:
            while process.poll() is None:
                drive()
                calls += 1
        finally:
            _, stderr = process.communicate(timeout=60)
        if process.returncode != 0 or not output.exists():
            message = stderr.decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"py-spy failed: {message[-1] if message else process.returncode}")
        return parse_collapsed(output.read_text(), rate), calls

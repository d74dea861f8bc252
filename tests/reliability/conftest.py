"""The reliability suite writes what it tried, and how it ended, to docs/reliability.md."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest

from testenv.engine import (
    TEST_NETWORK,
    local_dockerd_pid,
    remove_network,
    remove_test_resources,
    start_engine,
    stop_engine,
)

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "docs" / "reliability.md"


@dataclass
class Row:
    kind: str
    cases: str
    outcome: str
    test: str


@dataclass
class ReliabilityReport:
    rows: list[Row] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


_REPORT = ReliabilityReport()


class Recorder:
    def __init__(self, test: str) -> None:
        self._test = test
        self._rows: list[Row] = []

    def record(self, kind: str, cases: str | int, outcome: str) -> None:
        self._rows.append(Row(kind, str(cases), outcome, self._test))


@pytest.fixture
def reliability(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    """Rows for the report; kept only if the test passes."""
    recorder = Recorder(request.node.nodeid.split("::", 1)[1])
    yield recorder
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.passed:
        _REPORT.rows.extend(recorder._rows)
    else:
        _REPORT.failed.append(recorder._test)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _REPORT.rows:
        return
    try:
        engine = docker.from_env().version().get("Version", "?")
    except docker.errors.DockerException:
        engine = "?"
    lines = [
        "# Reliability: faults and hostile input tried",
        "",
        "Written by `tests/reliability/` on every run of the test suite (`./scripts/test.sh`);",
        "each row comes from a test that passed, against the real engine.",
        "",
        f"Run: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.system()} "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Docker engine {engine}.",
        "",
        "| fault or input class | cases | outcome | test |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r.kind} | {r.cases} | {r.outcome} | `{r.test}` |" for r in _REPORT.rows]
    if _REPORT.failed:
        lines += ["", "Failed in this run: " + ", ".join(f"`{t}`" for t in _REPORT.failed)]
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text("\n".join(lines) + "\n")


class EngineControl:
    """Stops, freezes and restarts the local dockerd, as an outage would."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def freeze(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def stop(self) -> None:
        stop_engine(self.pid)

    def start(self) -> None:
        self.pid = start_engine() or self.pid


@pytest.fixture
def engine_control(clean_docker: docker.DockerClient) -> Iterator[EngineControl]:
    """The local engine, which the test may stop; it is always running again afterwards."""
    pid = local_dockerd_pid()
    if pid is None or os.geteuid() != 0:
        message = "needs root and one local dockerd process to stop and start"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    control = EngineControl(pid)
    try:
        yield control
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(control.pid, signal.SIGCONT)
        if local_dockerd_pid() is None:
            control.start()
        _remove_test_network(clean_docker, control)


def _remove_test_network(client: docker.DockerClient, control: EngineControl) -> None:
    """Leave no test network behind, even one the outage left counting a dead endpoint."""
    remove_test_resources(client)
    remove_network(client, TEST_NETWORK)
    control.pid = local_dockerd_pid() or control.pid

"""The benchmark suite's machinery at a tiny size, against the real engine.

It proves that one run measures every figure, writes the report and the plot, and leaves
no container, volume or network behind, also when it is interrupted. No timing is asserted.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import docker
import pytest

import benchmarks.memory
import benchmarks.suite
from benchmarks import BenchConfig, cli, memory_report, run_suite
from benchmarks.cli import write_outputs
from benchmarks.memory import run_memory
from benchmarks.suite import leftovers
from testenv.engine import TEST_PREFIX

pytestmark = pytest.mark.docker

PREFIX = f"{TEST_PREFIX}bench-"


def tiny(tmp_path: Path) -> BenchConfig:
    return replace(
        BenchConfig(),
        sizes=(3,),
        repetitions=2,
        list_requests=3,
        get_requests=3,
        spawn_repetitions=1,
        spawns_per_repetition=2,
        concurrent_spawns=3,
        spawn_clients=2,
        load_clients=4,
        load_seconds=2.0,
        loop_watch_seconds=1.0,
        profile_seconds=1.0,
        fleet_workers=3,
        kubernetes=False,  # tests/benchmarks/test_kubernetes_figures.py runs those
        prefix=PREFIX,
        output=tmp_path / "benchmarks.md",
    )


def nothing_left(client: docker.DockerClient, config: BenchConfig) -> None:
    assert leftovers(client.api, PREFIX) == []
    volumes = (client.api.volumes() or {}).get("Volumes") or []
    assert [v["Name"] for v in volumes if v["Name"].startswith(PREFIX)] == []
    # Nor the owners' agent networks (<network>.<owner>).
    assert [n["Name"] for n in client.api.networks(names=[config.network])] == []


def test_a_tiny_run_reports_every_figure_and_removes_what_it_made(
    docker_client: docker.DockerClient, busybox: str, tmp_path: Path
) -> None:
    config = tiny(tmp_path)

    results = run_suite(config, log=lambda _: None)
    report, plot = write_outputs(results, config)

    text = report.read_text()
    for operation in ("list", "get", "spawn", "stop", "start", "delete"):
        assert f"\n| {operation} | 3 |" in text
    assert "Concurrent spawns at 3 agents" in text
    assert "\n| proxy | 3 | 4 |" in text
    assert "\n| engine | 3 | 4 |" in text
    assert "Event loop watch" in text
    assert "Kubernetes backend: skipped: turned off" in text
    assert "## Targets" in text
    assert "sustained load: errors" in text
    assert "| Docker engine |" in text
    assert plot is not None
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert results.loads[1].error_count == 0
    nothing_left(docker_client, config)


def test_an_interrupted_run_still_removes_what_it_made(
    docker_client: docker.DockerClient,
    busybox: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = tiny(tmp_path)

    def interrupt(*_: object) -> None:
        assert leftovers(docker_client.api, PREFIX), "the fleet exists when Ctrl-C comes"
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmarks.suite, "measure_get", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_suite(config, log=lambda _: None)

    nothing_left(docker_client, config)


def test_a_tiny_memory_run_writes_its_section_and_removes_what_it_made(
    docker_client: docker.DockerClient, busybox: str, tmp_path: Path
) -> None:
    output = tmp_path / "benchmarks.md"
    output.write_text("# agent-api benchmarks\n\nthe suite's figures\n")
    argv = ["--only", "memory", "--sizes", "8,20", "--running", "5", "--repetitions", "1"]

    assert cli.main([*argv, "--prefix", PREFIX, "--output", str(output)]) == 0

    text = output.read_text()
    assert text.startswith("# agent-api benchmarks\n\nthe suite's figures\n")
    section = text[text.index(memory_report.BEGIN) : text.index(memory_report.END)]
    assert f"`python -m benchmarks {' '.join(argv)}`" in section
    assert "Machine: CPU: " in section
    assert "Docker engine: " in section
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| 8 |")]
    rows += [line.split(" | ") for line in section.splitlines() if line.startswith("| 20 |")]
    assert [row[1] for row in rows] == ["5 / 3", "5 / 15"]
    for row in rows:
        startup, rss, peak = float(row[3]), float(row[4]), float(row[5])
        assert startup > 0
        assert 0 < rss <= peak
        assert row[9] == "8 (8 changes) |"  # each stop and start seen on the event stream
    assert "\n| list | 20 |" in section
    assert "\n| get | 20 |" in section
    assert f"`{PREFIX}*` containers left after the run" in section
    assert leftovers(docker_client.api, PREFIX) == []


def test_an_interrupted_memory_run_still_removes_what_it_made(
    docker_client: docker.DockerClient,
    busybox: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = replace(tiny(tmp_path), sizes=(6,), running=2, repetitions=1)

    def interrupt(*_: object) -> None:
        assert len(leftovers(docker_client.api, PREFIX)) == 6, "the fleet exists at Ctrl-C"
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmarks.memory, "measure_get", interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_memory(config, log=lambda _: None)

    nothing_left(docker_client, config)

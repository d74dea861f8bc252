"""The Kubernetes list figures at a tiny size, against the session's real API server.

It proves that the hook measures both sides and leaves nothing behind: its namespace is
gone and its service process has ended. No timing is asserted.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest
from kubernetes import client

import benchmarks.kubernetes
from benchmarks import BenchConfig
from benchmarks.cli import parse_args
from benchmarks.kubernetes import OPERATION, kubernetes_list_comparisons, kubernetes_targets
from testenv.engine import TEST_PREFIX
from testenv.kube_env import KubeTestEnv
from testenv.kube_fixture import kube_env  # noqa: F401 - a fixture, found by name

PREFIX = f"{TEST_PREFIX}kbench-"


def tiny() -> BenchConfig:
    return replace(BenchConfig(), sizes=(3,), repetitions=2, list_requests=3, prefix=PREFIX)


def namespaces(api: client.ApiClient) -> list[str]:
    found = client.CoreV1Api(api).list_namespace().items
    names = [str(n.metadata.name) for n in found if n.metadata is not None]
    return [name for name in names if name.startswith(PREFIX)]


def service_pid(messages: list[str]) -> int:
    found = [m for m in map(re.compile(r"agent-api pid (\d+)").search, messages) if m]
    assert len(found) == 1, messages
    return int(found[0].group(1))


def ended(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.kubernetes
def test_the_kubernetes_list_figures_are_measured_and_nothing_is_left(
    kube_env: KubeTestEnv,  # noqa: F811 - the fixture imported above
) -> None:
    api = kube_env.api_client()
    messages: list[str] = []

    figures = kubernetes_list_comparisons(tiny(), messages.append, env=kube_env)

    assert isinstance(figures, list), figures
    assert [(f.operation, f.size) for f in figures] == [(OPERATION, 3)]
    for reps in (figures[0].proxy, figures[0].engine):
        assert len(reps) == 2
        assert all(rep and min(rep) > 0 for rep in reps)
    assert [t.name for t in kubernetes_targets(figures)] == ["list at 3 agents on Kubernetes"]
    assert namespaces(api) == []
    assert ended(service_pid(messages))


@pytest.mark.kubernetes
def test_an_interrupted_kubernetes_figure_still_removes_what_it_made(
    kube_env: KubeTestEnv,  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = kube_env.api_client()
    messages: list[str] = []

    def interrupt(*_: object) -> None:
        (namespace,) = namespaces(api)
        fleet = client.AppsV1Api(api).list_namespaced_deployment(namespace).items
        assert len(fleet) == 3, "the fleet exists when Ctrl-C comes"
        raise KeyboardInterrupt

    monkeypatch.setattr(benchmarks.kubernetes, "_measure", interrupt)
    with pytest.raises(KeyboardInterrupt):
        kubernetes_list_comparisons(tiny(), messages.append, env=kube_env)

    assert namespaces(api) == []
    assert ended(service_pid(messages))


def test_without_the_control_plane_binaries_the_kubernetes_figures_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBE_TESTENV_BIN_DIR", str(tmp_path))
    monkeypatch.setenv("KUBE_TESTENV_NO_BUILD", "1")

    reason = kubernetes_list_comparisons(tiny())

    assert isinstance(reason, str)
    assert reason.startswith("skipped: no Kubernetes control plane")
    assert "kube-apiserver" in reason


def test_the_kubernetes_figures_can_be_turned_off() -> None:
    reason = kubernetes_list_comparisons(replace(tiny(), kubernetes=False))

    assert reason == "skipped: turned off (--no-kubernetes)"


def test_a_fleet_larger_than_the_fake_node_skips_the_kubernetes_figures() -> None:
    reason = kubernetes_list_comparisons(replace(tiny(), sizes=(10, 1001)))

    assert reason == "skipped: the test cluster's one node holds 1000 pods, not 1001"


def test_the_kubernetes_figures_can_be_asked_for_alone() -> None:
    config = parse_args(["--only", "kubernetes", "--sizes", "1000"])
    assert (config.only, config.sizes, config.kubernetes) == ("kubernetes", (1000,), True)

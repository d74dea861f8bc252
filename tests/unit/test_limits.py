"""Pure parts of the limits: which registry an image names, the ceilings, the report section."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.cli import CARRIED, carry_sections
from benchmarks.kube_changes import KUBE_CHANGES_BEGIN as KB
from benchmarks.kube_changes import KUBE_CHANGES_END as KE
from benchmarks.noisy_report import BEGIN, END, carry_section, write_section
from orchestrators.docker.registry import private_registry_address, registry_host
from orchestrators.errors import AgentQuotaExceeded
from orchestrators.models import Resources
from orchestrators.policy import OwnerCeilings


@pytest.mark.parametrize(
    ("image", "host"),
    [
        ("busybox", "docker.io"),
        ("library/busybox:1", "docker.io"),
        ("hive/agent:latest", "docker.io"),
        ("registry.example/agents/a:1", "registry.example"),
        ("127.0.0.1:5000/a", "127.0.0.1"),
        ("localhost:5000/a/b:1", "localhost"),
        ("localhost/a", "localhost"),
        ("[::1]:5000/a", "::1"),
        ("myregistry.azurecr.io/agent@sha256:" + "a" * 64, "myregistry.azurecr.io"),
    ],
)
def test_the_registry_of_an_image(image: str, host: str) -> None:
    assert registry_host(image) == host


@pytest.mark.parametrize(
    "image",
    [
        "127.0.0.1:5000/a",
        "127.1.2.3/a/b",
        "localhost:5000/a",
        "10.0.0.5:5000/a",
        "172.16.1.1/a",
        "192.168.1.10:443/a",
        "169.254.169.254/latest/meta",
        "100.64.0.1/a",
        "0.0.0.0:5000/a",
        "[::1]:5000/a",
        "[fd00::1]:5000/a",
    ],
)
def test_private_registries_are_recognised_without_a_lookup(image: str) -> None:
    assert private_registry_address(image, resolve=False) is not None


@pytest.mark.parametrize("image", ["busybox", "hive/a:1", "8.8.8.8/a", "registry.example/a"])
def test_public_registries_are_not(image: str) -> None:
    assert private_registry_address(image, resolve=False) is None


def test_owner_ceilings_name_the_one_passed() -> None:
    held = [Resources(cpus=1.0, memory_mb=512, pids=64)] * 2
    asking = Resources(cpus=1.0, memory_mb=256, pids=64)
    OwnerCeilings().check("alice", held, asking)
    OwnerCeilings(cpus=3.0, memory_mb=1280).check("alice", held, asking)
    with pytest.raises(AgentQuotaExceeded, match=r"^cpus: .*3 CPUs.*2\.5"):
        OwnerCeilings(cpus=2.5).check("alice", held, asking)
    with pytest.raises(AgentQuotaExceeded, match=r"^memory_mb: .*1280 MiB.*1024"):
        OwnerCeilings(memory_mb=1024).check("alice", held, asking)


def test_the_noisy_section_is_replaced_appended_and_carried(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    report.write_text("# agent-api benchmarks\n\nthe suite's figures\n")
    write_section(report, f"{BEGIN}\nfirst\n{END}")
    write_section(report, f"{BEGIN}\nsecond\n{END}")
    text = report.read_text()
    assert text.startswith("# agent-api benchmarks\n\nthe suite's figures\n")
    assert "second" in text
    assert "first" not in text
    assert text.count(BEGIN) == 1
    rewritten = carry_section(text, "# agent-api benchmarks\n\nnew figures\n")
    assert "new figures" in rewritten
    assert "second" in rewritten
    assert rewritten.count(END) == 1


def test_the_kubernetes_changes_section_lives_beside_the_noisy_one(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    report.write_text(f"# agent-api benchmarks\n\n{BEGIN}\nnoisy\n{END}\n")
    write_section(report, f"{KB}\nchanges 1\n{KE}", KB, KE)
    write_section(report, f"{KB}\nchanges 2\n{KE}", KB, KE)
    text = report.read_text()
    assert "noisy" in text
    assert "changes 2" in text
    assert "changes 1" not in text
    rewritten = carry_section(text, "# agent-api benchmarks\n\nnew figures\n")
    rewritten = carry_section(text, rewritten, KB, KE)
    for kept in ("new figures", "noisy", "changes 2"):
        assert kept in rewritten


def test_a_full_run_keeps_every_section_written_apart_in_order() -> None:
    old = "# agent-api benchmarks\n\nold figures\n" + "".join(
        f"\n{begin}\n## section {index}\n{end}\n" for index, (begin, end) in enumerate(CARRIED)
    )
    rewritten = carry_sections(old, "# agent-api benchmarks\n\nnew figures\n")
    assert "old figures" not in rewritten
    kept = [rewritten.index(f"## section {index}") for index in range(len(CARRIED))]
    assert kept == sorted(kept)
    for begin, end in CARRIED:
        assert rewritten.count(begin) == rewritten.count(end) == 1


def test_the_report_marks_the_events_and_kubernetes_list_sections() -> None:
    text = (Path(__file__).parents[2] / "docs" / "benchmarks.md").read_text()
    rewritten = carry_sections(text, "# agent-api benchmarks\n")
    for heading in ("## Events and the read model", "## Kubernetes list from the read model"):
        assert heading in rewritten

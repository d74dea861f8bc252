"""Image references and allowlist patterns, parsed and matched part by part."""

from __future__ import annotations

import pytest

from orchestrators.images import id_shaped, matches, parse_reference


def test_references_are_normalised_like_docker() -> None:
    python = parse_reference("python")
    assert (python.domain, python.path, python.tag, python.digest) == (
        "docker.io",
        "library/python",
        None,
        None,
    )
    assert python.familiar == "python"
    hub = parse_reference("docker.io/hive/bot:1")
    assert (hub.domain, hub.path, hub.tag, hub.familiar) == (
        "docker.io",
        "hive/bot",
        "1",
        "hive/bot",
    )
    local = parse_reference("localhost:5000/team/bot:2@sha256:" + "a" * 64)
    assert (local.domain, local.path, local.tag) == ("localhost:5000", "team/bot", "2")
    assert local.digest == "sha256:" + "a" * 64
    assert local.familiar == "localhost:5000/team/bot"


@pytest.mark.parametrize(
    ("pattern", "admitted", "refused"),
    [
        ("python", ["python", "python:3.12", "docker.io/library/python:3"], ["pythonevil/x:1"]),
        ("python*", ["python3:1"], ["pythonevil/backdoor:1", "python/x"]),
        ("python:3.12", ["python:3.12"], ["python:3.13", "python"]),
        ("python:3.*", ["python:3.11"], ["python:2.7", "python"]),
        ("python:latest", ["python"], ["python:3"]),
        (
            "registry.example/team/*",
            ["registry.example/team/bot:1", "REGISTRY.example/team/bot"],
            ["registry.example/team/a/b", "registry.example/teamevil/bot", "team/bot"],
        ),
        ("registry.example/team/**", ["registry.example/team/a/b:1"], ["registry.example/x/a"]),
        ("hive/*", ["hive/bot:1"], ["hive.evil.example/bot", "hive/a/b", "hiveevil/bot"]),
        ("python@sha256:" + "b" * 64, ["python@sha256:" + "b" * 64], ["python:3", "python"]),
        ("*", ["anything/at:all", "registry.example/a/b"], []),
    ],
)
def test_patterns_match_parts(pattern: str, admitted: list[str], refused: list[str]) -> None:
    for reference in admitted:
        assert matches(reference, pattern), (reference, pattern)
    for reference in refused:
        assert not matches(reference, pattern), (reference, pattern)


def test_id_shaped_references() -> None:
    assert id_shaped("0123456789ab")
    assert id_shaped("a" * 64)
    assert id_shaped("sha256:" + "a" * 64)
    assert not id_shaped("python")
    assert not id_shaped("cafe")  # a name; the engine check catches it if it is an id prefix

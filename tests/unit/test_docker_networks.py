"""Names and times of the owners' agent networks, and the container's user."""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrators.docker.networks import network_name
from orchestrators.docker.objects import build_container
from orchestrators.docker.workspace import parse_user
from orchestrators.models import AgentSpec, Resources
from orchestrators.timestamps import parse_rfc3339


def test_one_network_per_owner() -> None:
    assert network_name("hive-net", "sol") == "hive-net.sol"
    assert network_name("h2-net", "alice") == "h2-net.alice"


def test_engine_times_with_nanoseconds() -> None:
    moment = parse_rfc3339("2026-12-01T08:15:42.123456789Z")
    assert moment == datetime(2026, 12, 1, 8, 15, 42, 123456, tzinfo=UTC)
    assert parse_rfc3339("2026-12-01T08:15:42Z") == datetime(2026, 12, 1, 8, 15, 42, tzinfo=UTC)
    assert parse_rfc3339("not a time") is None
    assert parse_rfc3339(None) is None


def test_the_container_runs_as_the_configured_user() -> None:
    spec = AgentSpec.model_validate({"name": "web", "image": "hive/bot:1"})
    built = build_container(
        spec,
        labels={},
        owner="sol",
        resources=Resources(cpus=1, memory_mb=64, pids=32),
        prefix="hive-",
        network="hive-net.sol",
        volume=None,
        workspace_path="/workspace",
        user="10001:10001",
    )
    assert built.kwargs()["user"] == "10001:10001"
    assert parse_user("10001:10002") == (10001, 10002)

"""Pure pieces, compared as data: labels, status mapping, container building, parsing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import SecretStr, ValidationError

import agent_platform
import clients
import orchestrators
import orchestrators.docker
from agent_platform.pagination import Cursors
from agent_platform.problems import ProblemError
from agent_platform.since import parse_since
from orchestrators import labels as L
from orchestrators.docker.api import Container
from orchestrators.docker.objects import build_container
from orchestrators.docker.status import container_status
from orchestrators.errors import PolicyViolation
from orchestrators.models import AgentSpec, AgentStatus, Resources, StoredSpec
from orchestrators.policy import SpawnPolicy

SMALL = Resources(cpus=0.5, memory_mb=64, pids=32)


def test_packages_export_what_they_mean_to() -> None:
    assert set(orchestrators.__all__) == {
        name for name in dir(orchestrators) if not name.startswith("_")
    } - {
        "base",
        "changes",
        "config",
        "errors",
        "images",
        "labels",
        "models",
        "policy",
        "skeleton",
        "threads",
        "timestamps",
        "types",
        "viewcache",
        "watch",
        "events",
        "docker",
        "kubernetes",
    }
    assert orchestrators.docker.__all__ == ["DockerConfig", "DockerOrchestrator"]
    assert agent_platform.__all__ == ["__version__"]
    assert clients.__all__ == [
        "AgentClient",
        "AsyncAgentClient",
        "RetryPolicy",
        "Agent",
        "AgentPage",
        "AgentStatus",
        "Health",
        "ResourceRequest",
        "Resources",
        "SpawnRequest",
        "AgentAPIError",
        "APIStatusError",
        "ConflictError",
        "ForbiddenError",
        "NotFoundError",
        "NotSupportedError",
        "PolicyViolationError",
        "PreconditionFailedError",
        "RateLimitedError",
        "ServerUnavailableError",
        "TransportError",
        "UnauthorizedError",
        "ValidationError",
        "WaitTimeoutError",
        "RemoteAgentManager",
    ]


def test_user_labels_cannot_stand_in_for_system_labels() -> None:
    spec = AgentSpec(name="a", image="img", labels={"owner": "mallory", "managed-by": "me"})
    labels = L.system_labels(
        instance="hive",
        agent_id="1" * 32,
        owner="alice",
        created_at=datetime(2026, 11, 20, 10, 0, tzinfo=UTC),
        spec=StoredSpec.from_spec(spec, SMALL),
        idempotency=None,
    )
    assert labels[L.OWNER] == "alice"
    assert labels[L.MANAGED_BY] == L.MANAGED_BY_VALUE
    assert labels["user.agents.hive.io/owner"] == "mallory"
    assert labels[L.CREATED_AT] == "20261120T100000.000000Z"
    agent = L.agent_from_labels(labels, status=AgentStatus.RUNNING, detail=None, orchestrator="x")
    assert agent.owner == "alice"
    assert agent.labels == {"owner": "mallory", "managed-by": "me"}
    assert agent.created_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def test_a_label_of_the_wrong_shape_is_refused() -> None:
    with pytest.raises(ValidationError):
        AgentSpec(name="a", image="img", labels={"agents.hive.io/owner": "x"})
    with pytest.raises(ValidationError):
        AgentSpec(name="a", image="img", labels={"k": "v" * 64})


def test_idempotency_hashes_are_per_owner_and_label_sized() -> None:
    assert L.idempotency_hash("alice", "k") != L.idempotency_hash("bob", "k")
    assert len(L.idempotency_hash("alice", "k" * 500)) <= 63


@pytest.mark.parametrize(
    ("state", "code", "oom", "expected"),
    [
        ("created", None, False, AgentStatus.PENDING),
        ("running", None, False, AgentStatus.RUNNING),
        ("restarting", 1, False, AgentStatus.RESTARTING),
        ("paused", None, False, AgentStatus.STOPPED),
        ("exited", 0, False, AgentStatus.EXITED),
        ("exited", 137, False, AgentStatus.FAILED),  # a kill nobody asked for
        ("exited", 143, False, AgentStatus.STOPPED),
        ("exited", 137, True, AgentStatus.FAILED),
        ("exited", 2, False, AgentStatus.FAILED),
        ("dead", None, False, AgentStatus.FAILED),
        ("weird", None, False, AgentStatus.UNKNOWN),
    ],
)
def test_engine_states_map_onto_the_contract(
    state: str, code: int | None, oom: bool, expected: AgentStatus
) -> None:
    assert container_status(state, code, oom_killed=oom)[0] is expected


def test_a_sigkill_is_a_stop_only_when_a_stop_was_asked() -> None:
    assert container_status("exited", 137, stop_asked=True)[0] is AgentStatus.STOPPED
    status, detail = container_status("exited", 137, stop_asked=False)
    assert status is AgentStatus.FAILED
    assert "killed outside the API" in (detail or "")
    assert container_status("exited", 137, oom_killed=True, stop_asked=True)[0] is (
        AgentStatus.FAILED
    )


def test_a_container_is_read_from_a_list_entry_or_an_inspect() -> None:
    labels = {L.ID: "a" * 32, L.NAME: "worker"}
    entry = {
        "Id": "c1",
        "Labels": labels,
        "State": "exited",
        "Status": "Exited (137) 2 minutes ago",
        "NetworkSettings": {"Networks": {"hive-net.alice": {}}},
    }
    listed = Container.from_summary(entry)
    assert (listed.state, listed.exit_code, listed.inspected) == ("exited", 137, False)
    assert listed.address() == ("hive-net.alice", "worker")
    running = Container.from_summary({**entry, "State": "running", "Status": "Up 3 seconds"})
    assert running.exit_code is None
    inspected = Container.from_inspect(
        {
            "Id": "c1",
            "Config": {"Labels": labels},
            "State": {"Status": "exited", "ExitCode": 137, "OOMKilled": True, "Error": ""},
            "NetworkSettings": {"Networks": {"bridge": {}}},
        }
    )
    assert (inspected.exit_code, inspected.oom_killed, inspected.inspected) == (137, True, True)
    assert inspected.address() is None


def test_the_container_description_is_hardened() -> None:
    spec = AgentSpec(
        name="web",
        image="img:1",
        command=["run"],
        env={"A": "1"},
        secrets={"S": SecretStr("v")},
        workspace=True,
    )
    built = build_container(
        spec,
        labels={"l": "v"},
        owner="alice",
        resources=SMALL,
        prefix="hive-",
        network="hive-net",
        volume="hive-ws-1",
        workspace_path="/workspace",
    )
    assert built.name == "hive-alice.web"
    assert built.environment == ["A=1", "S=v"]
    assert built.host_config == {
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges"],
        "Privileged": False,
        "NanoCpus": 500_000_000,
        "Memory": 64 * 1024 * 1024,
        "MemorySwap": 64 * 1024 * 1024,
        "PidsLimit": 32,
        "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
        "NetworkMode": "hive-net",
        "Mounts": [
            {"Type": "volume", "Source": "hive-ws-1", "Target": "/workspace", "ReadOnly": False}
        ],
    }
    assert built.networking_config == {"EndpointsConfig": {"hive-net": {"Aliases": ["web"]}}}


def test_the_policy_fills_defaults_and_enforces_ceilings() -> None:
    policy = SpawnPolicy(
        default_resources=SMALL,
        max_resources=Resources(cpus=2, memory_mb=1024, pids=100),
        allowed_images=("hive/*",),
    )
    asked = AgentSpec.model_validate({"name": "a", "image": "i", "resources": {"cpus": 2}})
    assert policy.resolve_resources(asked) == Resources(cpus=2, memory_mb=64, pids=32)
    with pytest.raises(PolicyViolation):
        policy.resolve_resources(
            AgentSpec.model_validate({"name": "a", "image": "i", "resources": {"pids": 101}})
        )
    policy.check_image("hive/nanobot:latest")
    with pytest.raises(PolicyViolation):
        policy.check_image("evil/miner:latest")


def test_since_accepts_three_forms() -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_since("10m", now=now) == datetime(2026, 11, 20, 11, 50, tzinfo=UTC)
    assert parse_since("0", now=now) == datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_since("2026-11-20T10:00:00Z") == datetime(2026, 11, 20, 10, tzinfo=UTC)
    assert parse_since(None) is None
    assert parse_since("999999999d", now=now) == datetime(1970, 1, 1, tzinfo=UTC)
    with pytest.raises(ProblemError):
        parse_since("999999999999")
    with pytest.raises(ProblemError):
        parse_since("last tuesday")


def test_pages_cover_every_agent_once_in_order() -> None:
    def agent(index: int) -> orchestrators.Agent:
        return orchestrators.Agent(
            id=f"{index:032x}",
            name=f"a{index}",
            owner="o",
            image="i",
            status=AgentStatus.RUNNING,
            created_at=datetime(2026, 1, 1, 0, 0, index % 3, tzinfo=UTC),
            labels={},
            env={},
            secret_names=[],
            resources=SMALL,
            restart_policy="no",
            workspace=False,
            network="default",
            command=None,
            orchestrator="x",
        )

    agents = [agent(i) for i in range(7)]
    seen, cursor = [], None
    while True:
        page, cursor = Cursors(b"unit-test-key").paginate(agents, limit=3, cursor=cursor)
        seen += page
        if cursor is None:
            break
    assert sorted(a.id for a in seen) == sorted(a.id for a in agents)
    assert len(seen) == 7
    assert [(a.created_at, a.id) for a in seen] == sorted((a.created_at, a.id) for a in agents)

"""The real Docker engine for tests: required in CI, and cleaned of everything tests made."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import docker
import pytest

from orchestrators import labels as L

__all__ = [
    "TEST_NAMES",
    "TEST_NETWORK",
    "TEST_PREFIX",
    "docker_or_fail",
    "local_dockerd_pid",
    "remove_network",
    "remove_test_resources",
    "restart_local_engine",
    "start_engine",
    "stop_engine",
]

# Overridable so that two test runs on one engine never remove each other's containers.
TEST_PREFIX = os.environ.get("AGENT_PLATFORM_TEST_PREFIX", "aptest-")
TEST_NETWORK = f"{TEST_PREFIX}net"
# The engine's name filter matches anywhere in a name: anchored, so that another run's
# ``other-alice.aptest-x`` is not taken for one of ours.
TEST_NAMES = f"^/{TEST_PREFIX}"
ENSURE_DOCKER = Path(__file__).resolve().parents[1] / "scripts" / "ensure-docker.sh"


def docker_or_fail() -> docker.DockerClient:
    """A client for the engine; in CI a missing engine fails the run instead of skipping."""
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except docker.errors.DockerException as exc:
        message = f"no Docker engine answers ({type(exc).__name__}); run scripts/test.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return client


def remove_test_resources(client: docker.DockerClient, *, networks: bool = False) -> None:
    """Remove every container and volume carrying the test prefix (and networks if asked)."""
    for container in client.api.containers(all=True, filters={"name": TEST_NAMES}):
        if any(name.lstrip("/").startswith(TEST_PREFIX) for name in container["Names"]):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_container(container["Id"], force=True)
    volumes = client.api.volumes(filters={"label": [f"{L.MANAGED_BY}={L.MANAGED_BY_VALUE}"]})
    for volume in (volumes or {}).get("Volumes") or []:
        if volume["Name"].startswith(TEST_PREFIX):
            with contextlib.suppress(docker.errors.NotFound):
                client.api.remove_volume(volume["Name"], force=True)
    if networks:
        for network in client.api.networks(names=[TEST_PREFIX]):
            if network["Name"].startswith(TEST_PREFIX):
                remove_network(client, network["Name"])


def local_dockerd_pid() -> int | None:
    """The pid of the one dockerd on this machine; None when there is none, or several."""
    found = subprocess.run(["pgrep", "-x", "dockerd"], capture_output=True, text=True, check=False)
    pids = [int(p) for p in found.stdout.split()]
    return pids[0] if len(pids) == 1 else None


def stop_engine(pid: int) -> None:
    """Stop the local dockerd as a shutdown would, and wait until it is gone."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.2)
    raise RuntimeError("dockerd did not stop within 60 s")


def start_engine() -> int | None:
    """Start the local dockerd if none answers; its pid."""
    subprocess.run([str(ENSURE_DOCKER)], check=True, timeout=120)
    return local_dockerd_pid()


def restart_local_engine() -> bool:
    """Restart the one local dockerd (as root); False when there is no such engine here."""
    pid = local_dockerd_pid()
    if pid is None or os.geteuid() != 0:
        return False
    stop_engine(pid)
    start_engine()
    return True


def remove_network(client: docker.DockerClient, name: str) -> None:
    """Remove the network called exactly ``name``, if there is one.

    dockerd 20.10 can go on counting an endpoint of a container that is gone (killed by the
    engine's own shutdown, or removed while its start failed) and then refuses to remove
    the network until it restarts and recounts: the local engine is restarted then.
    """
    for attempt in range(2):
        try:
            for network in client.api.networks(names=[name]):
                if network["Name"] == name:
                    client.api.remove_network(network["Id"])
            return
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as exc:
            if attempt or "active endpoints" not in str(exc) or not restart_local_engine():
                raise

"""Fixtures shared by the whole suite: the real engine, test images, the service process."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import httpx
import pytest

from agent_platform.auth import hash_key
from testenv.engine import TEST_NETWORK, TEST_PREFIX, docker_or_fail, remove_test_resources
from testenv.images import BUSYBOX_IMAGE, build_busybox_image
from testenv.server import ServerProcess

# A test needs an engine when it uses (directly or through other fixtures) the fixture that
# connects to it; it is marked so, and ``-m "not docker and not kubernetes"`` leaves it out.
ENGINE_FIXTURES = {"docker_client": "docker", "kube_env": "kubernetes"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for fixture, marker in ENGINE_FIXTURES.items():
            if fixture in used and item.get_closest_marker(marker) is None:
                item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker_or_fail()
    remove_test_resources(client, networks=True)
    yield client
    remove_test_resources(client, networks=True)
    client.close()


@pytest.fixture(scope="session")
def busybox(docker_client: docker.DockerClient) -> str:
    return build_busybox_image(docker_client, BUSYBOX_IMAGE)


@pytest.fixture
def clean_docker(docker_client: docker.DockerClient, busybox: str) -> Iterator[docker.DockerClient]:
    """The engine, with every test container and volume removed after the test, pass or fail."""
    yield docker_client
    remove_test_resources(docker_client)


@dataclass(frozen=True)
class Keys:
    """The keys the service under test accepts: one per role and owner."""

    admin: str
    alice: str  # operator, owner alice
    bob: str  # operator, owner bob
    alice_viewer: str  # viewer, owner alice


def server_env(keys: Keys, keys_file: Path) -> dict[str, str]:
    return {
        "AGENT_API_KEY": keys.admin,
        "AGENT_API_KEYS_FILE": str(keys_file),
        "AGENT_API_RESOURCE_PREFIX": TEST_PREFIX,
        "AGENT_API_NETWORK": TEST_NETWORK,
        "AGENT_API_PULL_MISSING_IMAGES": "false",
        "AGENT_API_STOP_TIMEOUT": "1",
        "AGENT_API_MAX_CPUS": "2",
        "ORCHESTRATOR": "docker",
    }


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Keys, Path]:
    made = Keys(*(secrets.token_urlsafe(24) for _ in range(4)))
    entries = [
        {"name": "alice-op", "owner": "alice", "role": "operator", "sha256": hash_key(made.alice)},
        {"name": "bob-op", "owner": "bob", "role": "operator", "sha256": hash_key(made.bob)},
        {
            "name": "alice-view",
            "owner": "alice",
            "role": "viewer",
            "sha256": hash_key(made.alice_viewer),
        },
    ]
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    path.write_text(json.dumps({"keys": entries}))
    return made, path


@pytest.fixture(scope="session")
def server(
    docker_client: docker.DockerClient,
    busybox: str,
    keys: tuple[Keys, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerProcess]:
    made, path = keys
    process = ServerProcess(
        server_env(made, path), tmp_path_factory.mktemp("server") / "agent-api.log"
    )
    process.start()
    yield process
    process.stop()


class Api:
    """httpx clients for the running service, one per key, closed after the test."""

    def __init__(self, server: ServerProcess, keys: Keys) -> None:
        self.url, self.keys, self.server = server.url, keys, server
        self._clients: list[httpx.Client] = []
        self.admin = self.client(keys.admin)
        self.alice = self.client(keys.alice)
        self.bob = self.client(keys.bob)
        self.viewer = self.client(keys.alice_viewer)
        self.anonymous = self.client(None)

    def client(self, key: str | None, *, header: str = "bearer") -> httpx.Client:
        headers: dict[str, str] = {}
        if key is not None:
            headers = {"Authorization": f"Bearer {key}"} if header == "bearer" else {header: key}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=60)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for client in self._clients:
            client.close()


@pytest.fixture
def api(
    server: ServerProcess, keys: tuple[Keys, Path], clean_docker: docker.DockerClient
) -> Iterator[Api]:
    made = Api(server, keys[0])
    yield made
    made.close()


@pytest.fixture
def server_log_default(server: ServerProcess) -> str:
    """What the shared service printed so far."""
    return server.logs()


StartServer = Callable[..., ServerProcess]


@pytest.fixture
def start_server(
    keys: tuple[Keys, Path],
    tmp_path: Path,
    clean_docker: docker.DockerClient,
) -> Iterator[StartServer]:
    """Start service processes with their own settings; all are stopped after the test."""
    started: list[ServerProcess] = []

    def start(keys_file: Path | None = None, **overrides: str) -> ServerProcess:
        env = server_env(keys[0], keys_file or keys[1])
        env.update(overrides)
        process = ServerProcess(env, tmp_path / f"server-{len(started)}.log")
        started.append(process)
        process.start()
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def api_alice(api: Api) -> httpx.Client:
    """The shared service, as the operator alice."""
    return api.alice

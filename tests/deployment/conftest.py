"""The compose stack of deployment/docker-compose.yml, built from this repository and run
for real (pytest-docker), with a small stand-in for Sol that uses this repo's clients."""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest
from pytest_docker.plugin import Services, get_docker_services

from agent_platform.auth import hash_key
from testenv.engine import TEST_PREFIX, remove_network, remove_test_resources
from testenv.images import build_python_base_image
from testenv.server import free_port

ROOT = Path(__file__).resolve().parents[2]
AGENT_API_IMAGE = "aptest/agent-api:test"
SOL_IMAGE = "aptest/sol-standin:test"
HIVE_NET = f"{TEST_PREFIX}hive-net"
PROJECT = f"{TEST_PREFIX.rstrip('-')}-deploy"

_SOL_DOCKERFILE = f"""FROM {AGENT_API_IMAGE}
# Sol's stand-in: this repo's clients, no socket, no docker group; it idles until asked.
ENTRYPOINT ["python3", "-c", \
  "import signal, time; signal.signal(signal.SIGTERM, lambda *_: exit(0)); time.sleep(1e9)"]
""".encode()


@dataclass
class Stack:
    services: Services
    url: str
    key: str
    sol_key: str
    port: int
    build_seconds: float
    up_seconds: float
    image_bytes: int
    engine: docker.DockerClient

    def container(self, service: str) -> docker.models.containers.Container:
        found = self.engine.containers.list(
            all=True,
            filters={
                "label": [
                    f"com.docker.compose.project={PROJECT}",
                    f"com.docker.compose.service={service}",
                ]
            },
        )
        assert len(found) == 1, found
        return found[0]

    def compose(self, subcommand: str, success_codes: tuple[int, ...] = (0,)) -> str:
        output = self.services._docker_compose.execute(subcommand, success_codes=success_codes)
        return output.decode() if isinstance(output, bytes) else str(output)


def compose_command() -> str:
    if shutil.which("docker-compose"):
        return "docker-compose"
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode == 0:
        return "docker compose"
    raise RuntimeError("neither docker-compose nor docker compose is installed")


def build_images(engine: docker.DockerClient) -> tuple[float, int]:
    base = build_python_base_image(engine)
    started = time.monotonic()
    engine.images.build(
        path=str(ROOT), tag=AGENT_API_IMAGE, buildargs={"BASE_IMAGE": base}, rm=True, forcerm=True
    )
    seconds = time.monotonic() - started
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(_SOL_DOCKERFILE)
        tar.addfile(info, io.BytesIO(_SOL_DOCKERFILE))
    context.seek(0)
    engine.images.build(fileobj=context, custom_context=True, tag=SOL_IMAGE, rm=True)
    size = int(engine.images.get(AGENT_API_IMAGE).attrs["Size"])
    return seconds, size


@pytest.fixture(scope="module")
def stack(
    docker_client: docker.DockerClient, busybox: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    dangling_before = {image.id for image in docker_client.images.list(filters={"dangling": True})}
    build_seconds, image_bytes = build_images(docker_client)
    key, sol_key = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    port = free_port()
    deploy = tmp_path_factory.mktemp("deploy")
    env_file = deploy / ".env"
    env_file.write_text(f"AGENT_API_KEY={key}\nSOL_API_KEY={sol_key}\n")
    # The keys file as the README makes it: Sol's operator key, owner sol, as a digest.
    keys_dir = deploy / "keys"
    keys_dir.mkdir()
    (keys_dir / "keys.yaml").write_text(
        f"keys:\n  - {{name: sol, owner: sol, role: operator, sha256: {hash_key(sol_key)}}}\n"
    )
    keys_dir.chmod(0o755)
    (keys_dir / "keys.yaml").chmod(0o644)
    variables = {
        "ENV_FILE": str(env_file),
        "AGENT_API_KEY": key,
        "SOL_API_KEY": sol_key,
        "AGENT_API_KEYS_DIR": str(keys_dir),
        "AGENT_API_IMAGE": AGENT_API_IMAGE,
        "SOL_IMAGE": SOL_IMAGE,
        "AGENT_API_PORT": str(port),
        "DOCKER_GID": str(os.stat("/var/run/docker.sock").st_gid),
        "TEST_HIVE_NET": HIVE_NET,
        "TEST_PREFIX": TEST_PREFIX,
    }
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    files = [
        str(ROOT / "deployment" / "docker-compose.yml"),
        str(Path(__file__).with_name("compose.test.yml")),
    ]
    try:
        started = time.monotonic()
        with get_docker_services(compose_command(), files, PROJECT, ["up -d"], []) as services:
            up_seconds = time.monotonic() - started
            yield Stack(
                services,
                f"http://127.0.0.1:{port}",
                key,
                sol_key,
                port,
                build_seconds,
                up_seconds,
                image_bytes,
                docker_client,
            )
            # Agents outlive `down` and keep the network busy: remove them first.
            remove_test_resources(docker_client)
            services._docker_compose.execute("down --remove-orphans")
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        remove_test_resources(docker_client)
        for network in (HIVE_NET, f"{HIVE_NET}.sol", f"{HIVE_NET}.admin"):
            remove_network(docker_client, network)
        # The next run builds them again; left here, each run would leave dangling images
        # (the old tags, the build stage).
        for image in (SOL_IMAGE, AGENT_API_IMAGE):
            with contextlib.suppress(docker.errors.ImageNotFound):
                docker_client.images.remove(image, force=True)
        for leftover in docker_client.images.list(filters={"dangling": True}):
            if leftover.id not in dangling_before:
                with contextlib.suppress(docker.errors.APIError):
                    docker_client.images.remove(leftover.id, force=True)

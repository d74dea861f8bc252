"""A service process with its own configuration, for tests of operator settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from ..conftest import Keys, server_env
from ..support.server import ServerProcess

StartServer = Callable[..., ServerProcess]


@pytest.fixture
def start_server(
    keys: tuple[Keys, Path],
    tmp_path: Path,
    clean_docker: docker.DockerClient,
) -> Iterator[StartServer]:
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

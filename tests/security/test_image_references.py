"""The image allowlist matches parsed references, and an image id is never a way around it.

Against the real service and engine: a glob over the raw string used to admit a repository
that merely starts like an allowed one, and a reference shaped like an image id (or a short
name that is a prefix of one) ran whatever local image had that id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from testenv.engine import TEST_PREFIX

from ..api.helpers import assert_problem, body
from ..conftest import Api, Keys, StartServer

LOOKALIKE = f"{TEST_PREFIX}evil/backdoor:1"


def client(url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60)


def leftovers(engine: docker.DockerClient, name: str) -> list[str]:
    found = engine.api.containers(all=True, filters={"name": f"{TEST_PREFIX}alice.{name}"})
    return [c["Id"] for c in found]


@pytest.fixture
def lookalike(clean_docker: docker.DockerClient, busybox: str) -> Iterator[str]:
    """The busybox image tagged under a repository that only starts like an allowed one."""
    clean_docker.images.get(busybox).tag(LOOKALIKE)
    yield LOOKALIKE
    clean_docker.images.remove(LOOKALIKE, noprune=True)


def test_a_pattern_does_not_admit_a_repository_that_starts_like_it(
    start_server: StartServer,
    keys: tuple[Keys, Path],
    lookalike: str,
    busybox: str,
    clean_docker: docker.DockerClient,
) -> None:
    # "<prefix>*" is one path part of an official image: docker.io/library/<prefix>*.
    server = start_server(AGENT_API_ALLOWED_IMAGES=f'["{TEST_PREFIX}*", "aptest/busybox"]')
    with client(server.url, keys[0].alice) as alice:
        refused = alice.post("/v1/agents", json=body("aptest-lookalike", lookalike))
        assert "not allowed" in assert_problem(refused, 403, "policy_violation")["detail"]
        assert leftovers(clean_docker, "aptest-lookalike") == []
        # A bare repository admits any tag of it.
        assert alice.post("/v1/agents", json=body("aptest-allowed", busybox)).status_code == 201


def image_id(engine: docker.DockerClient, image: str) -> str:
    identifier: str = engine.images.get(image).id
    return identifier.removeprefix("sha256:")


@pytest.mark.parametrize("shape", ["short-id", "full-id", "sha256-id"])
def test_an_image_id_is_refused(
    api: Api, busybox: str, clean_docker: docker.DockerClient, shape: str
) -> None:
    hexid = image_id(clean_docker, busybox)
    ref = {"short-id": hexid[:12], "full-id": hexid, "sha256-id": f"sha256:{hexid}"}[shape]
    answer = api.alice.post("/v1/agents", json=body("aptest-byid", ref))
    problem = assert_problem(answer, 422, "validation_error")
    assert "image id" in str(problem["errors"])
    assert leftovers(clean_docker, "aptest-byid") == []


def test_a_name_the_engine_would_read_as_an_id_prefix_is_refused(
    api: Api, busybox: str, clean_docker: docker.DockerClient
) -> None:
    # Eight hex characters are a valid repository name; no image is called that, so the
    # engine falls back to the image whose id starts with them.
    prefix = image_id(clean_docker, busybox)[:8]
    answer = api.alice.post("/v1/agents", json=body("aptest-byprefix", prefix))
    assert "image id" in assert_problem(answer, 422, "invalid_spec")["detail"]
    assert leftovers(clean_docker, "aptest-byprefix") == []

"""The workspace volume made writable by the agent's user before the agent starts.

A named volume is created owned by root (or by whoever owns the mount point in the image), so
an agent running as a non-root user could not write to it. Before the agent's first start the
service writes, through the engine's archive API, one directory entry for the mount point
owned by that user: the engine applies its owner and mode to the volume's root. No process
runs for it and nothing is needed in the image. With a read-only root filesystem the engine
refuses archives into the container, so a helper container (created, never started, removed
at once) with the same volume does it instead.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import time
from typing import Any

import docker.errors
from docker import APIClient

__all__ = ["parse_user", "prepare_with_helper", "prepare_workspace"]

_MODE = 0o775


def parse_user(user: str) -> tuple[int, int]:
    """``uid:gid`` as two numbers."""
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


def _archive(path: str, user: str) -> bytes:
    uid, gid = parse_user(user)
    entry = tarfile.TarInfo(path.strip("/"))
    entry.type = tarfile.DIRTYPE
    entry.uid, entry.gid, entry.mode, entry.mtime = uid, gid, _MODE, int(time.time())
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.addfile(entry)
    return buffer.getvalue()


def prepare_workspace(api: APIClient, container_id: str, *, path: str, user: str) -> None:
    """Give the mount point (the volume's root) of a created container to ``user``."""
    api.put_archive(container_id, "/", _archive(path, user))


def prepare_with_helper(
    api: APIClient,
    *,
    image: str,
    volume: str,
    path: str,
    user: str,
    name: str,
    labels: dict[str, str],
) -> None:
    """The same through a container that is never started, for read-only root filesystems."""
    host_config: dict[str, Any] = {
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges"],
        "NetworkMode": "none",
        "Mounts": [{"Type": "volume", "Source": volume, "Target": path, "ReadOnly": False}],
    }
    # One left by a service killed mid-way would hold the name (and the volume).
    with contextlib.suppress(docker.errors.NotFound):
        api.remove_container(name, force=True)
    helper = api.create_container(
        image,
        name=name,
        command=["workspace-init"],
        labels=labels,
        host_config=host_config,
        network_disabled=True,
    )["Id"]
    try:
        prepare_workspace(api, helper, path=path, user=user)
    finally:
        with contextlib.suppress(docker.errors.APIError):
            api.remove_container(helper, force=True)

"""Test images built locally (there is no registry): busybox on scratch, about 2 MB."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import docker

__all__ = ["BUSYBOX_IMAGE", "build_busybox_image"]

BUSYBOX_IMAGE = "aptest/busybox:latest"

_DOCKERFILE = b"""FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
CMD ["sh"]
"""


def _busybox_binary() -> Path:
    for candidate in (Path("/bin/busybox"), Path("/usr/bin/busybox")):
        if candidate.exists():
            return candidate
    found = shutil.which("busybox")
    if found is None:
        raise RuntimeError("busybox is missing: install Debian's busybox-static")
    return Path(found)


def build_busybox_image(client: docker.DockerClient, tag: str = BUSYBOX_IMAGE) -> str:
    """Build ``tag`` unless the engine has it already; return the tag."""
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(_DOCKERFILE)
        tar.addfile(info, io.BytesIO(_DOCKERFILE))
        tar.add(str(_busybox_binary()), arcname="busybox")
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    return tag

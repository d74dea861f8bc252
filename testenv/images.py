"""Test images built locally (there is no registry): busybox on scratch, about 2 MB, and a
Debian Python base for building the service's own image."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import docker

__all__ = [
    "BUSYBOX_IMAGE",
    "PYTHON_BASE_IMAGE",
    "build_busybox_image",
    "build_python_base_image",
]

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


PYTHON_BASE_IMAGE = "aptest/python-base:bookworm"
_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
_PYTHON_BASE_DOCKERFILE = b"""FROM aptest/python-rootfs:bookworm
COPY ca-certificates.crt /etc/ssl/certs/test-host-ca.crt
ENV PIP_CERT=/etc/ssl/certs/test-host-ca.crt
"""


def build_python_base_image(client: docker.DockerClient, tag: str = PYTHON_BASE_IMAGE) -> str:
    """A Debian bookworm image with python3 and venv, made by debootstrap (about a minute).

    The machine's CA bundle goes into this test base image only, so that pip inside a
    build can verify TLS where the network re-signs it; the product's image never has it.
    """
    try:
        client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    if shutil.which("debootstrap") is None:
        raise RuntimeError("debootstrap is missing: install Debian's debootstrap")
    with tempfile.TemporaryDirectory(prefix="aptest-rootfs-") as work:
        root = Path(work) / "root"
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=python3,python3-venv,ca-certificates",
                "bookworm",
                str(root),
                "http://deb.debian.org/debian",
            ],
            check=True,
            capture_output=True,
        )
        archive = Path(work) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(archive), "."], check=True)
        client.api.import_image_from_file(
            str(archive), repository="aptest/python-rootfs", tag="bookworm"
        )
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(_PYTHON_BASE_DOCKERFILE)
        tar.addfile(info, io.BytesIO(_PYTHON_BASE_DOCKERFILE))
        tar.add(str(_CA_BUNDLE), arcname="ca-certificates.crt")
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True)
    return tag

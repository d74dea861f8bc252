"""Image references parsed the way Docker reads them, and allowlist patterns matched on parts.

A reference is ``[domain[:port]/]path[:tag][@digest]``. Without a domain it is on Docker Hub
(``docker.io``), and a one-part path there is an official image (``library/<name>``); without
a tag or digest it means ``:latest``. An allowlist pattern is written like a reference and
matched part by part, never as one string:

- ``python`` is ``docker.io/library/python``, any tag or digest; ``python:3.12`` only that
  tag (``python:3.*`` a tag glob); ``python@sha256:<hex>`` only that digest.
- ``*`` and ``?`` match within one path part: ``registry.example/team/*`` admits
  ``registry.example/team/bot:1`` but not ``registry.example/team/a/b`` nor
  ``registry.example/teamevil/bot``; a whole part ``**`` matches one or more parts.
- The domain is matched on its own (case-insensitive), so ``hive/*`` never admits
  ``hive.evil.example/x``. A pattern of just ``*`` admits everything.

References shaped like an image id (hex digits, ``sha256:<hex>``) are refused outright: the
engine resolves them to whatever local image has that id, whatever its name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

__all__ = ["ImageReference", "id_shaped", "matches", "parse_reference"]

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
# A full or short image id, bare or with its algorithm: never a name an operator allowed.
_ID_SHAPED = re.compile(r"^(?:sha256:[0-9a-fA-F]*|[0-9a-f]{12,64})$")


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A reference (or a pattern) in parts; ``tag`` and ``digest`` None when not given."""

    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def familiar(self) -> str:
        """The name as ``docker images`` shows it (``python``, ``hive/busybox``)."""
        if self.domain != DOCKER_HUB:
            return f"{self.domain}/{self.path}"
        return self.path.removeprefix("library/")


def id_shaped(reference: str) -> bool:
    return bool(_ID_SHAPED.match(reference))


def parse_reference(text: str) -> ImageReference:
    """Split a reference (or a pattern) into its parts; Docker Hub names are normalised."""
    name, _, digest = text.partition("@")
    tag: str | None = None
    colon, slash = name.rfind(":"), name.rfind("/")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        domain, path = first.lower(), rest
    else:
        domain, path = DOCKER_HUB, name
    if domain in _HUB_ALIASES:
        domain = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    return ImageReference(domain=domain, path=path, tag=tag, digest=digest or None)


def matches(reference: str, pattern: str) -> bool:
    """Whether ``pattern`` admits ``reference`` (see the module's docstring)."""
    if pattern.strip() == "*":
        return True
    ref, pat = parse_reference(reference), parse_reference(pattern)
    if not fnmatchcase(ref.domain, pat.domain):
        return False
    if not _path_regex(pat.path).fullmatch(ref.path):
        return False
    if pat.tag is not None:
        tag = ref.tag if ref.tag is not None or ref.digest is not None else "latest"
        if tag is None or not fnmatchcase(tag, pat.tag):
            return False
    return pat.digest is None or ref.digest == pat.digest


def _path_regex(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    for part in pattern.split("/"):
        if part == "**":
            parts.append(r"[^/]+(?:/[^/]+)*")
            continue
        parts.append(
            "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in part)
        )
    return re.compile("/".join(parts))

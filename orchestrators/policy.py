"""The operator's spawn policy: defaults and ceilings applied before any backend is called.

The hard security settings (capabilities dropped, no-new-privileges, no host mounts, ...)
are not here: every backend applies them unconditionally when it builds a container or pod.
This module decides only what may vary per deployment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from .errors import AgentQuotaExceeded, PolicyViolation
from .models import AgentSpec, Resources

__all__ = ["OwnerCeilings", "SpawnPolicy"]


@dataclass(frozen=True, slots=True)
class OwnerCeilings:
    """Totals that all of one owner's agents together may ask for; None: no ceiling.

    Counted over every agent the owner has, running or not (a stopped agent may be started
    again without a new check), from the resources recorded at spawn.
    """

    cpus: float | None = None
    memory_mb: int | None = None

    @property
    def active(self) -> bool:
        return self.cpus is not None or self.memory_mb is not None

    def check(self, owner: str, held: Iterable[Resources], asking: Resources) -> None:
        """``AgentQuotaExceeded`` naming the ceiling that ``asking`` would pass."""
        held = list(held)
        if self.cpus is not None:
            total = sum(r.cpus for r in held) + asking.cpus
            if total > self.cpus + 1e-9:
                raise AgentQuotaExceeded(
                    f"cpus: owner {owner!r} would have {total:g} CPUs in all, past the "
                    f"per-owner ceiling of {self.cpus:g}"
                )
        if self.memory_mb is not None:
            total_mb = sum(r.memory_mb for r in held) + asking.memory_mb
            if total_mb > self.memory_mb:
                raise AgentQuotaExceeded(
                    f"memory_mb: owner {owner!r} would have {total_mb} MiB in all, past the "
                    f"per-owner ceiling of {self.memory_mb}"
                )


@dataclass(frozen=True, slots=True)
class SpawnPolicy:
    """Defaults fill what a request leaves out; ceilings refuse what asks for more."""

    default_resources: Resources
    max_resources: Resources
    allowed_images: tuple[str, ...] = ("*",)

    def resolve_resources(self, spec: AgentSpec) -> Resources:
        """The limits the agent will run with, or ``PolicyViolation`` past a ceiling."""
        asked = spec.resources
        resolved = Resources(
            cpus=asked.cpus if asked.cpus is not None else self.default_resources.cpus,
            memory_mb=(
                asked.memory_mb if asked.memory_mb is not None else self.default_resources.memory_mb
            ),
            pids=asked.pids if asked.pids is not None else self.default_resources.pids,
        )
        for field in ("cpus", "memory_mb", "pids"):
            value, ceiling = getattr(resolved, field), getattr(self.max_resources, field)
            if value > ceiling:
                raise PolicyViolation(f"resources.{field}={value} exceeds the ceiling of {ceiling}")
        return resolved

    def check_image(self, image: str) -> None:
        if not any(fnmatchcase(image, pattern) for pattern in self.allowed_images):
            raise PolicyViolation(f"image {image!r} is not allowed by this server's policy")

"""The operator's spawn policy: defaults and ceilings applied before any backend is called.

The hard security settings (capabilities dropped, no-new-privileges, no host mounts, ...)
are not here: every backend applies them unconditionally when it builds a container or pod.
This module decides only what may vary per deployment.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .errors import AgentQuotaExceeded, InvalidSpec, PolicyViolation
from .images import matches
from .models import AgentSpec, Resources

__all__ = ["PLATFORM_NAMES", "OwnerCeilings", "SpawnPolicy"]

# The compose services' names: an agent answering to one of them would receive their traffic.
PLATFORM_NAMES = frozenset({"agent-api", "sol"})


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
    reserved_names: frozenset[str] = frozenset()
    max_env_bytes: int = 0  # env, secrets and labels of one spawn; 0: no limit

    def check_name(self, name: str) -> None:
        """The platform's own service names are never an agent's (its DNS name)."""
        if name in PLATFORM_NAMES or name in self.reserved_names:
            raise PolicyViolation(
                f"the name {name!r} is reserved for the platform's own services: choose another"
            )

    def check_size(self, spec: AgentSpec) -> None:
        """``InvalidSpec`` when env, secrets and labels together are past ``max_env_bytes``:
        the spec is kept in a label and every view of the agent carries a copy of it."""
        if not self.max_env_bytes:
            return
        pairs = [*spec.env.items(), *spec.labels.items()]
        pairs += [(name, value.get_secret_value()) for name, value in spec.secrets.items()]
        size = sum(len(name.encode()) + len(value.encode()) for name, value in pairs)
        if size > self.max_env_bytes:
            raise InvalidSpec(
                f"env, secrets and labels take {size} bytes; this server allows "
                f"{self.max_env_bytes} in one spawn"
            )

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
        """Patterns match the parsed reference (see ``orchestrators.images``)."""
        if not any(matches(image, pattern) for pattern in self.allowed_images):
            raise PolicyViolation(f"image {image!r} is not allowed by this server's policy")

"""What one running app holds: its settings, backend, keys, policy, metrics, cursor key, and
the live feed of the engine (read model, events)."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrators.base import Orchestrator
from orchestrators.policy import OwnerCeilings, SpawnPolicy

from .audit import AuditLog
from .auth import KeyRing
from .eventbus import EventBus
from .follows import FollowSlots
from .live import LiveFeed
from .metrics import Metrics
from .pagination import Cursors
from .ratelimit import RateLimiter
from .settings import Settings
from .slowcalls import SlowCalls

__all__ = ["AppState"]


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    orchestrator: Orchestrator
    keys: KeyRing
    policy: SpawnPolicy
    ceilings: OwnerCeilings
    metrics: Metrics
    audit: AuditLog
    limiter: RateLimiter
    cursors: Cursors
    follows: FollowSlots
    slow_calls: SlowCalls
    bus: EventBus
    live: LiveFeed
    event_streams: FollowSlots

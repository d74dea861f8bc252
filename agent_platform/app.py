"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from loguru import logger

from orchestrators import labels as L
from orchestrators.base import Orchestrator
from orchestrators.policy import OwnerCeilings, SpawnPolicy

from . import __version__
from .audit import AuditLog
from .auth import KeyRing
from .authgate import AuthGateMiddleware
from .backends import build_orchestrator
from .bodyguard import BodyGuardMiddleware
from .eventbus import EventBus
from .fastread import ModelReads
from .follows import FollowSlots
from .live import LiveFeed
from .metrics import Metrics
from .middleware import RequestContextMiddleware
from .pagination import Cursors, cursor_key
from .problems import install_problem_handlers
from .ratelimit import RateLimiter
from .routes import agents, changes, events, health, ui, wait, whoami
from .settings import Settings
from .slowcalls import SlowCalls
from .state import AppState
from .sweeper import run_sweeper

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None, orchestrator: Orchestrator | None = None
) -> FastAPI:
    """An app for ``settings`` (read from the environment if None).

    ``orchestrator`` is built from the settings unless one is passed in; the app closes the
    orchestrator it was given when it shuts down either way.
    """
    settings = settings or Settings()
    backend = orchestrator or build_orchestrator(settings)
    L.VIEW_CACHE.resize(settings.agent_cache_bytes)
    metrics = Metrics(view_cache=L.VIEW_CACHE)
    signing_key, signing_source = cursor_key(
        settings.cursor_secret.get_secret_value() if settings.cursor_secret else None,
        settings.key.get_secret_value() if settings.key else None,
    )
    if signing_source == "random":
        logger.warning(
            "cursors are signed with a key of this process only: set AGENT_API_CURSOR_SECRET "
            "so that a cursor from one replica works on another"
        )
    bus = EventBus(ring=settings.event_history, buffer=1024)
    state = AppState(
        settings=settings,
        orchestrator=backend,
        keys=KeyRing(settings.key, settings.owner, settings.keys_file),
        policy=SpawnPolicy(
            default_resources=settings.default_resources,
            max_resources=settings.max_resources,
            allowed_images=tuple(settings.allowed_images),
            reserved_names=frozenset(settings.reserved_names),
            max_env_bytes=settings.max_spawn_env_bytes,
        ),
        ceilings=OwnerCeilings(
            cpus=settings.max_cpus_per_owner, memory_mb=settings.max_memory_mb_per_owner
        ),
        metrics=metrics,
        audit=AuditLog(settings.audit_file),
        limiter=RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst),
        cursors=Cursors(signing_key),
        follows=FollowSlots(
            per_key=settings.max_follows_per_key,
            per_owner=settings.max_follows_per_owner,
            total=settings.max_log_streams,
            retry_after=settings.retry_after,
        ),
        slow_calls=SlowCalls(
            per_key=settings.max_slow_calls_per_key,
            per_owner=settings.max_slow_calls_per_owner,
            retry_after=settings.retry_after,
        ),
        bus=bus,
        live=LiveFeed(backend, bus=bus, metrics=metrics, reads=settings.live_reads),
        event_streams=FollowSlots(
            per_key=settings.max_event_streams_per_key,
            per_owner=settings.max_event_streams_per_owner,
            total=settings.max_event_streams,
            retry_after=settings.retry_after,
            noun="event streams",
            code="too_many_event_streams",
        ),
    )
    if settings.allowed_images == ["*"]:
        logger.warning("every image may be spawned: set AGENT_API_ALLOWED_IMAGES to restrict them")

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        logger.info("agent-api ready, orchestrator={}", backend.name)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, state.keys.reload)
        tasks = [asyncio.create_task(state.live.run())]
        if settings.sweep_interval > 0:
            tasks.append(asyncio.create_task(run_sweeper(backend, settings.sweep_interval)))
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
        await backend.close()

    app = FastAPI(
        title="agent-api",
        version=__version__,
        description=(
            "Manage agent containers through a key-authenticated API: the only holder of "
            "the engine's credentials builds every container itself, under a policy."
        ),
        lifespan=lifespan,
        # No OpenTelemetry: the service's own metrics are /metrics. Off, FastAPI does not ask
        # on every request whether a provider was configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # Each is a setting (README: what is served without a key); off, the path answers 404.
        openapi_url="/openapi.json" if settings.expose_openapi else None,
        docs_url="/docs" if settings.expose_docs else None,
        redoc_url="/redoc" if settings.expose_docs else None,
    )
    app.state.agent_api = state
    install_problem_handlers(app, retry_after=settings.retry_after)
    app.include_router(agents.router)
    app.include_router(changes.router)
    app.include_router(wait.router)
    app.include_router(events.router)
    app.include_router(whoami.router)
    app.include_router(health.router)
    app.include_router(ui.router)
    if settings.expose_metrics:
        app.include_router(health.metrics_router)
    # The middleware order. Starlette puts the last added outermost, so a request meets them
    # from the bottom of this list up: RequestContextMiddleware first, so that every answer,
    # a refusal of the ones below included, has a request id, an access line, metrics and
    # an audit record; then AuthGateMiddleware, so that a request without a valid key is
    # refused before a byte of its body is read; then BodyGuardMiddleware, so that size,
    # media type and JSON shape are checked before FastAPI parses the body; then FastAPI's
    # exception handling (the problem handlers above) and the router. ModelReads, between
    # the gate and the guard, answers a get of one agent from the read model without the
    # router when it can answer exactly as the route would (see ``fastread``).
    app.add_middleware(BodyGuardMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(ModelReads, state=state)
    app.add_middleware(AuthGateMiddleware, keys=state.keys)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, audit=state.audit)
    return app

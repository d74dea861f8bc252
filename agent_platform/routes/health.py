"""Liveness, readiness and metrics: no key needed (metrics only if exposed, see app)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from orchestrators.errors import OrchestratorUnavailable

from ..deps import State
from ..problems import ProblemError
from ..schemas import Health

__all__ = ["metrics_router", "router"]

router = APIRouter(tags=["health"])
metrics_router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    response_model=Health,
    response_model_exclude_none=True,  # {"status": "ok"}: liveness says nothing of the watch
    summary="The process answers",
)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="The orchestrator answers and the keys file is valid",
    responses={
        503: {
            "description": "orchestrator unreachable (problem+json, Retry-After, with the "
            "watch's state as `watch`), or the keys file is broken (keys_file_broken: its keys "
            "are refused until it is fixed)"
        }
    },
)
async def readyz(state: State) -> Health:
    if state.keys.broken:
        raise ProblemError(
            503,
            "keys_file_broken",
            "the keys file cannot be read or holds a bad entry: no key from it is accepted "
            "until it is fixed (the admin key still works)",
        )
    feed = state.live
    if not feed.supported:
        watch = "none"
    elif feed.live:
        watch = "live"
    else:
        watch = f"broken: {feed.broken}"
    try:
        await state.orchestrator.ping()
    except OrchestratorUnavailable as exc:
        # The problem says what the watch is too: whether reads still come from the model.
        raise ProblemError(
            503,
            exc.code,
            exc.detail,
            headers={"Retry-After": str(state.settings.retry_after)},
            extra={"watch": watch},
        ) from exc
    return Health(status="ready", watch=watch)


@metrics_router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
)
async def metrics(state: State) -> Response:
    state.metrics.keys_file_valid.set(0 if state.keys.broken else 1)
    state.metrics.agents.clear()
    for (status, owner), count in state.live.count().items():
        state.metrics.agents.labels(status.value, owner).set(count)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

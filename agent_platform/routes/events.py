"""``GET /v1/events``: the agents' lifecycle events as Server-Sent Events.

Owner-scoped like every read (an admin sees every owner, or ``owner=``); filters
``agent=`` (id or name) and ``type=`` (repeatable). Each event is one SSE message: ``id:``
(send it back as ``Last-Event-ID``, or ``since=``, to resume after it), ``event:`` (its
type) and ``data:`` (the ``AgentEvent`` as JSON). A resume replays this replica's history
after that id; when the history no longer reaches back that far, a ``reset`` event comes
first: list the agents again. A comment line every ``AGENT_API_EVENT_HEARTBEAT_SECONDS``
keeps proxies from closing an idle stream; the server never ends a stream on its own,
except for a client too slow to take its events (it resumes with ``Last-Event-ID``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from orchestrators.events import reset_event
from orchestrators.models import AgentEvent, EventType

from ..deps import Caller, OwnerScope, State
from ..eventbus import EventBus, Listener
from ..follows import bounded
from ..problems import ProblemError

__all__ = ["router"]

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
EVENT_ID = r"^[A-Za-z0-9._-]{1,200}$"

router = APIRouter(
    prefix="/v1/events",
    tags=["events"],
    responses={
        401: {"description": "missing or invalid key", **_PROBLEM},
        403: {"description": "owner= of another owner, without an admin key", **_PROBLEM},
        422: {"description": "invalid filter or event id", **_PROBLEM},
        429: {"description": "too many event streams open; retry after Retry-After", **_PROBLEM},
        503: {"description": "this backend cannot watch its engine", **_PROBLEM},
    },
)


@router.get(
    "",
    response_class=StreamingResponse,
    summary="Lifecycle events as Server-Sent Events; resumable with Last-Event-ID",
    responses={200: {"content": {"text/event-stream": {}}, "description": "the events"}},
)
async def stream_events(
    caller: Caller,
    scope: OwnerScope,
    state: State,
    agent: Annotated[
        str | None,
        Query(min_length=1, max_length=128, pattern=r"^[a-z0-9][-a-z0-9]*$"),
    ] = None,
    type: Annotated[
        list[EventType], Query(description="only these types (repeatable); reset always")
    ] = [],  # noqa: B006 - FastAPI copies query defaults
    since: Annotated[
        str | None, Query(pattern=EVENT_ID, description="resume after this event id")
    ] = None,
    last_event_id: Annotated[
        str | None, Header(pattern=EVENT_ID, description="resume after this event id")
    ] = None,
) -> StreamingResponse:
    feed = state.live
    if not feed.supported:
        raise ProblemError(
            503, "orchestrator_unavailable", f"no events: {feed.broken or 'no watch'}"
        )
    slot = state.event_streams.take(caller)
    bus = state.bus
    resume = last_event_id or since
    # No await from here to the stream: what is replayed and what is listened to meet
    # exactly.
    first: list[AgentEvent] = []
    if resume is not None:
        replay = bus.after(resume)
        first = [_reset(bus)] if replay is None else replay
    listener = bus.listen()
    wanted = _matcher(scope, agent, frozenset(type))
    events = _frames(bus, listener, first, wanted, heartbeat=state.settings.event_heartbeat_seconds)
    return StreamingResponse(
        bounded(events, seconds=None, slots=state.event_streams, slot=slot),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _reset(bus: EventBus) -> AgentEvent:
    return reset_event(
        bus.floor, datetime.now(UTC), "events before this are gone: list the agents again"
    )


def _matcher(
    owner: str | None, agent: str | None, types: frozenset[EventType]
) -> Callable[[AgentEvent], bool]:
    def wanted(event: AgentEvent) -> bool:
        if event.type is EventType.RESET:
            return True
        who = event.agent
        if who is None or (owner is not None and who.owner != owner):
            return False
        if agent is not None and agent not in (who.id, who.name):
            return False
        return not types or event.type in types

    return wanted


def frame(event: AgentEvent) -> bytes:
    """One SSE message."""
    data = event.model_dump_json()
    return f"id: {event.id}\nevent: {event.type.value}\ndata: {data}\n\n".encode()


async def _frames(
    bus: EventBus,
    listener: Listener,
    first: list[AgentEvent],
    wanted: Callable[[AgentEvent], bool],
    *,
    heartbeat: float,
) -> AsyncIterator[bytes]:
    try:
        yield b": connected\n\n"
        for event in first:
            if wanted(event):
                yield frame(event)
        while True:
            if listener.overflowed and listener.queue.empty():
                return  # too slow: the client resumes from Last-Event-ID
            try:
                event = await asyncio.wait_for(listener.queue.get(), heartbeat)
            except TimeoutError:
                yield b": heartbeat\n\n"
                continue
            if wanted(event):
                yield frame(event)
    finally:
        bus.leave(listener)

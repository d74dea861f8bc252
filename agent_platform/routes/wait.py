"""``GET /v1/agents/{agent}/wait``: the agent, as soon as it reaches an outcome.

``until`` names the outcome:

- ``running``: its status is running;
- ``exited``: its process ended on its own: exited or failed (``exit_code`` says how);
- ``stopped``: it is not running, for any reason: stopped, exited or failed.

The answer is the Agent (with ``exit_code``) once the condition holds, at once if it
already does. After ``timeout`` seconds without it: 408 ``wait_timeout``, whose detail
names the status the agent was last in; wait again. An agent deleted meanwhile is 404.
A wait is woken by the agent's events; while the watch is broken it reads the engine once
a second. Each wait holds one of the caller's event-stream slots (429 past the cap).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from orchestrators.models import Agent, AgentStatus

from ..deps import Caller, OwnerScope, State
from ..problems import ProblemError
from .agents import _ERRORS, _PROBLEM, AgentRef

__all__ = ["UNTIL", "router"]

UNTIL: dict[str, frozenset[AgentStatus]] = {
    "running": frozenset({AgentStatus.RUNNING}),
    "exited": frozenset({AgentStatus.EXITED, AgentStatus.FAILED}),
    "stopped": frozenset({AgentStatus.STOPPED, AgentStatus.EXITED, AgentStatus.FAILED}),
}
_POLL = 1.0  # seconds between engine reads while the watch is broken

router = APIRouter(prefix="/v1/agents", tags=["agents"], responses=_ERRORS)


@router.get(
    "/{agent}/wait",
    response_model=Agent,
    summary="The agent once it is running, has exited or is stopped (408 at the timeout)",
    responses={
        404: {
            "description": "no such agent for this key (or it was deleted meanwhile)",
            **_PROBLEM,
        },
        408: {
            "description": "wait_timeout: the condition did not hold in time; wait again",
            **_PROBLEM,
        },
        429: {"description": "too many waits and event streams open for this key", **_PROBLEM},
    },
)
async def wait_for_agent(
    agent: AgentRef,
    caller: Caller,
    scope: OwnerScope,
    state: State,
    until: Annotated[Literal["running", "exited", "stopped"], Query()] = "exited",
    timeout: Annotated[float, Query(gt=0, le=3600, description="seconds to wait at most")] = 30,
) -> Agent:
    wanted = UNTIL[until]
    slot = state.event_streams.take(caller)
    listener = state.bus.listen()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        current = await state.live.get(agent, owner=scope)
        while current.status not in wanted:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise ProblemError(
                    408,
                    "wait_timeout",
                    f"the agent is still {current.status.value} after {timeout:g} s "
                    f"(waiting until {until}); wait again",
                )
            if listener.overflowed:  # too many others' events: listen afresh
                state.bus.leave(listener)
                listener = state.bus.listen()
            step = remaining if state.live.live else min(remaining, _POLL)
            try:
                async with asyncio.timeout(step):
                    while True:
                        event = await listener.queue.get()
                        if event.agent is not None and event.agent.id == current.id:
                            break
            except TimeoutError:
                pass
            current = await state.live.get(current.id, owner=scope)
        return current
    finally:
        state.bus.leave(listener)
        state.event_streams.give_back(slot)

"""Docker's ``/events`` stream, filtered to this instance's agents, as ``Observation`` values.

One engine stream per watch, read by a thread of its own (it blocks for as long as the
watch lasts, so it never takes a thread of the engine pool); each container event is
followed by one inspect of the container, so an observation carries the agent's view at
that moment. The resume token is the event's ``timeNano``.

An OOM kill: the engine's ``oom`` event before the ``die`` (the inspect does not always
say so).

Who stopped an agent. Docker keeps no such fact, but its events tell a stop through the
API (``kill``, ``die``, then ``stop``) from a kill behind the service's back (``kill``,
``die``, and no ``stop``). So a ``die`` that reads as a stop (code 137 or 143) waits for the
next event of its container (at most ``_STOP_LOOKAHEAD`` seconds):

- this process noted that it is stopping the agent (``StopIntents``, in memory): by that
  (``call`` or ``ttl``), at once;
- its deadline has passed: ``ttl`` (another replica's sweep);
- a ``stop`` event follows: ``call`` (another replica; only the service holds the socket);
- nothing follows: a kill outside the API, reported as ``failed`` (``killed``) with its code.

A change that replaces an agent's container (``replace``) destroys the old container while
the new one carries the agent on: a ``destroy`` is an agent's deletion only when no other
container of the agent is left (``survivor``); else it is that container's observation.

History: the engine keeps its last 256 events (of every container, ours or not). A resume
from a token whose history may be longer than that raises ``WatchExpired``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from docker import APIClient

from .. import labels as L
from ..errors import OrchestratorUnavailable, WatchExpired
from ..models import Agent, AgentStatus, FailureReason, Health, StoppedBy
from ..watch import Observation
from .api import Container, label_filter, release
from .status import container_status

__all__ = ["StopIntents", "engine_history_lost", "token_now", "watch_engine"]

ENGINE_HISTORY = 256  # events the engine keeps (daemon/events: eventsLimit)
_STOP_LOOKAHEAD = 2.0  # seconds a stop-like exit waits for the engine's ``stop`` event
_STOP_CODES = frozenset({137, 143})
# Actions that say nothing about the agent's state.
# A ``kill`` is followed by the ``die`` that tells the outcome.
_IGNORED = ("exec_", "attach", "resize", "top", "export", "commit", "copy", "archive-path", "kill")
_HEALTH = "health_status: "
_END = object()

Inspector = Callable[[str], Awaitable[tuple[Agent, Container] | None]]


class StopIntents:
    """The stops this process is making: agent id -> by whom, until a deadline passes."""

    def __init__(self) -> None:
        self._intents: dict[str, tuple[StoppedBy, float]] = {}
        self._lock = threading.Lock()

    def note(self, agent_id: str, by: StoppedBy, *, seconds: float) -> None:
        """``agent_id`` is being stopped ``by`` a call or the TTL, for up to ``seconds``."""
        now = time.monotonic()
        with self._lock:
            if len(self._intents) > 10_000:
                self._intents = {k: v for k, v in self._intents.items() if v[1] > now}
            self._intents[agent_id] = (by, now + seconds)

    def take(self, agent_id: str) -> StoppedBy | None:
        with self._lock:
            found = self._intents.pop(agent_id, None)
        if found is None or found[1] < time.monotonic():
            return None
        return found[0]


def token_now(margin: float = 2.0) -> str:
    """A token a little before now: a watch from it misses nothing that happens after
    (a change seen twice derives no second event)."""
    return str(time.time_ns() - int(margin * 1e9))


def _seconds(token: str) -> str:
    """A ``timeNano`` token as the engine's ``since`` (seconds.nanoseconds)."""
    nanos = int(token)
    return f"{nanos // 1_000_000_000}.{nanos % 1_000_000_000:09d}"


def engine_history_lost(api: APIClient, token: str) -> bool:
    """True when the engine may no longer hold every event since ``token``: its buffer of
    ``ENGINE_HISTORY`` events is full of events after it."""
    stream = api.events(since=_seconds(token), until=_seconds(token_now(0)), decode=True)
    try:
        count = sum(1 for _ in stream)
    finally:
        release(stream)
    return count >= ENGINE_HISTORY


@dataclass(slots=True)
class _Death:
    """A ``die`` waiting to learn whether a ``stop`` event follows."""

    observation: Observation
    until: float


async def watch_engine(
    client: Callable[[], APIClient],
    *,
    instance: str,
    since: str,
    inspect: Inspector,
    run: Callable[..., Awaitable[Any]],
    intents: StopIntents,
    survivor: Inspector | None = None,
) -> AsyncIterator[Observation]:
    """The observations of this instance's agents from ``since`` on (see the module)."""
    try:
        int(since)
    except ValueError:
        raise WatchExpired("not a token of this engine's events") from None
    if await run(engine_history_lost, client(), since):
        raise WatchExpired("the engine no longer holds every event since that token")
    terms = {L.MANAGED_BY: L.MANAGED_BY_VALUE, L.INSTANCE: instance}
    filters = {"type": ["container"], "label": label_filter(terms)}
    stream = await run(lambda: client().events(since=_seconds(since), filters=filters, decode=True))
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()

    def put(item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def pump() -> None:
        try:
            for event in stream:
                put(event)
        except Exception as exc:
            put(exc)
        else:
            put(_END)

    threading.Thread(target=pump, name="docker-events", daemon=True).start()
    deaths: dict[str, _Death] = {}
    ooms: set[str] = set()  # containers the engine reported out of memory, until they die
    floor = int(since)
    try:
        while True:
            timeout = None
            if deaths:
                timeout = max(0.0, min(d.until for d in deaths.values()) - loop.time())
            try:
                item = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                for cid in [c for c, d in deaths.items() if d.until <= loop.time()]:
                    yield _killed(deaths.pop(cid).observation)
                continue
            if item is _END or isinstance(item, Exception):
                for pending in deaths.values():
                    yield _killed(pending.observation)
                raise OrchestratorUnavailable("the Docker engine's event stream ended")
            event: Mapping[str, Any] = item  # type: ignore[assignment]
            nanos = int(event.get("timeNano") or 0)
            if nanos <= floor:
                continue  # seen already, before a resume
            actor = event.get("Actor") or {}
            cid = str(actor.get("ID") or event.get("id") or "")
            attrs: Mapping[str, str] = actor.get("Attributes") or {}
            action = str(event.get("Action") or event.get("status") or "")
            if not L.is_managed(attrs) or action.startswith(_IGNORED):
                continue
            if action == "oom":  # its ``die`` follows; the inspect does not always say so
                ooms.add(cid)
                continue
            at = datetime.fromtimestamp(nanos / 1e9, UTC)
            death = deaths.pop(cid) if cid in deaths else None
            if action == "stop":
                if death is not None:  # else the ``die`` was told already
                    yield _stopped(death.observation, StoppedBy.CALL)
                continue
            if death is not None:
                yield _killed(death.observation)
            if action == "destroy":
                left = await survivor(attrs[L.ID]) if survivor is not None else None
                if left is not None:  # replaced by a change: the agent goes on
                    yield Observation.of(left[0], at=at, token=str(nanos))
                    continue
                yield Observation(
                    agent_id=attrs[L.ID],
                    name=attrs.get(L.NAME, ""),
                    owner=attrs.get(L.OWNER, ""),
                    status=None,
                    at=at,
                    token=str(nanos),
                )
                continue
            found = await inspect(cid)
            if found is None:
                continue  # removed meanwhile: its destroy event follows
            agent, container = found
            if action == "die":
                if cid in ooms:
                    ooms.discard(cid)
                    container = dataclasses.replace(container, oom_killed=True)
                observation = _exit(agent, container, attrs, at=at, token=str(nanos))
                by = intents.take(agent.id)
                if observation.status is not AgentStatus.STOPPED:
                    yield observation
                elif by is not None:
                    yield _stopped(observation, by)
                elif agent.expires_at is not None and agent.expires_at <= at:
                    yield _stopped(observation, StoppedBy.TTL)
                else:
                    deaths[cid] = _Death(observation, loop.time() + _STOP_LOOKAHEAD)
                continue
            yield Observation.of(
                agent,
                at=at,
                token=str(nanos),
                restarts=container.restarts,
                health=_health(action, container.health),
            )
    finally:
        release(stream)  # closing a response does not block; it ends the pump thread


def _exit(
    agent: Agent, container: Container, attrs: Mapping[str, str], *, at: datetime, token: str
) -> Observation:
    """What a ``die`` event says: the exit itself, whatever the container does next."""
    code = int(attrs.get("exitCode") or 0)
    status, detail = container_status(
        "exited", code, oom_killed=code != 0 and container.oom_killed, error=container.error
    )
    reason = None
    if status is AgentStatus.FAILED:
        if container.oom_killed:
            reason = FailureReason.OOM_KILLED
        elif container.error:
            reason = FailureReason.ERROR
        else:
            reason = FailureReason.EXIT_CODE
    return Observation(
        agent_id=agent.id,
        name=agent.name,
        owner=agent.owner,
        status=status,
        at=at,
        token=token,
        agent=agent,
        detail=detail,
        exit_code=code,
        reason=reason,
    )


def _stopped(observation: Observation, by: StoppedBy) -> Observation:
    return dataclasses.replace(observation, stopped_by=by)


def _killed(observation: Observation) -> Observation:
    """A stop-like exit with no stop through the API: killed behind the service's back."""
    return dataclasses.replace(
        observation,
        status=AgentStatus.FAILED,
        reason=FailureReason.KILLED,
        detail=f"killed outside the API (exit code {observation.exit_code})",
    )


def _health(action: str, inspected: str) -> Health | None:
    value = action[len(_HEALTH) :].strip() if action.startswith(_HEALTH) else inspected
    if value in ("starting", "healthy", "unhealthy"):
        return value  # type: ignore[return-value]
    return None

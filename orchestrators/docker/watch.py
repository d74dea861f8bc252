"""Docker's ``/events`` stream, filtered to this instance's agents, as ``Observation`` values.

One engine stream per watch, read by a thread of its own (it blocks for as long as the
watch lasts, so it never takes a thread of the engine pool); each container event is
followed by one inspect of the container, so an observation carries the agent's view at
that moment. The resume token is the event's ``timeNano``.

Who stopped an agent, and whether it was stopped at all. Docker keeps no such fact, but its
events tell a stop through the API from a kill behind the service's back: a stop whose
grace ran out ends with the engine's ``stop`` event (``kill``, ``die``, ``stop``), a
``docker kill`` does not (``kill``, ``die``). The rule is ``status.container_status``'s,
shared with the view: an exit by SIGTERM (143) is a stop; by SIGKILL (137), a stop only
when one was asked. So a ``die`` with code 137 waits for the next event of its container
(at most ``_STOP_LOOKAHEAD`` seconds), unless the stop is known at once:

- this process noted that it is stopping the agent (``StopIntents``, in memory): by that
  (``call`` or ``ttl``);
- its deadline has passed: ``ttl`` (another replica's sweep);
- a ``stop`` event follows: ``call`` (another replica; only the service holds the socket);
- nothing follows: a kill outside the API, ``failed`` (``killed``) with its code.

A ``die`` with code 143 is a stop by this process's intent, the TTL, or else a call.
The observation's ``agent`` always carries the status the observation says, so the read
model and the events agree.

A change that replaces an agent's container (``replace``) destroys the old container while
the new one carries the agent on: a ``destroy`` is an agent's deletion only when no other
container of the agent is left (``survivor``); else it is that container's observation.

Liveness: a frozen engine keeps the stream's connection open and sends nothing, which looks
like a quiet engine. The streams are opened and read on threads of their own and read
through a ``Heartbeat``: after ``heartbeat`` seconds of silence the engine is pinged
(``/_ping``), and a ping that fails or takes as long ends the watch with
``OrchestratorUnavailable``. The past events a watch and a list read (the history check,
the stops on record) are finite answers, read under the engine timeout.

History: the engine keeps its last 256 events (of every container, ours or not). A resume
from a token whose history may be longer than that raises ``WatchExpired``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import docker.errors
import requests
from docker import APIClient

from .. import labels as L
from ..errors import OrchestratorUnavailable, WatchExpired
from ..models import Agent, AgentStatus, Health, StoppedBy, is_agent_id
from ..watch import Heartbeat, Observation
from .api import Container, label_filter, ping_within, release
from .status import SIGKILL_EXIT, container_status, failure_reason

__all__ = ["StopIntents", "engine_history_lost", "stops_on_record", "token_now", "watch_engine"]

ENGINE_HISTORY = 256  # events the engine keeps (daemon/events: eventsLimit)
_STOP_LOOKAHEAD = 2.0  # seconds a stop-like exit waits for the engine's ``stop`` event
# Actions that say nothing about the agent's state.
# A ``kill`` or an ``oom`` is followed by the ``die`` that tells the outcome.
_IGNORED = (
    "exec_",
    "attach",
    "resize",
    "top",
    "export",
    "commit",
    "copy",
    "archive-path",
    "kill",
    "oom",
)
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


def _past_events(
    api: APIClient, since: str, filters: Mapping[str, list[str]] | None = None
) -> list[dict[str, Any]]:
    """The engine's events from ``since`` (seconds) until now: a finite answer, read under
    the client's timeout (the SDK's ``events`` has none, and a frozen engine would hold the
    call, and its thread, until it thaws)."""
    params = {"since": since, "until": _seconds(token_now(0))}
    if filters:
        params["filters"] = json.dumps(filters)
    response = api.get(
        f"{api.base_url}/v{api.api_version}/events", params=params, timeout=api.timeout
    )
    try:
        response.raise_for_status()
    except requests.exceptions.HTTPError as exc:
        docker.errors.create_api_error_from_http_exception(exc)  # raises APIError
    return [json.loads(line) for line in response.text.splitlines() if line.strip()]


def engine_history_lost(api: APIClient, token: str) -> bool:
    """True when the engine may no longer hold every event since ``token``: its buffer of
    ``ENGINE_HISTORY`` events is full of events after it."""
    return len(_past_events(api, _seconds(token))) >= ENGINE_HISTORY


def stops_on_record(api: APIClient, instance: str) -> frozenset[str]:
    """The containers whose last exit the engine's history shows as a stop: a ``stop``
    event since their last ``start`` (one call over the engine's last ``ENGINE_HISTORY``
    events). The engine may log a stop's ``stop`` just before its ``die``, so the order of
    the two says nothing. What fell out of that history, or an engine restart erased, is
    not there."""
    terms = {L.MANAGED_BY: L.MANAGED_BY_VALUE, L.INSTANCE: instance}
    filters = {
        "type": ["container"],
        "event": ["start", "stop"],
        "label": label_filter(terms),
    }
    stopped: dict[str, bool] = {}
    for event in _past_events(api, "1", filters):
        cid = str((event.get("Actor") or {}).get("ID") or event.get("id") or "")
        stopped[cid] = str(event.get("Action") or event.get("status") or "") == "stop"
    return frozenset(cid for cid, was_stopped in stopped.items() if was_stopped)


@dataclass(slots=True)
class _Death:
    """A ``die`` by SIGKILL waiting to learn whether a ``stop`` event follows."""

    killed: Observation  # what it is if nothing follows
    stopped: Observation  # what it is if a ``stop`` follows
    until: float


async def watch_engine(
    client: Callable[[], APIClient],
    *,
    instance: str,
    since: str,
    inspect: Inspector,
    run: Callable[..., Awaitable[Any]],
    intents: StopIntents,
    heartbeat: float,
    survivor: Inspector | None = None,
    lease_prefix: str | None = None,
) -> AsyncIterator[Observation]:
    """The observations of this instance's agents from ``since`` on (see the module)."""
    try:
        int(since)
    except ValueError:
        raise WatchExpired("not a token of this engine's events") from None
    if await run(engine_history_lost, client(), since):
        raise WatchExpired("the engine no longer holds every event since that token")
    terms = {L.MANAGED_BY: L.MANAGED_BY_VALUE, L.INSTANCE: instance}
    wanted = [{"type": ["container"], "label": label_filter(terms)}]
    if lease_prefix is not None and survivor is not None:
        # A TTL renewal changes no container, only writes a lease volume (whose events
        # carry no labels: matched by name).
        wanted.append({"type": ["volume"], "event": ["create"]})
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    streams: list[Any] = []
    lock = threading.Lock()
    ended = False

    def put(item: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def pump(filters: dict[str, list[str]]) -> None:
        # Opened here, not on the engine pool: on a frozen engine the opening hangs too
        # (the SDK gives the stream no timeout), and the heartbeat ends the watch meanwhile.
        try:
            stream = client().events(since=_seconds(since), filters=filters, decode=True)
        except Exception as exc:
            put(exc)
            return
        with lock:
            late = ended
            if not late:
                streams.append(stream)
        if late:  # the watch ended while the engine was answering: nobody reads it
            release(stream)
            return
        try:
            for event in stream:
                put(event)
        except Exception as exc:
            put(exc)
        else:
            put(_END)

    for filters in wanted:
        threading.Thread(target=pump, args=(filters,), name="docker-events", daemon=True).start()
    alive = Heartbeat(
        lambda timeout: ping_within(client(), timeout), every=heartbeat, engine="the Docker engine"
    )
    deaths: dict[str, _Death] = {}
    floor = int(since)
    try:
        while True:
            timeout = None
            if deaths:
                timeout = max(0.0, min(d.until for d in deaths.values()) - loop.time())
            try:
                item = await alive.next(queue, timeout)
            except TimeoutError:
                for cid in [c for c, d in deaths.items() if d.until <= loop.time()]:
                    yield deaths.pop(cid).killed
                continue
            if item is _END or isinstance(item, Exception):
                for pending in deaths.values():
                    yield pending.killed
                raise OrchestratorUnavailable("the Docker engine's event stream ended")
            event: Mapping[str, Any] = item  # type: ignore[assignment]
            nanos = int(event.get("timeNano") or 0)
            if nanos <= floor:
                continue  # seen already, before a resume
            actor = event.get("Actor") or {}
            cid = str(actor.get("ID") or event.get("id") or "")
            attrs: Mapping[str, str] = actor.get("Attributes") or {}
            action = str(event.get("Action") or event.get("status") or "")
            if event.get("Type") == "volume":
                renewed = _leased(cid, lease_prefix)
                left = await survivor(renewed) if renewed and survivor is not None else None
                if left is not None:
                    yield Observation.of(
                        left[0], at=datetime.fromtimestamp(nanos / 1e9, UTC), token=str(nanos)
                    )
                continue
            if not L.is_managed(attrs) or action.startswith(_IGNORED):
                continue
            at = datetime.fromtimestamp(nanos / 1e9, UTC)
            death = deaths.pop(cid) if cid in deaths else None
            if action == "stop":
                if death is not None:  # else the ``die`` was told already
                    yield death.stopped
                continue
            if death is not None:
                yield death.killed
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
                code = int(attrs.get("exitCode") or 0)
                by = intents.take(agent.id)
                if by is None and agent.expires_at is not None and agent.expires_at <= at:
                    by = StoppedBy.TTL
                if code != SIGKILL_EXIT or by is not None:
                    yield _exit(agent, container, code, at=at, token=str(nanos), by=by)
                else:
                    deaths[cid] = _Death(
                        _exit(agent, container, code, at=at, token=str(nanos), by=None),
                        _exit(agent, container, code, at=at, token=str(nanos), by=StoppedBy.CALL),
                        loop.time() + _STOP_LOOKAHEAD,
                    )
                continue
            failed = agent.status is AgentStatus.FAILED and container.state == "exited"
            yield Observation.of(
                agent,
                at=at,
                token=str(nanos),
                restarts=container.restarts,
                health=_health(action, container.health),
                reason=failure_reason(
                    container.exit_code, oom_killed=container.oom_killed, error=container.error
                )
                if failed
                else None,
            )
    finally:
        alive.close()
        with lock:
            ended = True
            opened = list(streams)
        for each in opened:
            release(each)  # closing a response does not block; it ends the pump thread


def _exit(
    agent: Agent,
    container: Container,
    code: int,
    *,
    at: datetime,
    token: str,
    by: StoppedBy | None,
) -> Observation:
    """What a ``die`` event says: the exit itself, whatever the container does next; ``by``
    is who asked for the stop, None when nobody did."""
    oom = code != 0 and container.oom_killed
    status, detail = container_status(
        "exited", code, oom_killed=oom, error=container.error, stop_asked=by is not None
    )
    failed = status is AgentStatus.FAILED
    return Observation(
        agent_id=agent.id,
        name=agent.name,
        owner=agent.owner,
        status=status,
        at=at,
        token=token,
        agent=agent.model_copy(
            update={"status": status, "detail": detail, "exit_code": code, "started_at": None}
        ),
        detail=detail,
        exit_code=code,
        reason=failure_reason(code, oom_killed=oom, error=container.error) if failed else None,
        stopped_by=(by or StoppedBy.CALL) if status is AgentStatus.STOPPED else None,
    )


def _leased(volume: str, prefix: str | None) -> str | None:
    """The agent whose TTL lease ``volume`` is (``<prefix><agent id>-<micros>``), else None."""
    if prefix is None or not volume.startswith(prefix):
        return None
    agent_id, _, micros = volume[len(prefix) :].rpartition("-")
    return agent_id if is_agent_id(agent_id) and micros.isdigit() else None


def _health(action: str, inspected: str) -> Health | None:
    value = action[len(_HEALTH) :].strip() if action.startswith(_HEALTH) else inspected
    if value in ("starting", "healthy", "unhealthy"):
        return value  # type: ignore[return-value]
    return None

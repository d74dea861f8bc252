"""Every API call as data (method, path, parameters, retry safety) and its answer parsed.

The sync and async clients share these, so both speak the contract the same way and
differ only in how they send. Which calls are ``repeatable`` is decided here, once:
the reads, delete, start and stop, and spawn when it carries an Idempotency-Key (health
and readiness report the moment and are not retried).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pydantic

from .config import SPAWN_EXTRA_TIMEOUT, STOP_GRACE_DEFAULT
from .errors import APIStatusError, ValidationError, error_from_validation
from .models import (
    AgentChange,
    AgentStatus,
    NetworkChoice,
    ResourceRequest,
    RestartPolicy,
    SpawnRequest,
    WaitUntil,
)

__all__ = [
    "Call",
    "change_request",
    "delete_call",
    "events_call",
    "get_call",
    "health_call",
    "list_call",
    "logs_call",
    "parse",
    "ready_call",
    "renew_call",
    "restart_call",
    "revisions_call",
    "rollback_call",
    "spawn_call",
    "spawn_request",
    "start_call",
    "stats_call",
    "stop_call",
    "wait_call",
    "update_call",
    "whoami_call",
]

_ModelT = TypeVar("_ModelT", bound=pydantic.BaseModel)
Params = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Call:
    """One request to make.

    repeatable: safe to send again (retried on a failed connection and 429/502/503/504).
    gone_is_done: a 404 on a retry means an earlier attempt already did it (delete).
    extra_timeout: seconds added to the read timeout (a stop's grace, an image pull).
    stream: the body is read as it arrives (logs).
    wait_forever: no read timeout (a followed log can stay quiet for long).
    """

    method: str
    path: str
    params: Params = ()
    body: dict[str, Any] | None = None
    headers: tuple[tuple[str, str], ...] = ()
    repeatable: bool = False
    gone_is_done: bool = False
    extra_timeout: float = 0.0
    stream: bool = False
    wait_forever: bool = False


def _agent_path(agent: str, suffix: str = "") -> str:
    if not agent or not agent.strip():
        raise ValidationError("an agent name or id is required", code="invalid_request")
    return f"/v1/agents/{quote(agent.strip(), safe='')}{suffix}"


def _owner(owner: str | None) -> Params:
    return (("owner", owner),) if owner else ()


def spawn_request(
    name: str,
    image: str,
    *,
    command: list[str] | None,
    env: Mapping[str, str] | None,
    secrets: Mapping[str, str] | None,
    labels: Mapping[str, str] | None,
    resources: ResourceRequest | Mapping[str, Any] | None,
    restart_policy: RestartPolicy | None,
    workspace: bool | None,
    network: NetworkChoice | None,
    ttl_seconds: int | None,
) -> SpawnRequest:
    """The spawn body, checked for its shape; a wrong one is refused before it is sent."""
    try:
        return SpawnRequest.model_validate(
            {
                "name": name,
                "image": image,
                "command": command,
                "env": env or {},
                "secrets": secrets or {},
                "labels": labels or {},
                "resources": resources,
                "restart_policy": restart_policy,
                "workspace": workspace,
                "network": network,
                "ttl_seconds": ttl_seconds,
            }
        )
    except pydantic.ValidationError as exc:
        raise error_from_validation(exc, "spawn request") from exc


def spawn_call(request: SpawnRequest, *, idempotency_key: str | None) -> Call:
    headers = (("Idempotency-Key", idempotency_key),) if idempotency_key else ()
    return Call(
        "POST",
        "/v1/agents",
        body=request.to_body(),
        headers=headers,
        repeatable=idempotency_key is not None,
        extra_timeout=SPAWN_EXTRA_TIMEOUT,
    )


def list_call(
    *,
    status: AgentStatus | str | None = None,
    labels: Mapping[str, str] | None = None,
    owner: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> Call:
    params: list[tuple[str, str]] = []
    if status is not None:
        params.append(("status", str(status)))
    params += [("label", f"{key}={value}") for key, value in (labels or {}).items()]
    params += _owner(owner)
    if limit is not None:
        params.append(("limit", str(limit)))
    if cursor:
        params.append(("cursor", cursor))
    return Call("GET", "/v1/agents", params=tuple(params), repeatable=True)


def get_call(agent: str, *, owner: str | None = None) -> Call:
    return Call("GET", _agent_path(agent), params=_owner(owner), repeatable=True)


def start_call(agent: str, *, owner: str | None = None) -> Call:
    return Call("POST", _agent_path(agent, "/start"), params=_owner(owner), repeatable=True)


def _grace(timeout: int | None) -> Params:
    return (("timeout", str(timeout)),) if timeout is not None else ()


def stop_call(agent: str, *, timeout: int | None = None, owner: str | None = None) -> Call:
    return Call(
        "POST",
        _agent_path(agent, "/stop"),
        params=_grace(timeout) + _owner(owner),
        repeatable=True,
        extra_timeout=float(STOP_GRACE_DEFAULT if timeout is None else timeout),
    )


def restart_call(agent: str, *, timeout: int | None = None, owner: str | None = None) -> Call:
    return Call(
        "POST",
        _agent_path(agent, "/restart"),
        params=_grace(timeout) + _owner(owner),
        extra_timeout=float(STOP_GRACE_DEFAULT if timeout is None else timeout),
    )


def renew_call(agent: str, *, ttl_seconds: int, owner: str | None = None) -> Call:
    """A new deadline, ``ttl_seconds`` from now: sending it again only moves it a little."""
    return Call(
        "POST",
        _agent_path(agent, "/ttl"),
        params=_owner(owner),
        body={"ttl_seconds": ttl_seconds},
        repeatable=True,
    )


def delete_call(agent: str, *, owner: str | None = None) -> Call:
    return Call(
        "DELETE", _agent_path(agent), params=_owner(owner), repeatable=True, gone_is_done=True
    )


def _since(since: str | datetime) -> str:
    if isinstance(since, datetime):
        aware = since if since.tzinfo else since.replace(tzinfo=UTC)
        return aware.isoformat()
    return since


def logs_call(
    agent: str,
    *,
    tail: int | None = None,
    since: str | datetime | None = None,
    timestamps: bool = False,
    follow: bool = False,
    owner: str | None = None,
) -> Call:
    params: list[tuple[str, str]] = []
    if tail is not None:
        params.append(("tail", str(tail)))
    if since is not None:
        params.append(("since", _since(since)))
    if timestamps:
        params.append(("timestamps", "true"))
    if follow:
        params.append(("follow", "true"))
    params += _owner(owner)
    return Call(
        "GET",
        _agent_path(agent, "/logs"),
        params=tuple(params),
        repeatable=True,
        stream=True,
        wait_forever=follow,
    )


def wait_call(
    agent: str, *, until: WaitUntil = "exited", timeout: float = 30, owner: str | None = None
) -> Call:
    """The agent once ``until`` holds; the server answers 408 after ``timeout`` seconds."""
    return Call(
        "GET",
        _agent_path(agent, "/wait"),
        params=(("until", until), ("timeout", f"{timeout:g}"), *_owner(owner)),
        repeatable=True,
        extra_timeout=timeout,
    )


def events_call(
    *,
    agent: str | None = None,
    types: Sequence[str] = (),
    owner: str | None = None,
    last_event_id: str | None = None,
) -> Call:
    """The event stream; with ``last_event_id`` it resumes after that event."""
    params: list[tuple[str, str]] = [("type", str(kind)) for kind in types]
    if agent:
        params.append(("agent", agent))
    params += _owner(owner)
    headers = (("Last-Event-ID", last_event_id),) if last_event_id else ()
    return Call(
        "GET",
        "/v1/events",
        params=tuple(params),
        headers=headers,
        repeatable=True,
        stream=True,
        wait_forever=True,
    )


def change_request(
    *,
    image: str | None = None,
    command: list[str] | None = None,
    env: Mapping[str, str | None] | None = None,
    secrets: Mapping[str, str | None] | None = None,
    labels: Mapping[str, str | None] | None = None,
    resources: ResourceRequest | Mapping[str, Any] | None = None,
    restart_policy: RestartPolicy | None = None,
    ttl_seconds: int | None = None,
) -> AgentChange:
    """The change body, checked for its shape; a wrong one is refused before it is sent."""
    given = {
        "image": image,
        "command": command,
        "env": env,
        "secrets": secrets,
        "labels": labels,
        "resources": resources,
        "restart_policy": restart_policy,
        "ttl_seconds": ttl_seconds,
    }
    try:
        return AgentChange.model_validate({k: v for k, v in given.items() if v is not None})
    except pydantic.ValidationError as exc:
        raise error_from_validation(exc, "change request") from exc


def _if_match(revision: int | str | None) -> tuple[tuple[str, str], ...]:
    if revision is None:
        return ()
    text = str(revision)
    return (("If-Match", text if text.startswith(('"', "W/")) else f'"{text}"'),)


def update_call(
    agent: str,
    change: AgentChange,
    *,
    if_match: int | str | None = None,
    owner: str | None = None,
) -> Call:
    """Not repeated: a change whose answer was lost may have been made (send ``if_match``
    and read the agent again instead)."""
    return Call(
        "PATCH",
        _agent_path(agent),
        params=_owner(owner),
        body=change.to_body(),
        headers=_if_match(if_match),
        extra_timeout=SPAWN_EXTRA_TIMEOUT + STOP_GRACE_DEFAULT,
    )


def rollback_call(
    agent: str,
    *,
    revision: int | None = None,
    if_match: int | str | None = None,
    owner: str | None = None,
) -> Call:
    return Call(
        "POST",
        _agent_path(agent, "/rollback"),
        params=_owner(owner),
        body={"revision": revision} if revision is not None else {},
        headers=_if_match(if_match),
        extra_timeout=SPAWN_EXTRA_TIMEOUT + STOP_GRACE_DEFAULT,
    )


def revisions_call(agent: str, *, owner: str | None = None) -> Call:
    return Call("GET", _agent_path(agent, "/revisions"), params=_owner(owner), repeatable=True)


def stats_call(agent: str, *, owner: str | None = None) -> Call:
    return Call("GET", _agent_path(agent, "/stats"), params=_owner(owner), repeatable=True)


def whoami_call() -> Call:
    """The key's name, owner and role."""
    return Call("GET", "/v1/whoami", repeatable=True)


def health_call() -> Call:
    """Liveness, reported as it is now: not retried."""
    return Call("GET", "/healthz")


def ready_call() -> Call:
    """Readiness, reported as it is now: not retried (a 503 raises at once)."""
    return Call("GET", "/readyz")


def parse(model: type[_ModelT], response: httpx.Response) -> _ModelT:
    """The answer as ``model``; an answer of another shape is an error, not a crash."""
    try:
        return model.model_validate_json(response.content)
    except pydantic.ValidationError as exc:
        raise APIStatusError(
            f"the answer of {response.request.method} {response.request.url.path} "
            f"is not a valid {model.__name__}",
            code="invalid_response",
            status=response.status_code,
            request_id=response.headers.get("x-request-id"),
        ) from exc

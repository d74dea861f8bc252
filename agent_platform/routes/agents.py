"""``/v1/agents``: spawn, list, get, start, stop, restart, action, delete, logs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import StringConstraints

from orchestrators.models import Agent, AgentStatus, LogOptions

from ..deps import AUDIT_ACTION, Caller, OrchestratorDep, OwnerScope, State, Writer, audit_action
from ..follows import bounded
from ..problems import ProblemError
from ..rendering import JSON, render_page
from ..schemas import ActionRequest, AgentList, RenewRequest, SpawnRequest
from ..since import SINCE_PATTERN, parse_since

__all__ = ["REF_MAX_LENGTH", "REF_PATTERN", "AgentRef", "audited", "etag", "router"]

_PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "a cursor this server did not issue", **_PROBLEM},
    401: {"description": "missing or invalid key", **_PROBLEM},
    403: {"description": "the key's role or the policy does not allow it", **_PROBLEM},
    404: {"description": "no such agent for this key", **_PROBLEM},
    409: {
        "description": "a name that agents of several owners share (use the id or owner=), "
        "or a start of an agent whose TTL passed (renew it first)",
        **_PROBLEM,
    },
    413: {"description": "body over the size limit", **_PROBLEM},
    415: {"description": "a body that is not JSON", **_PROBLEM},
    422: {"description": "invalid request", **_PROBLEM},
    429: {
        "description": "rate limited, or too many log streams followed; retry after Retry-After",
        **_PROBLEM,
    },
    502: {"description": "the orchestrator refused the request", **_PROBLEM},
    503: {"description": "orchestrator unavailable; retry after Retry-After", **_PROBLEM},
}

router = APIRouter(prefix="/v1/agents", tags=["agents"], responses=_ERRORS)

#: what an agent reference in a path may be: an id or a name (``fastread`` matches it too)
REF_PATTERN = r"^[a-z0-9][-a-z0-9]*$"
REF_MAX_LENGTH = 128
AgentRef = Annotated[
    str,
    Path(
        min_length=1,
        max_length=REF_MAX_LENGTH,
        pattern=REF_PATTERN,
        description="the agent's id, or its name; a ref shaped like an id (32 hex "
        "characters) is only ever looked up as an id",
    ),
]
LabelFilter = Annotated[
    str,
    StringConstraints(
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?=([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$"
    ),
]
Grace = Annotated[
    int | None, Query(ge=0, le=3600, description="seconds of grace before the agent is killed")
]


def _label_filters(raw: list[str]) -> dict[str, str]:
    filters: dict[str, str] = {}
    for item in raw:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ProblemError(422, "validation_error", f"label filter {item!r} is not key=value")
        filters[key] = value
    return filters


@router.post(
    "",
    status_code=201,
    response_model=Agent,
    summary="Spawn an agent (create and start)",
    dependencies=[audit_action("spawn")],
    responses={409: {"description": "name already used by this owner", **_PROBLEM}},
)
async def spawn_agent(
    body: SpawnRequest,
    caller: Writer,
    scope: OwnerScope,
    state: State,
    request: Request,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="repeat a spawn safely: the same key returns the first call's agent",
        ),
    ] = None,
) -> Agent:
    request.state.audit_agent = body.name
    state.policy.check_name(body.name)
    state.policy.check_image(body.image)
    state.policy.check_size(body)
    resources = state.policy.resolve_resources(body)
    limit = state.settings.max_agents_per_owner
    agent = await state.orchestrator.spawn(
        body,
        owner=scope or caller.owner,
        resources=resources,
        idempotency_key=idempotency_key,
        max_agents=limit or None,
        ceilings=state.ceilings if state.ceilings.active else None,
    )
    response.headers["Location"] = f"/v1/agents/{agent.id}"
    return audited(request, agent)


@router.get("", response_model=AgentList, summary="List agents")
async def list_agents(
    scope: OwnerScope,
    state: State,
    status: Annotated[AgentStatus | None, Query(description="only agents in this status")] = None,
    label: Annotated[
        list[LabelFilter],
        Query(description="user label filter key=value, repeatable (all must match)"),
    ] = [],  # noqa: B006 - FastAPI copies query defaults
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[
        str | None,
        Query(description="next_cursor of a page; anything else is 400 invalid_cursor"),
    ] = None,
) -> Response:
    agents = await state.live.list(owner=scope, labels=_label_filters(label))
    if status is not None:
        agents = [a for a in agents if a.status == status]
    page, next_cursor = state.cursors.paginate(agents, limit=limit, cursor=cursor)
    # An AgentList, its items rendered once each by the model rather than on every list.
    body = render_page((state.live.rendered(a) for a in page), next_cursor)
    return Response(body, media_type=JSON)


def etag(revision: int) -> str:
    """The ETag of an agent at ``revision`` (what ``If-Match`` sends back)."""
    return f'"{revision}"'


def audited(request: Request, agent: Agent) -> Agent:
    """Name the resolved agent (id and owner) in the request's audit record, and make the
    answer what this replica's reads say from now on (read-your-writes)."""
    request.app.state.agent_api.live.wrote(agent)
    request.state.audit_agent_id = agent.id
    request.state.audit_agent_owner = agent.owner
    return agent


@router.get(
    "/{agent}",
    response_model=Agent,
    summary="One agent; its ETag is its revision",
)
async def get_agent(agent: AgentRef, scope: OwnerScope, state: State) -> Response:
    found = await state.live.get(agent, owner=scope)
    body = state.live.rendered(found)
    return Response(body, media_type=JSON, headers={"ETag": etag(found.revision)})


@router.post(
    "/{agent}/start",
    response_model=Agent,
    summary="Start (idempotent)",
    dependencies=[audit_action("start")],
)
async def start_agent(
    agent: AgentRef, _: Writer, scope: OwnerScope, orchestrator: OrchestratorDep, request: Request
) -> Agent:
    return audited(request, await orchestrator.start(agent, owner=scope))


@router.post(
    "/{agent}/stop",
    response_model=Agent,
    summary="Stop (idempotent)",
    dependencies=[audit_action("stop")],
)
async def stop_agent(
    agent: AgentRef,
    caller: Writer,
    scope: OwnerScope,
    orchestrator: OrchestratorDep,
    state: State,
    request: Request,
    timeout: Grace = None,
) -> Agent:
    with state.slow_calls.hold(caller.key_name, scope or caller.owner):
        return audited(request, await orchestrator.stop(agent, owner=scope, timeout=timeout))


@router.post(
    "/{agent}/restart",
    response_model=Agent,
    summary="Restart",
    dependencies=[audit_action("restart")],
)
async def restart_agent(
    agent: AgentRef,
    caller: Writer,
    scope: OwnerScope,
    orchestrator: OrchestratorDep,
    state: State,
    request: Request,
    timeout: Grace = None,
) -> Agent:
    with state.slow_calls.hold(caller.key_name, scope or caller.owner):
        return audited(request, await orchestrator.restart(agent, owner=scope, timeout=timeout))


@router.post(
    "/{agent}/action",
    response_model=Agent,
    summary="start, stop or restart by body",
)
async def act_on_agent(
    agent: AgentRef,
    body: ActionRequest,
    caller: Writer,
    scope: OwnerScope,
    orchestrator: OrchestratorDep,
    state: State,
    request: Request,
) -> Agent:
    setattr(request.state, AUDIT_ACTION, body.action)  # the action is the body's
    if body.action == "start":
        return audited(request, await orchestrator.start(agent, owner=scope))
    with state.slow_calls.hold(caller.key_name, scope or caller.owner):
        grace = body.timeout
        if body.action == "stop":
            return audited(request, await orchestrator.stop(agent, owner=scope, timeout=grace))
        return audited(request, await orchestrator.restart(agent, owner=scope, timeout=grace))


@router.post(
    "/{agent}/ttl",
    response_model=Agent,
    summary="Renew the TTL: the agent is stopped ttl_seconds from now",
    dependencies=[audit_action("renew")],
)
async def renew_agent(
    agent: AgentRef,
    body: RenewRequest,
    _: Writer,
    scope: OwnerScope,
    orchestrator: OrchestratorDep,
    request: Request,
) -> Agent:
    renewed = await orchestrator.renew(agent, owner=scope, ttl_seconds=body.ttl_seconds)
    return audited(request, renewed)


@router.delete(
    "/{agent}",
    status_code=204,
    response_class=Response,
    summary="Remove the agent and what it owns; 404 once gone",
    dependencies=[audit_action("delete")],
)
async def delete_agent(
    agent: AgentRef, _: Writer, scope: OwnerScope, orchestrator: OrchestratorDep, request: Request
) -> Response:
    # Resolved once, then deleted by its id: what the audit names is what was removed.
    target = audited(request, await orchestrator.get(agent, owner=scope))
    await orchestrator.delete(target.id, owner=scope)
    request.app.state.agent_api.live.deleted(target.id)
    return Response(status_code=204)


@router.get(
    "/{agent}/logs",
    response_class=StreamingResponse,
    summary="The agent's output; follow=true streams until it stops, the client leaves, or "
    "the server's follow ceiling (then reconnect with since=)",
    responses={200: {"content": {"text/plain": {}}, "description": "stdout and stderr"}},
)
async def agent_logs(
    agent: AgentRef,
    caller: Caller,
    scope: OwnerScope,
    state: State,
    tail: Annotated[int | None, Query(ge=0, le=100_000, description="last N lines")] = None,
    since: Annotated[
        str | None,
        Query(max_length=64, pattern=SINCE_PATTERN, description="RFC 3339, Unix seconds or 10m"),
    ] = None,
    timestamps: bool = False,
    follow: bool = False,
) -> StreamingResponse:
    options = LogOptions(tail=tail, since=parse_since(since), timestamps=timestamps, follow=follow)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    if not follow:
        chunks = await state.orchestrator.logs(agent, owner=scope, options=options)
        return StreamingResponse(chunks, media_type="text/plain; charset=utf-8", headers=headers)
    slot = state.follows.take(caller)
    try:
        chunks = await state.orchestrator.logs(agent, owner=scope, options=options)
    except BaseException:
        state.follows.give_back(slot)
        raise
    ceiling = state.settings.follow_max_seconds
    headers["X-Follow-Max-Seconds"] = f"{ceiling:g}"
    return StreamingResponse(
        bounded(chunks, seconds=ceiling, slots=state.follows, slot=slot),
        media_type="text/plain; charset=utf-8",
        headers=headers,
    )

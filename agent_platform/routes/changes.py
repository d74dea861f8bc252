"""``/v1/agents/{agent}``: change a running agent, its revisions, a rollback, its usage.

A change passes the spawn policy again (image allowlist, ceilings, the owner's totals);
``If-Match`` carries the revision the caller read (GET's ``ETag``), and a change made since
answers 412 instead of being overwritten.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response

from orchestrators.models import AgentStats, ChangeResult, RevisionList
from orchestrators.policy import OwnerCeilings, SpawnPolicy

from ..auth import Principal
from ..deps import Caller, OrchestratorDep, OwnerScope, State, Writer, audit_action
from ..problems import ProblemError
from ..schemas import ChangeRequest, RollbackRequest
from ..state import AppState
from .agents import _ERRORS, _PROBLEM, AgentRef, audited, etag

__all__ = ["router"]

router = APIRouter(prefix="/v1/agents", tags=["agents"], responses=_ERRORS)

_REVISION_TAG = re.compile(r'^(?:W/)?"?([0-9]{1,9})"?$')
_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"description": "another change of this agent is under way", **_PROBLEM},
    412: {"description": "the agent is no longer at the revision of If-Match", **_PROBLEM},
}
IfMatch = Annotated[
    str | None,
    Header(
        max_length=64,
        description='the revision the change applies to: the ETag of GET ("3") or the bare number',
    ),
]


def _expected(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    found = _REVISION_TAG.match(if_match.strip())
    if found is None:
        raise ProblemError(
            400, "bad_request", 'If-Match must name one revision: "3" (the ETag of GET) or 3'
        )
    return int(found.group(1))


async def _changed(
    caller: Principal,
    scope: str | None,
    state: AppState,
    request: Request,
    response: Response,
    make: Callable[[SpawnPolicy, OwnerCeilings | None], Awaitable[ChangeResult]],
) -> ChangeResult:
    """A change or a rollback: ``make`` calls the orchestrator with the service's policy and
    ceilings, in a slow-call slot; the answer names the agent in the audit and has its ETag."""
    with state.slow_calls.hold(caller.key_name, scope or caller.owner):
        result = await make(state.policy, state.ceilings if state.ceilings.active else None)
    audited(request, result.agent)
    response.headers["ETag"] = etag(result.revision)
    return result


@router.patch(
    "/{agent}",
    response_model=ChangeResult,
    summary="Change the agent: what can change in place does, the rest restarts it",
    responses=_CHANGE_ERRORS,
    dependencies=[audit_action("update")],
)
async def change_agent(
    agent: AgentRef,
    body: ChangeRequest,
    caller: Writer,
    scope: OwnerScope,
    state: State,
    request: Request,
    response: Response,
    if_match: IfMatch = None,
) -> ChangeResult:
    expected = _expected(if_match)

    def make(policy: SpawnPolicy, ceilings: OwnerCeilings | None) -> Awaitable[ChangeResult]:
        return state.orchestrator.update(
            agent, body, owner=scope, policy=policy, expected_revision=expected, ceilings=ceilings
        )

    return await _changed(caller, scope, state, request, response, make)


@router.get(
    "/{agent}/revisions",
    response_model=RevisionList,
    summary="The agent's revisions, newest first (secret names, never values)",
)
async def agent_revisions(
    agent: AgentRef, scope: OwnerScope, orchestrator: OrchestratorDep
) -> RevisionList:
    return await orchestrator.revisions(agent, owner=scope)


@router.post(
    "/{agent}/rollback",
    response_model=ChangeResult,
    summary='Back to the previous revision\'s spec, or to {"revision": n}, as a new revision',
    responses=_CHANGE_ERRORS,
    dependencies=[audit_action("rollback")],
)
async def rollback_agent(
    agent: AgentRef,
    caller: Writer,
    scope: OwnerScope,
    state: State,
    request: Request,
    response: Response,
    body: RollbackRequest | None = None,
    if_match: IfMatch = None,
) -> ChangeResult:
    expected = _expected(if_match)
    to = body.revision if body is not None else None

    def make(policy: SpawnPolicy, ceilings: OwnerCeilings | None) -> Awaitable[ChangeResult]:
        return state.orchestrator.rollback(
            agent, owner=scope, policy=policy, to=to, expected_revision=expected, ceilings=ceilings
        )

    return await _changed(caller, scope, state, request, response, make)


@router.get(
    "/{agent}/stats",
    response_model=AgentStats,
    summary="One sample of the agent's CPU, memory, pids, network and block I/O",
    responses={501: {"description": "the backend has no usage figures", **_PROBLEM}},
)
async def agent_stats(
    agent: AgentRef, _: Caller, scope: OwnerScope, orchestrator: OrchestratorDep
) -> AgentStats:
    return await orchestrator.stats(agent, owner=scope)

"""FastAPI dependencies: the app state, the authenticated caller, and owner scoping.

All are ``async def``: none does I/O that could block (a key check is a hash and, with a
keys file, one ``stat``), and FastAPI runs a plain ``def`` dependency in a worker thread,
which cost every request four thread hand-offs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, params

from orchestrators.base import Orchestrator
from orchestrators.models import DNS1123_LABEL

from .auth import Principal, presented_key
from .authgate import BEARER_CHALLENGE
from .problems import ProblemError
from .state import AppState

__all__ = [
    "AUDIT_ACTION",
    "Caller",
    "OrchestratorDep",
    "OwnerScope",
    "State",
    "Writer",
    "audit_action",
    "get_state",
    "scope_of",
]

_BEARER = BEARER_CHALLENGE
#: where a route's audit action is kept for the middleware that writes the record
AUDIT_ACTION = "audit_action"


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.agent_api
    return state


State = Annotated[AppState, Depends(get_state)]


async def get_orchestrator(state: State) -> Orchestrator:
    return state.orchestrator


# The backend the app was built with (Docker or Kubernetes), as a route parameter.
OrchestratorDep = Annotated[Orchestrator, Depends(get_orchestrator)]


async def authenticate(request: Request, state: State) -> Principal:
    """401 without a valid key (the key itself is never logged or echoed), then the key's
    rate limit. ``AuthGateMiddleware`` has usually found the key already, before the body."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        presented = presented_key(
            request.headers.get("authorization", ""), request.headers.get("x-api-key", "")
        )
        if presented is None:
            raise ProblemError(401, "unauthorized", "an API key is required", headers=_BEARER)
        principal = state.keys.authenticate(presented)
        if principal is None:
            raise ProblemError(401, "unauthorized", "the API key is not valid", headers=_BEARER)
    request.state.key_name = principal.key_name
    request.state.owner = principal.owner
    wait = state.limiter.acquire(principal.key_name)
    if wait:
        raise ProblemError(
            429,
            "rate_limited",
            "too many requests for this key",
            headers={"Retry-After": str(wait)},
        )
    return principal


Caller = Annotated[Principal, Depends(authenticate)]


async def require_writer(caller: Caller) -> Principal:
    """403 for a valid key whose role may only read."""
    if not caller.can_write:
        raise ProblemError(403, "forbidden", f"the role {caller.role.value!r} may only read")
    return caller


Writer = Annotated[Principal, Depends(require_writer)]


def scope_of(caller: Principal, owner: str | None) -> str | None:
    """The owner a request of ``caller`` asking for ``owner`` is confined to; None means
    every owner (an admin without a filter)."""
    if caller.is_admin:
        return owner
    if owner is not None and owner != caller.owner:
        raise ProblemError(403, "forbidden", "only an admin key may choose another owner")
    return caller.owner


async def owner_scope(
    caller: Caller,
    owner: Annotated[
        str | None,
        Query(
            max_length=63,
            pattern=DNS1123_LABEL,
            description="admin only: restrict to (or act within) this owner's agents",
        ),
    ] = None,
) -> str | None:
    """The owner a request is confined to (``scope_of``)."""
    return scope_of(caller, owner)


OwnerScope = Annotated[str | None, Depends(owner_scope)]


def audit_action(action: str) -> params.Depends:
    """The action a route's audit record names, declared on the route:
    ``@router.post(..., dependencies=[audit_action("stop")])``. Route dependencies run
    first, so a request refused by the others (403, 422, 429) is recorded under it too;
    a route whose action depends on the request sets ``request.state.audit_action`` itself."""

    async def declare(request: Request) -> None:
        setattr(request.state, AUDIT_ACTION, action)

    return params.Depends(declare)

"""Gets of one agent answered from the read model before FastAPI's routing.

``GET /v1/agents/{agent}`` is the call a fleet's clients make most. Once the read model
answers it, the lookup takes microseconds and what is left is the framework: routing,
the dependency solves (state, key, rate limit, owner scope), parameter validation.
``ModelReads`` answers it directly when it can answer exactly as the route does (the same
status, body and headers; ``tests/api/test_fast_reads.py`` compares the two): a GET without
a query, a key the auth gate accepted, reads served by the model, the agent found within
the key's scope and the key within its rate limit. Anything else (an unknown or
ambiguous agent, a query, a broken watch, a key at its limit, a path the route would
refuse) goes on to the route, which gives the answer or the problem.

It sits inside the request-context middleware (request id, access line, metrics) and the
auth gate (which found the key), and outside the body guard (a GET has no body to check).
"""

from __future__ import annotations

import re

from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .deps import scope_of
from .rendering import JSON
from .routes import agents
from .routes.agents import REF_MAX_LENGTH, REF_PATTERN, etag
from .state import AppState

__all__ = ["ModelReads"]

_PATH = re.compile("^/v1/agents/(" + REF_PATTERN.strip("^$") + ")$")


class ModelReads:
    """See the module."""

    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state
        # The route it stands in for, in ``scope["route"]`` as the router would put it
        # (the metrics' and the access line's route label).
        self.route = next(
            route
            for route in agents.router.routes
            if isinstance(route, APIRoute) and route.endpoint is agents.get_agent
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope["query_string"]:
            response = self._answer(scope)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> Response | None:
        matched = _PATH.match(scope["path"])
        principal = scope.get("state", {}).get("principal")
        if matched is None or principal is None or len(matched[1]) > REF_MAX_LENGTH:
            return None
        found = self.state.live.cached(matched[1], owner=scope_of(principal, None))
        if found is None or self.state.limiter.acquire(principal.key_name):
            return None  # the route answers: its problem, or its own engine read
        scope["route"] = self.route
        scope["path_params"] = {"agent": matched[1]}
        body = self.state.live.rendered(found)
        return Response(body, media_type=JSON, headers={"ETag": etag(found.revision)})

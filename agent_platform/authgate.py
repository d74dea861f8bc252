"""Pure ASGI gate: a ``/v1`` request is authenticated from its headers before its body is
read, so that an unauthenticated caller never gets a byte of its body buffered or parsed.

A request without a valid key for a route that exists is refused with the same 401
problem the routes give; when it announced a body, the answer also closes the connection,
so that the unread body is not even drained. One for a path or method that does not exist
goes on to its 404 or 405, marked so that the body guard does not read its body either.
The principal found here is handed to the routes in ``scope["state"]``.
"""

from __future__ import annotations

from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from .auth import KeyRing, presented_key
from .problems import problem_response

__all__ = ["BEARER_CHALLENGE", "UNAUTHENTICATED", "AuthGateMiddleware"]

#: set in ``scope["state"]`` for a request without a valid key that no route serves
UNAUTHENTICATED = "unauthenticated"

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="agent-api"'}


def _served(scope: Scope) -> bool:
    """Some route serves this path with this method."""
    app = scope.get("app")
    routes = getattr(getattr(app, "router", None), "routes", ())
    return any(route.matches(scope)[0] is Match.FULL for route in routes)


def _announces_body(headers: dict[bytes, bytes]) -> bool:
    length = headers.get(b"content-length", b"0").strip()
    return b"transfer-encoding" in headers or length not in (b"", b"0")


class AuthGateMiddleware:
    def __init__(self, app: ASGIApp, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/v1" or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        presented = presented_key(
            headers.get(b"authorization", b"").decode("latin-1"),
            headers.get(b"x-api-key", b"").decode("latin-1"),
        )
        principal = self.keys.authenticate(presented) if presented else None
        state = scope.setdefault("state", {})
        if principal is None and not _served(scope):
            state[UNAUTHENTICATED] = True
            await self.app(scope, receive, send)
            return
        if principal is None:
            extra = {"Connection": "close"} if _announces_body(headers) else {}
            detail = "an API key is required" if presented is None else "the API key is not valid"
            refused = problem_response(
                path, 401, "unauthorized", detail, headers={**BEARER_CHALLENGE, **extra}
            )
            await refused(scope, receive, send)
            return
        state["principal"] = principal
        state["key_name"] = principal.key_name
        state["owner"] = principal.owner
        await self.app(scope, receive, send)

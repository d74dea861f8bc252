"""Pure ASGI gate: a ``/v1`` request is authenticated from its headers before its body is
read, so that an unauthenticated caller never gets a byte of its body buffered or parsed.

A refusal is the same 401 problem the routes give. When the request announced a body, the
answer also closes the connection, so that the unread body is not even drained. The
principal found here is handed to the routes in ``scope["state"]``.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from .auth import KeyRing, presented_key
from .problems import problem_response

__all__ = ["BEARER_CHALLENGE", "AuthGateMiddleware"]

BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="agent-api"'}


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
        if principal is None:
            extra = {"Connection": "close"} if _announces_body(headers) else {}
            detail = "an API key is required" if presented is None else "the API key is not valid"
            refused = problem_response(
                path, 401, "unauthorized", detail, headers={**BEARER_CHALLENGE, **extra}
            )
            await refused(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["principal"] = principal
        state["key_name"] = principal.key_name
        state["owner"] = principal.owner
        await self.app(scope, receive, send)

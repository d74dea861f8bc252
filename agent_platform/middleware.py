"""Pure ASGI middleware: request id, one JSON access-log line per request, metrics, audit.

Pure ASGI (not ``BaseHTTPMiddleware``) so that streamed log responses pass through as they
are produced; the access line is written when the body ends. A method the API does not
know is answered 405 here, before routing, and counted as ``other``: an invented method
name never becomes a label, a log field or any other per-method state.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .audit import AuditLog
from .deps import AUDIT_ACTION
from .logsetup import access_line
from .metrics import METHODS, OTHER, UNMATCHED, Metrics
from .problems import problem_response

__all__ = ["RequestContextMiddleware"]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics, audit: AuditLog) -> None:
        self.app = app
        self.metrics = metrics
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        known = scope["method"] in METHODS
        method = scope["method"] if known else OTHER

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            if known:
                await self.app(scope, receive, send_with_id)
            else:
                refused = problem_response(
                    scope["path"],
                    405,
                    "method_not_allowed",
                    "the API has no such method",
                    headers={"Allow": ", ".join(sorted(METHODS))},
                )
                await refused(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", UNMATCHED) if known else UNMATCHED
            self.metrics.observe(method, route, status, elapsed)
            state: dict[str, Any] = scope.get("state", {})
            access_line(
                {
                    "request_id": request_id,
                    "method": method,
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "key": state.get("key_name"),
                    "client": (scope.get("client") or ("", 0))[0],
                }
            )
            if method in _MUTATING and scope["path"].startswith("/v1/"):
                self._audit(scope, state, request_id, route, status)

    def _audit(
        self, scope: Scope, state: dict[str, Any], request_id: str, route: str, status: int
    ) -> None:
        # Declared by the route (``deps.audit_action``); a request no route took is named by
        # its method and route template.
        action = state.get(AUDIT_ACTION) or f"{scope['method']} {route}"
        agent = state.get("audit_agent") or (scope.get("path_params") or {}).get("agent")
        self.audit.record(
            request_id=request_id,
            key_name=state.get("key_name"),
            owner=state.get("owner"),
            action=action,
            agent=agent,
            agent_id=state.get("audit_agent_id"),
            agent_owner=state.get("audit_agent_owner"),
            status=status,
        )

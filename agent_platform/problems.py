"""The one error mapping: every error a client can see, as RFC 9457 problem details.

Orchestrator errors map by class onto a status; request validation, unknown routes and
API-level refusals (``ProblemError``) share the same shape; anything unexpected becomes a
bare 500 with no trace. Input values are never echoed back (they may hold secrets).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from loguru import logger
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match

from orchestrators.errors import (
    AgentConflict,
    AgentNotFound,
    EngineError,
    InvalidSpec,
    NotSupported,
    OrchestratorError,
    OrchestratorUnavailable,
    PolicyViolation,
    RevisionMismatch,
    TooManyCalls,
)

__all__ = [
    "PROBLEM_JSON",
    "ProblemError",
    "install_problem_handlers",
    "problem_body",
    "problem_response",
]

PROBLEM_JSON = "application/problem+json"

# The status of each class of the error tree; an error takes the status of the nearest class
# in its hierarchy (its method resolution order), so a new subclass inherits its parent's.
_STATUS_BY_ERROR: dict[type[OrchestratorError], int] = {
    OrchestratorError: 502,
    AgentNotFound: 404,
    AgentConflict: 409,
    RevisionMismatch: 412,
    InvalidSpec: 422,
    PolicyViolation: 403,
    TooManyCalls: 429,
    NotSupported: 501,
    OrchestratorUnavailable: 503,
    EngineError: 502,
}

_CODE_BY_HTTP_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


class ProblemError(Exception):
    """A refusal decided by the API layer itself (auth, a bad cursor, a missing role...)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def response(self, path: str) -> JSONResponse:
        """This refusal as problem+json, for the request at ``path``."""
        return problem_response(
            path, self.status, self.code, self.detail, headers=self.headers, extra=self.extra
        )


def problem_response(
    path: str,
    status: int,
    code: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    return JSONResponse(
        problem_body(path, status, code, detail, extra),
        status_code=status,
        headers=dict(headers or {}),
        media_type=PROBLEM_JSON,
    )


def problem_body(
    path: str, status: int, code: str, detail: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The RFC 9457 problem document every refusal of the service carries."""
    body: dict[str, Any] = {
        "type": f"urn:agent-platform:problem:{code}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": path,
        "code": code,
    }
    body.update(extra or {})
    return body


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path (one FastAPI route per method)."""
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE and isinstance(route, BaseRoute):
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def _status_of(exc: OrchestratorError) -> int:
    return next(_STATUS_BY_ERROR[cls] for cls in type(exc).__mro__ if cls in _STATUS_BY_ERROR)


# What is said of an invalid secret instead of pydantic's message (messages, not secrets).
_NAME_RULE = (
    "a secret name must match ^[A-Za-z_][A-Za-z0-9_]{0,127}$ (a name and its value swapped?)"
)
_VALUE_RULE = "a secret value must be a string of at most 32768 characters without NUL"


def _clean_error(err: Mapping[str, Any]) -> dict[str, Any]:
    """Where and what, never the input. Inside a ``secrets`` map not even where: its keys
    may be values put in the wrong place, so the location stops at ``secrets`` and the
    message is one of ours."""
    loc = list(err.get("loc", ()))
    msg = str(err.get("msg", ""))
    if "secrets" in loc:
        at = loc.index("secrets")
        inside = loc[at + 1 :]
        if inside:
            msg = _NAME_RULE if "[key]" in inside else _VALUE_RULE
        loc = loc[: at + 1]
    return {"loc": loc, "msg": msg, "type": err.get("type")}


def _clean_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    return [_clean_error(err) for err in errors]


def install_problem_handlers(app: FastAPI, *, retry_after: int) -> None:
    """Register the handlers that turn every error into problem+json."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ProblemError)
        return exc.response(request.url.path)

    async def on_orchestrator(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OrchestratorError)
        status = _status_of(exc)
        headers = {"Retry-After": str(retry_after)} if status in (429, 503) else None
        if status >= 500:
            logger.warning("orchestrator error {}: {}", exc.code, exc.detail)
        return problem_response(request.url.path, status, exc.code, exc.detail, headers=headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _clean_errors(exc.errors())
        first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"])
        return problem_response(
            request.url.path,
            422,
            "validation_error",
            f"{where}: {first['msg']}" if where else str(first["msg"]),
            extra={"errors": errors},
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _CODE_BY_HTTP_STATUS.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem_response(request.url.path, exc.status_code, code, detail, headers=headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.opt(exception=exc).error("unhandled error on {}", request.url.path)
        return problem_response(
            request.url.path, 500, "internal_error", "an unexpected error occurred"
        )

    # Starlette picks the handler of the nearest class in the exception's hierarchy, so
    # the order of these lines does not matter.
    app.add_exception_handler(ProblemError, on_problem)
    app.add_exception_handler(OrchestratorError, on_orchestrator)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)

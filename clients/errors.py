"""The one error hierarchy of the clients, built from the server's problem+json answers.

Every error carries the server's ``code``, its ``detail`` and the HTTP ``status`` (None
when no answer came). Errors from httpx and pydantic are translated here, where they
cross the boundary, and chained (``raise ... from exc``)::

    AgentAPIError                        status  code
    ├── TransportError                   None    connection_failed, timeout, transport_error
    └── APIStatusError                   any     internal_error, method_not_allowed,
        │                                        payload_too_large, unsupported_media_type
        ├── ValidationError              400/422 validation_error, bad_request, invalid_cursor,
        │                                        invalid_spec, image_not_found, spawn_failed
        ├── UnauthorizedError            401     unauthorized
        ├── ForbiddenError               403     forbidden
        │   └── PolicyViolationError     403     policy_violation, agent_quota_exceeded
        ├── NotFoundError                404     agent_not_found, not_found
        ├── WaitTimeoutError             408     wait_timeout
        ├── ConflictError                409     agent_name_conflict, agent_name_ambiguous,
        │                                        agent_expired, idempotency_key_reused,
        │                                        change_in_flight
        ├── PreconditionFailedError      412     revision_mismatch
        ├── RateLimitedError             429     rate_limited, too_many_log_streams,
        │                                        too_many_event_streams
        ├── NotSupportedError            501     not_supported
        └── ServerUnavailableError       502/503/504  orchestrator_unavailable, engine_error,
                                                 orchestrator_error, keys_file_broken,
                                                 too_many_connections

A ``ValidationError`` raised before anything was sent (a spawn request of the wrong shape)
has status None. Messages never carry a key, a secret value or a request body.
"""

from __future__ import annotations

import email.utils
from collections.abc import Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

import httpx
import pydantic

__all__ = [
    "APIStatusError",
    "AgentAPIError",
    "ConflictError",
    "ForbiddenError",
    "NotFoundError",
    "NotSupportedError",
    "PolicyViolationError",
    "PreconditionFailedError",
    "RateLimitedError",
    "ServerUnavailableError",
    "TransportError",
    "UnauthorizedError",
    "ValidationError",
    "WaitTimeoutError",
    "error_from_response",
    "error_from_transport",
    "error_from_validation",
    "parse_retry_after",
    "safe_url",
]


class AgentAPIError(Exception):
    """Base of every error the clients raise on purpose."""

    def __init__(
        self,
        detail: str,
        *,
        code: str,
        status: int | None = None,
        retry_after: float | None = None,
        errors: Sequence[dict[str, Any]] = (),
        request_id: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.status = status
        self.retry_after = retry_after
        self.errors = list(errors)
        self.request_id = request_id

    def __str__(self) -> str:
        where = f"{self.code}, HTTP {self.status}" if self.status else self.code
        return f"{self.detail} ({where})"


class TransportError(AgentAPIError):
    """No HTTP answer came: the connection failed, broke, or timed out."""

    @property
    def connection_failed(self) -> bool:
        """True when the request never got an answer because the connection failed or broke.

        Timeouts while waiting for an answer do not count: the server may still be working.
        """
        return self.code == "connection_failed"


class APIStatusError(AgentAPIError):
    """The server answered with an error status; the class for statuses with no subclass."""


class ValidationError(APIStatusError):
    """The request is invalid (400, 422), or was refused before it was sent."""


class UnauthorizedError(APIStatusError):
    """No key, or a key the server does not know (401)."""


class ForbiddenError(APIStatusError):
    """The key is valid but its role may not do this (403)."""


class PolicyViolationError(ForbiddenError):
    """The request is well formed but the server's spawn policy refuses it (403)."""


class NotFoundError(APIStatusError):
    """No such agent for this key (404); another owner's agent answers the same."""


class WaitTimeoutError(APIStatusError):
    """A wait ended at its timeout before the agent got there (408); wait again."""


class ConflictError(APIStatusError):
    """The name is taken, ambiguous, or an Idempotency-Key was reused (409)."""


class PreconditionFailedError(APIStatusError):
    """The agent changed since the revision sent in ``If-Match`` (412): read it again."""


class NotSupportedError(APIStatusError):
    """The server's backend cannot do this (501)."""


class RateLimitedError(APIStatusError):
    """Too many requests (429); ``retry_after`` says when to try again."""


class ServerUnavailableError(APIStatusError):
    """The server or its engine cannot serve now (502, 503, 504); worth retrying later."""


_POLICY_CODES = frozenset({"policy_violation", "agent_quota_exceeded"})
_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: ValidationError,
    401: UnauthorizedError,
    403: ForbiddenError,
    404: NotFoundError,
    408: WaitTimeoutError,
    409: ConflictError,
    412: PreconditionFailedError,
    422: ValidationError,
    429: RateLimitedError,
    501: NotSupportedError,
    502: ServerUnavailableError,
    503: ServerUnavailableError,
    504: ServerUnavailableError,
}
_CONNECTION_FAILURES = (
    httpx.NetworkError,  # connect, read, write and close errors
    httpx.RemoteProtocolError,  # the peer closed the connection without an answer
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def safe_url(url: httpx.URL | str) -> str:
    """The URL without user information, query or fragment, fit for a message."""
    parsed = httpx.URL(str(url))
    return str(parsed.copy_with(username=None, password=None, query=None, fragment=None))


def _problem(response: httpx.Response) -> dict[str, Any]:
    if "json" not in response.headers.get("content-type", ""):
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _class_for(status: int, code: str) -> type[APIStatusError]:
    if status == 403 and code in _POLICY_CODES:
        return PolicyViolationError
    return _BY_STATUS.get(status, APIStatusError)


def error_from_response(response: httpx.Response) -> APIStatusError:
    """The error for an answer with an error status, from its problem details if any.

    A body that is not problem+json (a proxy's HTML page) is not echoed: the detail is
    then the status phrase.
    """
    status = response.status_code
    problem = _problem(response)
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    code = problem.get("code")
    detail = problem.get("detail")
    errors = problem.get("errors")
    code = code if isinstance(code, str) and code else f"http_{status}"
    detail = detail if isinstance(detail, str) and detail else f"{status} {phrase}"
    return _class_for(status, code)(
        detail,
        code=code,
        status=status,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        errors=[e for e in errors if isinstance(e, dict)] if isinstance(errors, list) else (),
        request_id=response.headers.get("x-request-id"),
    )


def error_from_transport(exc: httpx.TransportError, url: httpx.URL | str) -> TransportError:
    """The error for a request that got no answer; ``url`` is the server's base URL."""
    where = safe_url(url)
    if isinstance(exc, _CONNECTION_FAILURES):
        code, what = "connection_failed", f"could not reach agent-api at {where}"
    elif isinstance(exc, httpx.TimeoutException):
        code, what = "timeout", f"agent-api at {where} did not answer in time"
    else:
        code, what = "transport_error", f"the request to agent-api at {where} failed"
    return TransportError(f"{what} ({type(exc).__name__})", code=code)


def _without_secrets(loc: list[Any], msg: str) -> tuple[list[Any], str]:
    """Nothing of a ``secrets`` map: its names may be values put in the wrong place."""
    if "secrets" not in loc:
        return loc, msg
    at = loc.index("secrets")
    if len(loc) > at + 1:
        msg = "a secret name or value is invalid (a name and its value swapped?)"
    return loc[: at + 1], msg


def error_from_validation(exc: pydantic.ValidationError, what: str) -> ValidationError:
    """A request refused before it was sent; input values are left out (they may be secrets),
    and so is anything inside a ``secrets`` map."""
    problems = []
    for err in exc.errors(include_input=False, include_url=False):
        loc, msg = _without_secrets(list(err["loc"]), err["msg"])
        problems.append({"loc": loc, "msg": msg, "type": err["type"]})
    first = problems[0] if problems else {"loc": [], "msg": "invalid"}
    where = ".".join(str(part) for part in first["loc"])
    detail = f"{what}: {where}: {first['msg']}" if where else f"{what}: {first['msg']}"
    return ValidationError(detail, code="invalid_request", errors=problems)

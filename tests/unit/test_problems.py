"""Every refusal is the same problem+json, whichever layer refuses (in process, no engine)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from agent_platform.bodyguard import BodyGuardMiddleware
from agent_platform.problems import PROBLEM_JSON, ProblemError, install_problem_handlers
from orchestrators.errors import (
    AgentConflict,
    IdempotencyKeyReused,
    OrchestratorError,
    OrchestratorUnavailable,
)

pytestmark = pytest.mark.anyio


class NewConflict(IdempotencyKeyReused):
    """A subclass the status table does not name: its ancestors decide."""

    code = "new_conflict"


class NewFailure(OrchestratorError):
    code = "new_failure"


def app_raising(exc: Exception) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app, retry_after=7)

    @app.post("/v1/thing")
    async def thing() -> None:
        raise exc

    app.add_middleware(BodyGuardMiddleware, max_bytes=1024)
    return app


async def call(app: FastAPI, body: bytes = b"{}") -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.post(
            "/v1/thing", content=body, headers={"content-type": "application/json"}
        )


def problem(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert set(body) == {"type", "title", "status", "detail", "instance", "code"}
    assert body["status"] == response.status_code
    assert body["instance"] == "/v1/thing"
    return body


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (NewConflict("again"), 409, "new_conflict"),
        (AgentConflict("taken"), 409, "agent_name_conflict"),
        (NewFailure("odd"), 502, "new_failure"),
        (OrchestratorUnavailable("down"), 503, "orchestrator_unavailable"),
        (ProblemError(403, "forbidden", "no"), 403, "forbidden"),
    ],
)
async def test_an_error_takes_the_status_of_its_nearest_class(
    error: Exception, status: int, code: str
) -> None:
    answer = await call(app_raising(error))
    assert answer.status_code == status
    assert problem(answer)["code"] == code
    if status == 503:
        assert answer.headers["retry-after"] == "7"


async def test_the_body_guard_refuses_with_the_same_problem_as_the_routes() -> None:
    app = app_raising(ProblemError(413, "payload_too_large", "from a route"))
    from_route = await call(app)
    from_guard = await call(app, b"[" * 2000)
    assert (from_route.status_code, from_guard.status_code) == (413, 413)
    assert problem(from_route).keys() == problem(from_guard).keys()
    assert problem(from_guard)["code"] == "payload_too_large"
    repeated = await call(app, b'{"a": 1, "a": 2}')
    assert repeated.status_code == 422
    assert problem(repeated)["code"] == "validation_error"

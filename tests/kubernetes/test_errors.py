"""Kubernetes client and transport errors become the platform's one hierarchy (no server)."""

from __future__ import annotations

import json

import pytest
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from orchestrators.errors import EngineError, OrchestratorError, OrchestratorUnavailable
from orchestrators.kubernetes.api import translate


def api_error(status: int, message: str = "it says no") -> ApiException:
    error = ApiException(status=status, reason="Reason")
    error.body = json.dumps({"kind": "Status", "message": message})
    return error


def transport(reason: Exception) -> urllib3.exceptions.MaxRetryError:
    return urllib3.exceptions.MaxRetryError(None, "/api", reason)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raised", "kind", "words"),
    [
        (api_error(403, 'deployments.apps is forbidden: User "x"'), EngineError, "forbidden"),
        (api_error(404, 'namespaces "nope" not found'), EngineError, "not found"),
        (api_error(409, "already exists"), EngineError, "409"),
        (api_error(422, "is invalid"), EngineError, "is invalid"),
        (api_error(401, "Unauthorized"), OrchestratorUnavailable, "credentials"),
        (api_error(429, "too many requests"), OrchestratorUnavailable, "429"),
        (api_error(500, "etcd timed out"), OrchestratorUnavailable, "500"),
        (api_error(503, "unavailable"), OrchestratorUnavailable, "503"),
        (ApiException(status=0, reason="SSLError"), OrchestratorUnavailable, "not reachable"),
        (
            transport(urllib3.exceptions.NewConnectionError(None, "refused")),  # type: ignore[arg-type]
            OrchestratorUnavailable,
            "not reachable",
        ),
        (
            transport(urllib3.exceptions.ReadTimeoutError(None, "/api", "timed out")),  # type: ignore[arg-type]
            OrchestratorUnavailable,
            "in time",
        ),
        (urllib3.exceptions.ProtocolError("reset"), OrchestratorUnavailable, "not reachable"),
        (ConnectionRefusedError(), OrchestratorUnavailable, "not reachable"),
        (ConfigException("Invalid kube-config file."), OrchestratorUnavailable, "configuration"),
        (KeyError("x"), EngineError, "KeyError"),
    ],
)
def test_every_error_maps_onto_the_hierarchy(
    raised: Exception, kind: type[OrchestratorError], words: str
) -> None:
    translated = translate(raised)
    assert type(translated) is kind
    assert words in translated.detail


def test_our_own_errors_pass_through() -> None:
    error = EngineError("as is")
    assert translate(error) is error


def test_messages_are_short() -> None:
    assert len(translate(api_error(422, "x" * 10_000)).detail) < 400

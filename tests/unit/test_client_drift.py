"""The clients' copies of the server's vocabulary stay equal to the server's.

The clients do not import the server (they ship without it), so they repeat its enums and
rely on its error codes. These tests compare the copies with the originals: a value added on
one side and not the other fails here, not in a user's hands.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest

import clients.errors
from agent_platform import problems
from clients import cli as client_cli
from clients import models as client_models
from clients.errors import APIStatusError, PolicyViolationError, error_from_response
from clients.nanobot_tool import _PARAMETERS as TOOL_PARAMETERS
from orchestrators import models as server_models
from orchestrators.errors import OrchestratorError, PolicyViolation

ROOT = Path(__file__).resolve().parents[2]
SERVER_RESTART_POLICIES = set(get_args(server_models.RestartPolicy))
SERVER_NETWORKS = set(get_args(server_models.NetworkChoice))
SERVER_STATUSES = {status.value for status in server_models.AgentStatus}

# Statuses for which the clients have no class of their own: the generic APIStatusError is
# the documented answer (clients/errors.py: "the class for statuses with no subclass").
GENERIC_STATUSES = {405, 413, 415, 500}


def test_the_clients_restart_policies_are_the_servers() -> None:
    assert {"no", "on-failure", "unless-stopped", "always"} == SERVER_RESTART_POLICIES
    assert set(get_args(client_models.RestartPolicy)) == SERVER_RESTART_POLICIES
    assert {choice.value for choice in client_cli.RestartPolicyChoice} == SERVER_RESTART_POLICIES
    tool_enum = TOOL_PARAMETERS["properties"]["restart_policy"]["enum"]
    assert set(tool_enum) == SERVER_RESTART_POLICIES


def test_the_clients_network_choices_are_the_servers() -> None:
    assert {"default", "none"} == SERVER_NETWORKS
    assert set(get_args(client_models.NetworkChoice)) == SERVER_NETWORKS
    assert {option.value for option in client_cli.NetworkOption} == SERVER_NETWORKS


def test_the_clients_agent_statuses_are_the_servers() -> None:
    assert {status.value for status in client_models.AgentStatus} == SERVER_STATUSES
    assert set(TOOL_PARAMETERS["properties"]["status"]["enum"]) == SERVER_STATUSES


def _orchestrator_errors() -> list[type[OrchestratorError]]:
    found: list[type[OrchestratorError]] = []
    todo: list[type[OrchestratorError]] = [OrchestratorError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


_REFUSALS = {"ProblemError": (0, 1), "_Refused": (0, 1), "problem_response": (1, 2)}


def _literal_refusals() -> set[tuple[int, str]]:
    """Every (status, code) the API layer writes as literals in a refusal."""
    found: set[tuple[int, str]] = set()
    for path in sorted((ROOT / "agent_platform").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name not in _REFUSALS:
                continue
            at_status, at_code = _REFUSALS[name]
            if len(node.args) <= at_code:
                continue
            status, code = node.args[at_status], node.args[at_code]
            if isinstance(status, ast.Constant) and isinstance(code, ast.Constant):
                assert isinstance(status.value, int)
                assert isinstance(code.value, str)
                found.add((status.value, code.value))
    return found


def server_codes() -> dict[str, set[int]]:
    """Every error ``code`` the server can answer with, and the statuses it comes with."""
    pairs: set[tuple[int, str]] = set(_literal_refusals())
    pairs |= {(status, code) for status, code in problems._CODE_BY_HTTP_STATUS.items()}
    for cls in _orchestrator_errors():
        pairs.add((problems._status_of(cls.__new__(cls)), cls.code))
    codes: dict[str, set[int]] = {}
    for status, code in pairs:
        codes.setdefault(code, set()).add(status)
    return codes


def test_the_collection_finds_the_codes_of_every_layer() -> None:
    codes = server_codes()
    # One from each source: an orchestrator error, the HTTP table, a literal refusal.
    assert {"agent_quota_exceeded", "method_not_allowed", "invalid_cursor"} <= set(codes)
    assert {"internal_error", "keys_file_broken", "validation_error"} <= set(codes)


_NOT_CODES = {"any", "code", "examples", "status"}


def _documented() -> dict[str, set[str]]:
    """The client's table (clients/errors.py's docstring): class name -> the codes named."""
    table: dict[str, set[str]] = {}
    current = ""
    for line in (clients.errors.__doc__ or "").splitlines():
        named = re.search(r"(\w+Error)\s", line)
        if named:
            current = named.group(1)
            line = line[named.end() :]
        elif not line.strip():
            current = ""  # the table ends at the first blank line after it
            continue
        elif not current:
            continue
        words = re.findall(r"\b[a-z][a-z_]*[a-z]\b", line)
        table.setdefault(current, set()).update(w for w in words if w not in _NOT_CODES)
    return table


def _answer(status: int, code: str) -> httpx.Response:
    body: dict[str, Any] = {"status": status, "code": code, "detail": "refused"}
    return httpx.Response(
        status,
        json=body,
        headers={"content-type": "application/problem+json"},
        request=httpx.Request("GET", "http://127.0.0.1/v1/agents"),
    )


@pytest.mark.parametrize("code", sorted(server_codes()))
def test_every_server_error_code_has_its_client_error_class(code: str) -> None:
    documented = _documented()
    for status in sorted(server_codes()[code]):
        error = error_from_response(_answer(status, code))
        assert (error.code, error.status) == (code, status)
        if status not in GENERIC_STATUSES:
            assert type(error) is not APIStatusError, f"{code} ({status}) has no class"
        assert code in documented.get(type(error).__name__, set()), (
            f"clients/errors.py does not name {code} under {type(error).__name__}"
        )


def test_every_policy_refusal_is_a_policy_violation_in_the_clients() -> None:
    policy = [cls for cls in _orchestrator_errors() if issubclass(cls, PolicyViolation)]
    assert len(policy) >= 2
    for cls in policy:
        error = error_from_response(_answer(403, cls.code))
        assert isinstance(error, PolicyViolationError), cls.code


def test_the_clients_event_types_and_wait_conditions_are_the_servers() -> None:
    from agent_platform.routes.wait import UNTIL

    server_types = {kind.value for kind in server_models.EventType}
    assert {kind.value for kind in client_models.EventType} == server_types
    assert set(get_args(client_models.WaitUntil)) == set(UNTIL)
    assert {choice.value for choice in client_cli.UntilChoice} == set(UNTIL)
    assert set(TOOL_PARAMETERS["properties"]["until"]["enum"]) == set(UNTIL)

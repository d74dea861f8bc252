"""The clients package on its own: no server import, one public surface, the body it sends."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys

import httpx

import clients
from clients import AgentClient
from clients.humanize import human_duration

AGENT = {
    "id": "b" * 32,
    "name": "aptest-body",
    "owner": "alice",
    "image": "img",
    "status": "running",
    "created_at": "2026-11-20T10:00:00Z",
    "network": "none",
    "expires_at": "2026-11-20T11:00:00Z",
    "a_field_from_a_newer_server": True,
}


def test_importing_the_clients_loads_no_server_code() -> None:
    probe = (
        "import sys, clients, clients.cli; "
        "print(sorted(m for m in ('agent_platform', 'orchestrators', 'fastapi', 'docker',"
        " 'uvicorn', 'kubernetes', 'nanobot', 'mcp') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_every_module_says_what_it_is_for_and_exports_on_purpose() -> None:
    for info in pkgutil.iter_modules(clients.__path__):
        module = importlib.import_module(f"clients.{info.name}")
        assert module.__doc__, info.name
        exported = module.__all__
        assert exported, info.name
        assert all(hasattr(module, name) for name in exported), info.name
    assert all(hasattr(clients, name) for name in clients.__all__)


def test_spawn_sends_only_what_was_asked_with_secret_values() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(201, json=AGENT)

    with AgentClient(
        "http://agents.test", "k" * 20, transport=httpx.MockTransport(handler)
    ) as client:
        agent = client.spawn(
            "aptest-body",
            "img",
            secrets={"TOKEN": "tok"},
            network="none",
            ttl_seconds=3600,
            resources={"memory_mb": 64},
        )
        client.spawn("aptest-bare", "img")
    assert json.loads(sent[0].content) == {
        "name": "aptest-body",
        "image": "img",
        "env": {},
        "secrets": {"TOKEN": "tok"},
        "labels": {},
        "resources": {"memory_mb": 64},
        "network": "none",
        "ttl_seconds": 3600,
    }
    assert json.loads(sent[1].content) == {
        "name": "aptest-bare",
        "image": "img",
        "env": {},
        "labels": {},
    }
    assert sent[0].headers["authorization"] == "Bearer " + "k" * 20
    assert sent[0].headers["idempotency-key"] != sent[1].headers["idempotency-key"]
    assert agent.network == "none"
    assert agent.expires_at is not None


def test_durations_read_like_docker_ps() -> None:
    assert [human_duration(s) for s in (0.4, 1.7, 59, 61, 150, 3700, 7200, 86400 * 3)] == [
        "Less than a second",
        "1 second",
        "59 seconds",
        "About a minute",
        "2 minutes",
        "About an hour",
        "2 hours",
        "3 days",
    ]

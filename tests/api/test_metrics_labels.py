"""Metrics label values come from fixed sets: invented methods add nothing (issue: noisy
neighbours). Run against the service as a process, measuring its RSS from /proc."""

from __future__ import annotations

import re
import secrets

import httpx

from ..conftest import StartServer
from .helpers import assert_problem

_SERIES = re.compile(r"^(agent_api_[a-z_]+\{[^}]*\})", re.MULTILINE)
MIB = 1024 * 1024


def _label_sets(text: str) -> set[str]:
    return set(_SERIES.findall(text))


def _invent(client: httpx.Client, count: int) -> None:
    for _ in range(count):
        method = "X" + secrets.token_hex(6).upper()
        response = client.request(method, f"/v1/agents/{secrets.token_hex(4)}")
        assert response.status_code == 405


def test_an_invented_method_is_405_and_adds_no_label_set(start_server: StartServer) -> None:
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        refused = client.request("BREW", "/v1/agents")
        assert_problem(refused, 405, "method_not_allowed")
        assert "BREW" not in refused.headers["allow"]
        _invent(client, 300)  # warm up: every code path and allocator arena used once
        client.get("/metrics")
        before = client.get("/metrics").text  # now counting itself too
        rss_before = server.rss_bytes()

        _invent(client, 5000)

        rss_after = server.rss_bytes()
        after = client.get("/metrics").text
    assert 'method="other",route="unmatched",status="405"' in after
    assert not re.search(r'method="X[0-9A-F]{12}"', after)
    assert _label_sets(after) == _label_sets(before)
    assert len(after) < len(before) + 256  # only counters grew a digit or two
    # Before label sets were fixed, 5000 invented methods added about 25 MiB.
    assert rss_after - rss_before < 8 * MIB, (rss_before, rss_after)

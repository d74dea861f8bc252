"""Clients bound to the running service, one per key, closed after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clients import AgentClient, RetryPolicy

from ..conftest import Api

SCRIPT = "echo agent-says-hi; exec sleep 3600"
# Retries fast enough for tests that provoke them on purpose.
QUICK = RetryPolicy(attempts=4, budget=5, initial=0.05, max_wait=0.2, jitter=0.05)


@pytest.fixture
def alice(api: Api) -> Iterator[AgentClient]:
    with AgentClient(api.url, api.keys.alice) as client:
        yield client


@pytest.fixture
def admin(api: Api) -> Iterator[AgentClient]:
    with AgentClient(api.url, api.keys.admin) as client:
        yield client

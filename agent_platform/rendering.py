"""Response bodies of agents written as bytes, so that the read model renders each agent once.

``render`` is what FastAPI makes of ``response_model=Agent``, ``render_page`` what it makes
of an ``AgentList`` whose items are already rendered (``tests/unit/test_rendering.py``
holds them to it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from orchestrators.models import Agent

__all__ = ["JSON", "render", "render_page"]

JSON = "application/json"


def render(agent: Agent) -> bytes:
    """``agent`` as its response body."""
    return agent.model_dump_json().encode()


def render_page(items: Iterable[bytes], next_cursor: str | None) -> bytes:
    """An ``AgentList`` of rendered agents."""
    cursor = json.dumps(next_cursor, ensure_ascii=False).encode()
    return b'{"items":[' + b",".join(items) + b'],"next_cursor":' + cursor + b"}"

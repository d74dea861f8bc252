"""Stable, opaque cursors over a list sorted by (created_at, id)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence

from orchestrators.models import Agent

from .problems import ProblemError

__all__ = ["paginate"]


def _encode(agent: Agent) -> str:
    raw = json.dumps([agent.created_at.isoformat(), agent.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, agent_id = json.loads(raw)
        if not isinstance(created_at, str) or not isinstance(agent_id, str):
            raise ValueError("cursor parts are not strings")
    except (ValueError, binascii.Error, TypeError) as exc:
        raise ProblemError(
            400, "invalid_cursor", "the cursor is not one this server issued"
        ) from exc
    return created_at, agent_id


def paginate(
    agents: Sequence[Agent], *, limit: int, cursor: str | None
) -> tuple[list[Agent], str | None]:
    """One page after ``cursor`` and the cursor of the next page (None on the last)."""
    ordered = sorted(agents, key=lambda a: (a.created_at.isoformat(), a.id))
    if cursor is not None:
        after = _decode(cursor)
        ordered = [a for a in ordered if (a.created_at.isoformat(), a.id) > after]
    page = ordered[:limit]
    more = len(ordered) > limit
    return page, _encode(page[-1]) if more and page else None

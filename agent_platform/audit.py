"""The audit trail: one JSON record per mutating request, to the log and optionally a file.

A record names who (key name and the key's owner), what (action, the agent as the caller
named it, and the agent it resolved to: its id and owner), and how it ended; never a key,
a secret or an environment value.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loguru import logger

__all__ = ["AuditLog", "outcome_of"]


def outcome_of(status: int) -> str:
    if status < 400:
        return "success"
    if status in (401, 403):
        return "denied"
    return "rejected" if status < 500 else "error"


class AuditLog:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()

    def record(
        self,
        *,
        request_id: str,
        key_name: str | None,
        owner: str | None,
        action: str,
        agent: str | None,
        status: int,
        agent_id: str | None = None,
        agent_owner: str | None = None,
    ) -> None:
        entry: dict[str, Any] = {
            "time": datetime.now(UTC).isoformat(),
            "request_id": request_id,
            "key": key_name,
            "owner": owner,
            "action": action,
            "agent": agent,
            "agent_id": agent_id,
            "agent_owner": agent_owner,
            "outcome": outcome_of(status),
            "status": status,
        }
        logger.bind(audit=True, **entry).info("audit")
        if self._path is not None:
            line = json.dumps(entry) + "\n"
            with self._lock, self._path.open("a", encoding="utf-8") as handle:
                handle.write(line)

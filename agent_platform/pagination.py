"""Signed, opaque cursors over a list sorted by (created_at, id).

A cursor is ``<payload>.<signature>``, both base64url: the payload is the position (the
last agent's creation time and id), the signature an HMAC-SHA256 of it under the cursor
key. Anything that is not a cursor this deployment signed is refused with 400
``invalid_cursor`` before it is read, whatever its shape.

The key comes from ``AGENT_API_CURSOR_SECRET`` or, without one, from ``AGENT_API_KEY``
(through HMAC, so the admin key itself never signs anything): every replica that shares
the configuration accepts the cursors of the others. Without either, each process draws a
random key, and a cursor works only on the replica that issued it.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Sequence
from datetime import datetime

from orchestrators.models import Agent

from .problems import ProblemError

__all__ = ["Cursors", "cursor_key"]

_MAX_CURSOR = 512
_PART = re.compile(r"^[A-Za-z0-9_-]+$")
_DERIVATION = b"agent-api list cursors v1"


def cursor_key(cursor_secret: str | None, admin_key: str | None) -> tuple[bytes, str]:
    """The signing key and where it came from (for the start-up log)."""
    if cursor_secret is not None:
        return hmac.new(cursor_secret.encode(), _DERIVATION, hashlib.sha256).digest(), "setting"
    if admin_key is not None:
        return hmac.new(admin_key.encode(), _DERIVATION, hashlib.sha256).digest(), "admin key"
    return secrets.token_bytes(32), "random"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid() -> ProblemError:
    return ProblemError(400, "invalid_cursor", "the cursor is not one this server issued")


class Cursors:
    """Issues and checks the cursors of one deployment."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def encode(self, agent: Agent) -> str:
        payload = json.dumps([agent.created_at.isoformat(), agent.id]).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def decode(self, cursor: str) -> tuple[str, str]:
        """The position in ``cursor``; 400 ``invalid_cursor`` unless this deployment signed it."""
        payload_part, dot, signature_part = cursor.partition(".")
        if (
            len(cursor) > _MAX_CURSOR
            or not dot
            or not _PART.match(payload_part)
            or not _PART.match(signature_part)
        ):
            raise _invalid()
        try:
            payload, signature = _unb64(payload_part), _unb64(signature_part)
        except (ValueError, binascii.Error) as exc:
            raise _invalid() from exc
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise _invalid()
        created_at, agent_id = json.loads(payload)  # signed by us: the shape is ours
        return str(created_at), str(agent_id)

    def paginate(
        self, agents: Sequence[Agent], *, limit: int, cursor: str | None
    ) -> tuple[list[Agent], str | None]:
        """One page after ``cursor`` and the cursor of the next page (None on the last)."""
        ordered = sorted(agents, key=_position)
        start = 0
        if cursor is not None:
            created_at, agent_id = self.decode(cursor)
            after = (datetime.fromisoformat(created_at).timestamp(), agent_id)
            start = bisect.bisect_right(ordered, after, key=_position)
        page = ordered[start : start + limit]
        more = len(ordered) > start + limit
        return page, self.encode(page[-1]) if more and page else None


def _position(agent: Agent) -> tuple[float, str]:
    """Where ``agent`` is in every list: by creation, then id."""
    return agent.created_at.timestamp(), agent.id

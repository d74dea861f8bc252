"""Where the clients find the server and the key: arguments first, then the environment."""

from __future__ import annotations

import os

__all__ = [
    "DEFAULT_TIMEOUT",
    "DEFAULT_URL",
    "ENV_KEY",
    "ENV_URL",
    "SPAWN_EXTRA_TIMEOUT",
    "STOP_GRACE_DEFAULT",
    "resolve_key",
    "resolve_url",
]

ENV_URL = "AGENT_API_URL"
ENV_KEY = "AGENT_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0
# A spawn may pull the image on the server before it answers.
SPAWN_EXTRA_TIMEOUT = 240.0
# The server's default grace when a stop or restart names none; added to the read timeout.
STOP_GRACE_DEFAULT = 10


def resolve_url(url: str | None) -> str:
    """``url``, else ``AGENT_API_URL``, else the local default; without a trailing slash."""
    chosen = url or os.environ.get(ENV_URL) or DEFAULT_URL
    return chosen.strip().rstrip("/")


def resolve_key(key: str | None) -> str | None:
    """``key``, else ``AGENT_API_KEY``; None when neither is set (only health works then)."""
    chosen = key if key is not None else os.environ.get(ENV_KEY)
    chosen = chosen.strip() if chosen else None
    return chosen or None

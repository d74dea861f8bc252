"""API keys: who is calling, which owner they act for, and what their role lets them do.

Keys are known only by their SHA-256 digests; a presented key is hashed and compared with
every known digest in constant time. The admin key comes from ``AGENT_API_KEY``; further
keys come from the keys file, which is re-read when it changes on disk:

    keys:
      - name: sol-2026-11          # shown in logs and audit, never the key
        owner: sol                 # the agents this key sees and manages
        role: operator             # admin | operator | viewer
        sha256: 9f86d08...         # hex digest of the key
        disabled: false

The file fails closed: when it cannot be read or parsed, is deleted, or holds one bad entry
(a malformed field, a digest listed twice, the digest of a published placeholder key), no
key from it is accepted until it is fixed; the admin key from the environment still works.
``broken`` says so (``/readyz`` and the ``agent_api_keys_file_valid`` metric report it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import yaml
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from orchestrators.models import DNS1123_LABEL

from .keyrules import PLACEHOLDER_DIGESTS

__all__ = ["KeyRing", "Principal", "Role", "hash_key", "presented_key"]


class Role(StrEnum):
    ADMIN = "admin"  # every owner's agents, may filter and act by owner
    OPERATOR = "operator"  # its own owner's agents: read and manage
    VIEWER = "viewer"  # its own owner's agents: read and logs only


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller behind a valid key."""

    key_name: str
    owner: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def can_write(self) -> bool:
        return self.role in (Role.ADMIN, Role.OPERATOR)


class _KeyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128)
    owner: str = Field(pattern=DNS1123_LABEL)
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    disabled: bool = False


class _KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[_KeyEntry]

    @model_validator(mode="after")
    def _digests_are_unambiguous(self) -> _KeysFile:
        digests = [entry.sha256 for entry in self.keys]
        if len(set(digests)) != len(digests):
            # One entry may disable a key that another still grants: refuse both.
            raise ValueError("a key digest is listed more than once")
        if PLACEHOLDER_DIGESTS & set(digests):
            raise ValueError("an entry is the digest of the published placeholder key")
        return self


def presented_key(authorization: str, x_api_key: str) -> str | None:
    """The key a request presents: ``Authorization: Bearer <key>`` or ``X-API-Key``."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return x_api_key or None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """Resolves a presented key to a ``Principal``; reloads the keys file when it changes."""

    def __init__(self, admin_key: SecretStr | None, admin_owner: str, keys_file: Path | None):
        self._admin: list[tuple[str, Principal]] = []
        if admin_key is not None:
            principal = Principal("admin", admin_owner, Role.ADMIN)
            self._admin.append((hash_key(admin_key.get_secret_value()), principal))
        self._file = keys_file
        # (mtime, size) of the file last read; None: never read, or gone when last looked.
        self._stamp: tuple[float, int] | None = None
        self._from_file: list[tuple[str, Principal]] = []
        self._broken = False
        self._lock = threading.Lock()
        if keys_file is not None:
            self._load(strict=True)

    @property
    def broken(self) -> bool:
        """True while a keys file is configured but grants nothing because it is bad or gone.

        Checks the file first, so that it is current even when no request came in."""
        self._maybe_reload()
        return self._broken

    def _stat(self) -> tuple[float, int] | None:
        assert self._file is not None
        try:
            stat = self._file.stat()
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size)

    def _load(self, *, strict: bool) -> None:
        assert self._file is not None
        stamp = self._stat()
        try:
            text = self._file.read_text()
            data = (
                yaml.safe_load(text) if self._file.suffix in (".yaml", ".yml") else json.loads(text)
            )
            parsed = _KeysFile.model_validate(data)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            if strict:
                raise ValueError(
                    f"keys file {self._file} is unreadable: {type(exc).__name__}"
                ) from exc
            # Fail closed: a key the current file does not grant is refused, so a key that
            # was disabled or removed in a file that then broke does not come back.
            self._from_file = []
            self._broken = True
            self._stamp = stamp
            logger.error(
                "keys file {} is unreadable ({}); no key from it is accepted until it is fixed",
                self._file,
                type(exc).__name__,
            )
            return
        self._from_file = [
            (entry.sha256, Principal(entry.name, entry.owner, entry.role))
            for entry in parsed.keys
            if not entry.disabled
        ]
        self._broken = False
        self._stamp = stamp
        logger.info("loaded {} enabled keys from {}", len(self._from_file), self._file)

    def reload(self) -> None:
        """Re-read the keys file now (on SIGHUP); a broken file grants nothing."""
        if self._file is not None:
            with self._lock:
                self._load(strict=False)

    def _maybe_reload(self) -> None:
        if self._file is None:
            return
        stamp = self._stat()
        if stamp is None:
            if not self._broken or self._stamp is not None:
                with self._lock:
                    self._load(strict=False)  # gone: fails closed
            return
        if stamp != self._stamp:
            with self._lock:
                self._load(strict=False)

    def authenticate(self, presented: str) -> Principal | None:
        """The principal for ``presented``, or None. Compares against every digest."""
        self._maybe_reload()
        digest = hash_key(presented)
        found: Principal | None = None
        for known, principal in self._admin + self._from_file:
            if hmac.compare_digest(known, digest) and found is None:
                found = principal
        return found

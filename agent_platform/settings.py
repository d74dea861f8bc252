"""The one settings class of agent-api, read from the environment and an optional ``.env``.

Unsafe configurations are refused here, before anything starts: no key at all, a weak or
placeholder key (``keyrules``), or an unknown orchestrator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrators.config import DockerConfig, KubernetesConfig
from orchestrators.models import DNS1123_LABEL, Resources

from .keyrules import MIN_KEY_LENGTH, weakness

__all__ = ["Settings"]


class Settings(BaseSettings, DockerConfig, KubernetesConfig):
    """Every variable the service reads. Names are ``AGENT_API_<FIELD>`` unless noted.

    The backends' knobs are declared in ``orchestrators.config`` and inherited: a field is
    written once, there or here (what only the HTTP layer reads).
    """

    model_config = SettingsConfigDict(
        env_prefix="AGENT_API_", env_file=".env", extra="ignore", frozen=True
    )

    key: SecretStr | None = Field(
        default=None,
        description=f"the admin API key (AGENT_API_KEY); at least {MIN_KEY_LENGTH} random "
        "characters, never the .env.example placeholder",
    )
    owner: str = Field(
        default="admin", pattern=DNS1123_LABEL, description="owner recorded for the admin key"
    )
    keys_file: Path | None = Field(
        default=None, description="JSON or YAML file of further keys (hashed), see README"
    )
    orchestrator: Literal["docker", "kubernetes"] = Field(
        default="docker", validation_alias=AliasChoices("ORCHESTRATOR", "AGENT_API_ORCHESTRATOR")
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)

    max_follows_per_key: int = Field(
        default=4, ge=1, description="log streams one key may follow at once (429 past it)"
    )
    max_follows_per_owner: int = Field(
        default=8, ge=1, description="log streams one owner's keys may follow at once"
    )
    follow_max_seconds: float = Field(
        default=3600.0,
        gt=0,
        description="how long one follow may last; then it ends and clients reconnect with since=",
    )
    retry_after: int = Field(default=5, ge=1, description="Retry-After seconds on 503")
    max_event_streams: int = Field(
        default=256, ge=1, le=65536, description="event streams (GET /v1/events) open at once"
    )
    max_event_streams_per_key: int = Field(
        default=4, ge=1, description="event streams one key may hold open (429 past it)"
    )
    max_event_streams_per_owner: int = Field(
        default=8, ge=1, description="event streams one owner's keys may hold open"
    )
    event_history: int = Field(
        default=10_000, ge=16, le=1_000_000, description="events kept for resumes (per replica)"
    )
    event_heartbeat_seconds: float = Field(
        default=15.0, gt=0, le=300, description="a comment line on an idle event stream"
    )
    live_reads: bool = Field(
        default=True,
        description="answer list and get from the watch-fed model (false: every read asks "
        "the engine)",
    )

    reserved_names: list[str] = Field(
        default_factory=list,
        description="agent names refused besides agent-api and sol (the platform's services); "
        "JSON list",
    )

    default_cpus: float = Field(default=1.0, gt=0)
    default_memory_mb: int = Field(default=512, ge=6)
    default_pids: int = Field(default=256, ge=1)
    max_cpus: float = Field(default=4.0, gt=0)
    max_memory_mb: int = Field(default=8192, ge=6)
    max_pids: int = Field(default=4096, ge=1)
    allowed_images: list[str] = Field(
        default_factory=lambda: ["*"], description="glob patterns; JSON list in the env"
    )

    sweep_interval: float = Field(
        default=10.0, ge=0, description="seconds between TTL/leftover sweeps; 0: never sweep"
    )
    max_agents_per_owner: int = Field(
        default=100, ge=0, description="agents one owner may have at once; 0: no limit"
    )
    max_body_bytes: int = Field(default=262_144, ge=1024, description="request body limit")
    max_spawn_env_bytes: int = Field(
        default=65_536,
        ge=1024,
        description="bytes of env, secrets and labels (names and values) in one spawn; 422 past it",
    )
    agent_cache_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=0,
        description="budget of the built agent views kept in memory (least recently used go)",
    )
    keep_alive: int = Field(
        default=30,
        ge=1,
        description="seconds an idle HTTP keep-alive connection stays open; above any client's "
        "pool idle time, so a client never reuses a connection the server is closing",
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="seconds a client has to send a request's headers (then it is disconnected)",
    )
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="seconds a client has to send a request's body, from the end of its headers",
    )
    max_connections: int = Field(
        default=500,
        ge=1,
        description="open HTTP connections; past it a new one is answered 503 and closed",
    )
    rate_limit_per_minute: float = Field(
        default=0, ge=0, description="requests a minute per key; 0: no limit"
    )
    rate_limit_burst: int = Field(default=30, ge=1)
    audit_file: Path | None = Field(
        default=None, description="also append audit records (JSON lines) to this file"
    )

    # -- limits that keep one key or owner from starving the others (README "Limits") ----
    max_slow_calls_per_key: int = Field(
        default=4, ge=1, le=1024, description="stops/restarts one key may have in flight"
    )
    max_slow_calls_per_owner: int = Field(
        default=8, ge=1, le=4096, description="stops/restarts in flight on one owner's agents"
    )
    max_cpus_per_owner: float | None = Field(
        default=None, gt=0, description="CPUs all of one owner's agents may ask for; unset: off"
    )
    max_memory_mb_per_owner: int | None = Field(
        default=None, ge=6, description="MiB all of one owner's agents may ask for; unset: off"
    )

    log_level: str = "INFO"
    log_json: bool = True

    cursor_secret: SecretStr | None = Field(
        default=None,
        description="signs list cursors; default: derived from AGENT_API_KEY (the same on "
        "every replica), or random per process without an admin key",
    )
    expose_metrics: bool = Field(default=True, description="serve /metrics without a key")
    expose_openapi: bool = Field(default=True, description="serve /openapi.json without a key")
    expose_docs: bool = Field(
        default=False, description="serve /docs and /redoc (needs AGENT_API_EXPOSE_OPENAPI)"
    )

    @field_validator("key")
    @classmethod
    def _key_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        reason = weakness(value.get_secret_value())
        if reason is not None:
            raise ValueError(f"AGENT_API_KEY is refused: {reason}")
        return value

    @field_validator("cursor_secret")
    @classmethod
    def _cursor_secret_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and (reason := weakness(value.get_secret_value())) is not None:
            raise ValueError(f"AGENT_API_CURSOR_SECRET is refused: {reason}")
        return value

    @model_validator(mode="after")
    def _needs_a_key(self) -> Settings:
        if self.key is None and self.keys_file is None:
            raise ValueError(
                "no API key configured: set AGENT_API_KEY (or AGENT_API_KEYS_FILE); "
                "the service does not run without authentication"
            )
        if self.expose_docs and not self.expose_openapi:
            raise ValueError(
                "AGENT_API_EXPOSE_DOCS needs AGENT_API_EXPOSE_OPENAPI: the docs page reads it"
            )
        for field in ("cpus", "memory_mb", "pids"):
            if getattr(self, f"default_{field}") > getattr(self, f"max_{field}"):
                raise ValueError(f"AGENT_API_DEFAULT_{field.upper()} exceeds its maximum")
        return self

    @property
    def default_resources(self) -> Resources:
        return Resources(
            cpus=self.default_cpus, memory_mb=self.default_memory_mb, pids=self.default_pids
        )

    @property
    def max_resources(self) -> Resources:
        return Resources(cpus=self.max_cpus, memory_mb=self.max_memory_mb, pids=self.max_pids)

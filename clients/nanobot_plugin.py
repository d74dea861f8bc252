"""``ManageAgentsTool``: RemoteAgentManager as a nanobot tool plugin (``nanobot.tools``).

Installed with the client's ``nanobot`` extra, the entry point ``manage_agents`` in the
``nanobot.tools`` group makes a stock ``nanobot agent`` / ``nanobot gateway`` load this
tool through its ``ToolLoader``: no launcher code of the user's. Its settings come from
nanobot's config (``tools.agentApi``: ``url``, ``key``, ``enable``; ``${VAR}`` references
are read from the environment), else from ``AGENT_API_URL`` and ``AGENT_API_KEY``.
Without a key the tool stays out of the registry and says so in nanobot's log.

Failures come back as ``ToolResult.error`` (the agent loop then tells the model its call
failed); the schema is strict, so nanobot's registry refuses an argument the tool does
not define before ``execute`` runs. Importing this module needs nanobot-ai 0.3.x.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from loguru import logger
from nanobot.agent.tools.base import Tool, ToolResult
from nanobot.agent.tools.context import ToolContext
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from .config import ENV_KEY, ENV_URL, resolve_key, resolve_url
from .errors import safe_url
from .nanobot_tool import RemoteAgentManager

__all__ = ["CONFIG_KEY", "AgentApiToolConfig", "ManageAgentsTool", "settings_from"]

CONFIG_KEY = "agentApi"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class AgentApiToolConfig(BaseModel):
    """``tools.agentApi`` in nanobot's config; every field optional."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    enable: bool = True
    url: str | None = None
    key: str | None = Field(default=None, repr=False)
    timeout: float = Field(default=60.0, gt=0)
    max_log_chars: int = Field(
        default=4000, gt=0, validation_alias=AliasChoices("maxLogChars", "max_log_chars")
    )


def _expand(value: Any) -> Any:
    """``${VAR}`` references from the environment (unset ones become empty), as nanobot does."""
    if isinstance(value, str):
        return _ENV_REF.sub(lambda match: os.environ.get(match.group(1), ""), value)
    return value


def _section_in_context(ctx: ToolContext) -> Any:
    """The section, when this nanobot's ToolsConfig keeps it (as an attribute or an extra)."""
    config = ctx.config
    found = getattr(config, "agent_api", None)
    if found is not None:
        return found
    extra = getattr(config, "model_extra", None) or {}
    return extra.get(CONFIG_KEY, extra.get("agent_api"))


def _section_in_file() -> Any:
    """The section in nanobot's config file: nanobot 0.3.x's schema drops unknown tool keys."""
    try:
        from nanobot.config.loader import get_config_path

        raw = json.loads(Path(get_config_path()).read_text(encoding="utf-8"))
    except (OSError, ValueError, ImportError):
        return None
    tools = raw.get("tools") if isinstance(raw, dict) else None
    if not isinstance(tools, dict):
        return None
    return tools.get(CONFIG_KEY, tools.get("agent_api"))


def settings_from(ctx: ToolContext) -> AgentApiToolConfig:
    """The tool's settings: nanobot's config first, then AGENT_API_URL / AGENT_API_KEY."""
    section = _section_in_context(ctx)
    if section is None:
        section = _section_in_file()
    if isinstance(section, BaseModel):
        section = section.model_dump()
    values = {k: _expand(v) for k, v in (section or {}).items()} if section else {}
    config = AgentApiToolConfig.model_validate(values)
    return config.model_copy(
        update={"url": resolve_url(config.url or None), "key": resolve_key(config.key or None)}
    )


class ManageAgentsTool(RemoteAgentManager, Tool):
    """The ``manage_agents`` tool, loaded by nanobot from the ``nanobot.tools`` entry point."""

    config_key = CONFIG_KEY

    @classmethod
    def config_cls(cls) -> type[BaseModel]:
        return AgentApiToolConfig

    @classmethod
    def enabled(cls, ctx: ToolContext) -> bool:
        try:
            settings = settings_from(ctx)
        except PydanticValidationError as exc:
            fields = ", ".join(".".join(map(str, error["loc"])) for error in exc.errors())
            logger.warning(
                "manage_agents tool disabled: tools.{} in nanobot's config is invalid ({})",
                CONFIG_KEY,
                fields,
            )
            return False
        if not settings.enable:
            logger.info("manage_agents tool disabled: tools.{}.enable is false", CONFIG_KEY)
            return False
        if not settings.key:
            logger.warning(
                "manage_agents tool disabled: no agent-api key. Set {} (and {}) in nanobot's "
                "environment, or tools.{}.key (and url) in nanobot's config",
                ENV_KEY,
                ENV_URL,
                CONFIG_KEY,
            )
            return False
        return True

    @classmethod
    def create(cls, ctx: ToolContext) -> ManageAgentsTool:
        settings = settings_from(ctx)
        tool = cls(
            settings.url,
            settings.key,
            timeout=settings.timeout,
            max_log_chars=settings.max_log_chars,
        )
        logger.info("manage_agents tool enabled for agent-api at {}", safe_url(tool.url))
        return tool

    async def execute(self, **kwargs: Any) -> ToolResult:
        answer = await self.run(**kwargs)
        return ToolResult.error(answer.text) if answer.is_error else ToolResult(answer.text)

"""``RemoteAgentManager``: the agent-fleet tool, in nanobot's tool shape, without nanobot.

It has nanobot's tool interface (``name``, ``description``, ``parameters`` as a strict
JSON Schema, ``async execute(**kwargs)``, ``to_schema()`` in the OpenAI function-tool
form) and imports nothing of nanobot: ``clients.nanobot_plugin`` makes it a nanobot
``Tool`` and ``clients.mcp_server`` serves the same actions over MCP. One tool, an
``action`` enum, and the arguments each action needs. ``run`` answers with an
``Answer`` (text and whether it is an error); ``execute`` with the text alone, errors
starting with ``Error:``. It never raises into the agent loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import aclosing, asynccontextmanager
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

from .async_client import AsyncAgentClient
from .changes import ChangeFeed
from .config import DEFAULT_TIMEOUT, resolve_key, resolve_url
from .errors import AgentAPIError, ValidationError, WaitTimeoutError, safe_url
from .models import Agent, AgentStatus, ResourceRequest, WaitUntil
from .retry import RetryPolicy
from .tool_text import (
    describe_agent,
    describe_change,
    describe_changes,
    describe_list,
    describe_logs,
    describe_state,
    describe_stats,
    describe_wait,
    explain,
)

__all__ = ["ACTIONS", "Answer", "RemoteAgentManager"]

ACTIONS = (
    "spawn",
    "list",
    "status",
    "start",
    "stop",
    "restart",
    "delete",
    "logs",
    "update",
    "stats",
    "wait",
    "changes",
)
_NEEDS: dict[str, tuple[str, ...]] = {
    "spawn": ("name", "image"),
    "list": (),
    "changes": (),
    **{action: ("name",) for action in ACTIONS[2:-1]},
}
_DEFAULT_TAIL = 50
_DEFAULT_WAIT = 60
_MAX_TAIL = 500
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}

_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {
            "type": "string",
            "enum": list(ACTIONS),
            "description": (
                "What to do. spawn: create and start a new agent (needs name and image). "
                "list: your agents and their status. status: the details of one agent. "
                "start, stop, restart: change whether it runs. delete: remove it and its "
                "workspace for good. logs: its recent output. update: change a running "
                "agent (cpus and memory_mb change in place; image, command, env, secrets, "
                "labels restart it, keeping its workspace). stats: what it uses now (CPU, "
                "memory, processes). "
                "wait: until it has exited (or runs, or is stopped: see until), then its "
                "status and exit code. "
                "changes: what happened to your agents (created, started, stopped, exited, "
                "failed, deleted...) since you last called changes; it never waits."
            ),
        },
        "name": {
            "type": "string",
            "description": (
                "The agent's name (or id); needed by every action except list and changes. "
                "For spawn: "
                "lowercase letters, digits and '-', at most 63 characters, unique among "
                "your agents."
            ),
        },
        "image": {
            "type": "string",
            "description": "spawn, update: the container image to run, e.g. hive/nanobot:latest.",
        },
        "command": {
            "type": "array",
            "items": {"type": "string"},
            "description": (
                "spawn: the command and its arguments, one per item, e.g. "
                '["python", "-m", "worker"]; omit it to run the image\'s default.'
            ),
        },
        "env": {
            **_STRING_MAP,
            "description": (
                "spawn, update: environment variables. Not for secrets: these are shown back."
            ),
        },
        "secrets": {
            **_STRING_MAP,
            "description": (
                "spawn, update: secret environment variables such as API keys (update: set "
                "or rotate them); only their names are ever shown back."
            ),
        },
        "labels": {
            **_STRING_MAP,
            "description": (
                "spawn, update: labels to put on the agent. list: only agents with all these "
                "labels."
            ),
        },
        "status": {
            "type": "string",
            "enum": [status.value for status in AgentStatus],
            "description": "list: only agents in this status.",
        },
        "cpus": {
            "type": "number",
            "description": (
                "spawn, update: CPU limit, e.g. 0.5; omit it for the platform's default."
            ),
        },
        "memory_mb": {
            "type": "integer",
            "description": "spawn, update: memory limit in MB; omit it for the platform's default.",
        },
        "workspace": {
            "type": "boolean",
            "description": (
                "spawn: give the agent a /workspace volume that survives stop and start "
                "(deleted with the agent)."
            ),
        },
        "restart_policy": {
            "type": "string",
            "enum": ["no", "on-failure", "unless-stopped", "always"],
            "description": (
                "spawn, update: what happens when the agent exits; default unless-stopped."
            ),
        },
        "ttl_seconds": {
            "type": "integer",
            "minimum": 1,
            "description": (
                "spawn: stop the agent automatically after this many seconds (for temporary "
                "work); omit it to keep the agent until you stop it. start: give an agent "
                "whose time limit passed this many more seconds, then start it."
            ),
        },
        "timeout": {
            "type": "integer",
            "minimum": 0,
            "maximum": 3600,
            "description": (
                "stop, restart: seconds to exit cleanly before it is killed. wait: seconds "
                f"to wait at most (default {_DEFAULT_WAIT})."
            ),
        },
        "until": {
            "type": "string",
            "enum": ["exited", "running", "stopped"],
            "description": (
                "wait: exited (default: its process ended, with an exit code), running, or "
                "stopped (not running for any reason)."
            ),
        },
        "tail": {
            "type": "integer",
            "minimum": 1,
            "maximum": _MAX_TAIL,
            "description": f"logs: how many of the last lines to return (default {_DEFAULT_TAIL}).",
        },
    },
    "required": ["action"],
    # Strict: an argument the tool does not define is refused, never silently dropped.
    "additionalProperties": False,
}

_DESCRIPTION = (
    "Manage your own agents: containers that run on the agent platform, reached over its "
    "HTTP API (never run docker yourself). Spawn a new agent from an image, list your "
    "agents, check one agent's status, start, stop or restart it, read its recent logs, "
    "wait for it to finish, see what changed since you last looked, or delete it for good. "
    "Agents are addressed by the name given at spawn. Every answer is short text; an "
    "answer that starts with 'Error:' says what went wrong and what to do next."
)

Handler = Callable[[AsyncAgentClient, Mapping[str, Any]], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Answer:
    """What one call of the tool says, and whether the call failed."""

    text: str
    is_error: bool = False


def _refused(text: str) -> Answer:
    return Answer(text, is_error=True)


def _integer(value: Any, what: str, default: int | None) -> int | None:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{what} must be a whole number", code="invalid_request") from None


def _command(value: Any) -> list[str] | None:
    if value is None or value == []:
        return None
    if isinstance(value, list) and all(isinstance(part, str) for part in value):
        return value
    raise ValidationError(
        "command must be a list of strings, one argument per item", code="invalid_request"
    )


def _limits(args: Mapping[str, Any]) -> ResourceRequest | None:
    limits = {k: args[k] for k in ("cpus", "memory_mb") if args.get(k) is not None}
    return ResourceRequest.model_validate(limits) if limits else None


class RemoteAgentManager:
    """The agent-fleet tool: one ``action`` per call, answers as text.

    ``url`` and ``key`` default to ``AGENT_API_URL`` and ``AGENT_API_KEY``. Each call
    opens its own client (nanobot gives tools no close hook) unless ``client`` is given,
    which the caller then owns and closes. The tool remembers where ``changes`` last
    looked (in ``feed``, which a caller may keep across instances), so keep one instance
    per conversation.
    """

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        client: AsyncAgentClient | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_log_chars: int = 4000,
        feed: ChangeFeed | None = None,
    ) -> None:
        self._url = client.url if client else resolve_url(url)
        self._key = resolve_key(key)
        self._client = client
        self._retry = retry
        self._timeout = timeout
        self._max_log_chars = max_log_chars
        self._feed = feed or ChangeFeed()
        self._handlers: dict[str, Handler] = {
            "spawn": self._spawn,
            "list": self._list,
            "status": self._status,
            "start": self._start,
            "stop": self._stop,
            "restart": self._restart,
            "delete": self._delete,
            "logs": self._logs,
            "wait": self._wait,
            "update": self._update,
            "stats": self._stats,
            "changes": self._changes,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self._url!r})"

    @property
    def url(self) -> str:
        """The agent-api base URL this tool talks to."""
        return self._url

    @property
    def name(self) -> str:
        return "manage_agents"

    @property
    def description(self) -> str:
        return _DESCRIPTION

    @property
    def parameters(self) -> dict[str, Any]:
        return deepcopy(_PARAMETERS)

    def to_schema(self) -> dict[str, Any]:
        """The OpenAI function-tool form, as nanobot sends it to the model."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    async def execute(self, **kwargs: Any) -> str:
        """Run one action; never raises (an error comes back as a sentence)."""
        return (await self.run(**kwargs)).text

    async def run(self, **kwargs: Any) -> Answer:
        """Run one action and say whether it failed; never raises."""
        action = kwargs.get("action")
        if not isinstance(action, str) or action not in self._handlers:
            return _refused(f"Error: unknown action {action!r}. Use one of: {', '.join(ACTIONS)}.")
        unknown = sorted(set(kwargs) - set(_PARAMETERS["properties"]))
        if unknown:
            return _refused(
                f"Error: this tool has no parameter {', '.join(map(repr, unknown))}; nothing "
                f"was done. Call again without it (parameters: "
                f"{', '.join(_PARAMETERS['properties'])})."
            )
        handler = self._handlers[action]
        if kwargs.get("name") is not None:
            kwargs["name"] = str(kwargs["name"]).strip()
        missing = [arg for arg in _NEEDS[action] if not kwargs.get(arg)]
        if missing:
            return _refused(
                f"Error: action '{action}' needs {' and '.join(missing)}. "
                f"Call again with {', '.join(missing)} set."
            )
        try:
            async with self._session() as client:
                return Answer(await handler(client, kwargs))
        except AgentAPIError as exc:
            return _refused(explain(exc, name=kwargs.get("name"), url=safe_url(self._url)))
        except Exception as exc:  # the agent loop must never see an exception
            return _refused(
                f"Error: action '{action}' failed unexpectedly ({type(exc).__name__}). Try "
                "once more; if it fails again, tell the user."
            )

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncAgentClient]:
        if self._client is not None:
            yield self._client
            return
        async with AsyncAgentClient(
            self._url, self._key, retry=self._retry, timeout=self._timeout
        ) as client:
            yield client

    async def _spawn(self, client: AsyncAgentClient, args: Mapping[str, Any]) -> str:
        limits = _limits(args)
        agent = await client.spawn(
            args["name"],
            args["image"],
            command=_command(args.get("command")),
            env=args.get("env"),
            secrets=args.get("secrets"),
            labels=args.get("labels"),
            resources=limits,
            restart_policy=args.get("restart_policy"),
            workspace=args.get("workspace"),
            ttl_seconds=_integer(args.get("ttl_seconds"), "ttl_seconds", None),
        )
        return describe_state(agent, "was spawned from " + agent.image)

    async def _list(self, client: AsyncAgentClient, args: Mapping[str, Any]) -> str:
        status, labels = args.get("status"), args.get("labels")
        agents: list[Agent] = [
            agent async for agent in client.iter_agents(status=status, labels=labels)
        ]
        return describe_list(agents, filtered=bool(status or labels))

    async def _status(self, client: AsyncAgentClient, args: Mapping[str, Any]) -> str:
        return describe_agent(await client.get(args["name"]))

    async def _start(self, client: AsyncAgentClient, args: Mapping[str, Any]) -> str:
        ttl = _integer(args.get("ttl_seconds"), "ttl_seconds", None)
        if ttl is not None:
            await client.renew(args["name"], ttl_seconds=ttl)
        return describe_state(await client.start(args["name"]), "was started")

    async def _stop(self, client: AsyncAgentClient, args: Mapping[str, Any]) -> str:
        grace = _integer(args.get("timeout"), "timeout", None)
        return describe_state(await client.stop(args["name"], timeout=grace), "was stopped")

    async def _restart(self, client: AsyncAgentClient, args: Mapping[str, Any]) -> str:
        grace = _integer(args.get("timeout"), "timeout", None)
        return describe_state(await client.restart(args["name"], timeout=grace), "was restarted")

    async def _delete(self, client: AsyncAgentClient, args: Mapping[str, Any]) -> str:
        await client.delete(args["name"])
        return f"Agent '{args['name']}' was deleted, with its workspace volume if it had one."

    async def _logs(self, client: AsyncAgentClient, args: Mapping[str, Any]) -> str:
        tail = _integer(args.get("tail"), "tail", _DEFAULT_TAIL) or _DEFAULT_TAIL
        tail = max(1, min(tail, _MAX_TAIL))
        async with aclosing(client.logs(args["name"], tail=tail)) as stream:
            lines = [line async for line in stream]
        return describe_logs(args["name"], lines, max_chars=self._max_log_chars)

    async def _wait(self, client: AsyncAgentClient, args: Mapping[str, Any]) -> str:
        until: WaitUntil
        match args.get("until") or "exited":
            case "exited" | "running" | "stopped" as chosen:
                until = chosen
            case _:
                raise ValidationError(
                    "until must be exited, running or stopped", code="invalid_request"
                )
        seconds = _integer(args.get("timeout"), "timeout", _DEFAULT_WAIT) or _DEFAULT_WAIT
        try:
            agent = await client.wait(args["name"], until=until, timeout=seconds)
        except WaitTimeoutError:
            return (
                f"Agent '{args['name']}' is not {until} yet after {seconds} s; it is still "
                "working. Call wait again to keep waiting, or status to look at it."
            )
        return describe_wait(agent)

    async def _update(self, client: AsyncAgentClient, args: Mapping[str, Any]) -> str:
        result = await client.update(
            args["name"],
            image=args.get("image"),
            command=_command(args.get("command")),
            env=args.get("env"),
            secrets=args.get("secrets"),
            labels=args.get("labels"),
            resources=_limits(args),
            restart_policy=args.get("restart_policy"),
            ttl_seconds=_integer(args.get("ttl_seconds"), "ttl_seconds", None),
        )
        return describe_change(result)

    async def _stats(self, client: AsyncAgentClient, args: Mapping[str, Any]) -> str:
        return describe_stats(args["name"], await client.stats(args["name"]))

    async def _changes(self, client: AsyncAgentClient, args: Mapping[str, Any]) -> str:
        seen = await self._feed.read(client)
        agents = [agent async for agent in client.iter_agents()] if seen.lost else []
        return describe_changes(seen.events, first=seen.first, lost=seen.lost, agents=agents)

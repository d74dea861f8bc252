"""The agent tools as an MCP server (official ``mcp`` SDK), over stdio or streamable HTTP.

Any MCP client (nanobot's MCP support, editors, other agent frameworks) gets the actions
of the ``manage_agents`` tool, one MCP tool each: ``spawn_agent``, ``list_agents``,
``agent_status``, ``start_agent``, ``stop_agent``, ``restart_agent``, ``agent_logs``,
``wait_agent``, ``agent_changes``, ``delete_agent``, ``update_agent``, ``agent_stats``.
Each call goes to agent-api with a key, so a caller sees and touches only what that key
may: over HTTP the caller's own ``Authorization: Bearer`` key when it sends one, else
the key the server was started with (``AGENT_API_KEY``). A failed call is an MCP tool
error (``isError``) whose text says what to do next; an argument a tool does not define
is refused. ``agent_changes`` remembers where it last looked per key (the latest
``_FEEDS`` keys, known by a hash), for as long as the server runs. Run it with
``agentctl mcp`` (needs the ``mcp`` extra).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from mcp.server.fastmcp import Context, FastMCP
from mcp.server.fastmcp.tools import Tool
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import ConfigDict, Field

from .changes import ChangeFeed
from .config import DEFAULT_TIMEOUT, resolve_key, resolve_url
from .nanobot_tool import RemoteAgentManager

__all__ = ["TOOL_NAMES", "Transport", "build_server", "serve"]

Transport = Literal["stdio", "http"]

Name = Annotated[str, Field(description="The agent's name (or id).")]
Grace = Annotated[
    int | None, Field(ge=0, le=3600, description="Seconds to exit cleanly before it is killed.")
]
Strings = dict[str, str] | None
RestartPolicy = Literal["no", "on-failure", "unless-stopped", "always"]
StatusName = Literal["pending", "running", "stopped", "restarting", "exited", "failed", "unknown"]

_INSTRUCTIONS = (
    "Manage agents (containers) on the agent platform through its HTTP API: spawn, list, "
    "status, start, stop, restart, logs, wait, changes, delete. Agents are addressed by the "
    "name given at spawn. A failed call says what went wrong and what to do next."
)

_FEEDS = 256  # keys whose place in the event stream is remembered; the oldest is forgotten
_KeyFor = Callable[[Context[Any, Any, Any]], str | None]
_Run = Callable[..., Awaitable[CallToolResult]]


def _bearer(ctx: Context[Any, Any, Any]) -> str | None:
    """The key the HTTP caller sent, if any (stdio has no request)."""
    request = ctx.request_context.request
    headers = getattr(request, "headers", None)
    if headers is None:
        return None
    scheme, _, token = str(headers.get("authorization", "")).partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _runner(url: str, default_key: str | None, timeout: float) -> _Run:
    feeds: dict[str, ChangeFeed] = {}

    def feed_of(key: str | None) -> ChangeFeed:
        mark = hashlib.sha256((key or "").encode()).hexdigest()
        feed = feeds.pop(mark, None) or ChangeFeed()
        feeds[mark] = feed  # the most recently used last
        if len(feeds) > _FEEDS:
            del feeds[next(iter(feeds))]
        return feed

    async def run(ctx: Context[Any, Any, Any], action: str, **args: Any) -> CallToolResult:
        given = {k: v for k, v in args.items() if v is not None}
        key = _bearer(ctx) or default_key
        tool = RemoteAgentManager(url, key, timeout=timeout, feed=feed_of(key))
        answer = await tool.run(action=action, **given)
        return CallToolResult(
            content=[TextContent(type="text", text=answer.text)], isError=answer.is_error
        )

    return run


def _tools(run: _Run) -> list[Callable[..., Awaitable[CallToolResult]]]:
    async def spawn_agent(
        ctx: Context[Any, Any, Any],
        name: Annotated[
            str,
            Field(description="Lowercase letters, digits and '-', unique among your agents."),
        ],
        image: Annotated[str, Field(description="The container image, e.g. hive/nanobot:latest.")],
        command: Annotated[
            list[str] | None,
            Field(description="The command and its arguments, one per item; omit for default."),
        ] = None,
        env: Annotated[Strings, Field(description="Environment variables (not secrets).")] = None,
        secrets: Annotated[
            Strings, Field(description="Secret environment variables; only names are shown.")
        ] = None,
        labels: Annotated[Strings, Field(description="Labels to put on the agent.")] = None,
        cpus: Annotated[float | None, Field(gt=0, description="CPU limit, e.g. 0.5.")] = None,
        memory_mb: Annotated[int | None, Field(gt=0, description="Memory limit in MB.")] = None,
        workspace: Annotated[
            bool | None, Field(description="A /workspace volume kept across stop and start.")
        ] = None,
        restart_policy: RestartPolicy | None = None,
        ttl_seconds: Annotated[
            int | None, Field(ge=1, description="Stop the agent after this many seconds.")
        ] = None,
    ) -> CallToolResult:
        """Create and start a new agent from an image."""
        return await run(
            ctx,
            "spawn",
            name=name,
            image=image,
            command=command,
            env=env,
            secrets=secrets,
            labels=labels,
            cpus=cpus,
            memory_mb=memory_mb,
            workspace=workspace,
            restart_policy=restart_policy,
            ttl_seconds=ttl_seconds,
        )

    async def list_agents(
        ctx: Context[Any, Any, Any],
        status: StatusName | None = None,
        labels: Annotated[Strings, Field(description="Only agents with all these labels.")] = None,
    ) -> CallToolResult:
        """Your agents and their status."""
        return await run(ctx, "list", status=status, labels=labels)

    async def agent_status(ctx: Context[Any, Any, Any], name: Name) -> CallToolResult:
        """The details of one agent: status, image, command, limits, labels."""
        return await run(ctx, "status", name=name)

    async def start_agent(
        ctx: Context[Any, Any, Any],
        name: Name,
        ttl_seconds: Annotated[
            int | None, Field(ge=1, description="Give an expired agent this many more seconds.")
        ] = None,
    ) -> CallToolResult:
        """Start a stopped agent."""
        return await run(ctx, "start", name=name, ttl_seconds=ttl_seconds)

    async def stop_agent(
        ctx: Context[Any, Any, Any], name: Name, timeout: Grace = None
    ) -> CallToolResult:
        """Stop a running agent (it can be started again)."""
        return await run(ctx, "stop", name=name, timeout=timeout)

    async def restart_agent(
        ctx: Context[Any, Any, Any], name: Name, timeout: Grace = None
    ) -> CallToolResult:
        """Restart an agent."""
        return await run(ctx, "restart", name=name, timeout=timeout)

    async def agent_logs(
        ctx: Context[Any, Any, Any],
        name: Name,
        tail: Annotated[int | None, Field(ge=1, le=500, description="Last N lines.")] = None,
    ) -> CallToolResult:
        """An agent's recent output."""
        return await run(ctx, "logs", name=name, tail=tail)

    async def wait_agent(
        ctx: Context[Any, Any, Any],
        name: Name,
        until: Annotated[
            Literal["exited", "running", "stopped"],
            Field(description="exited (with its exit code), running, or stopped."),
        ] = "exited",
        timeout: Annotated[
            int | None, Field(ge=1, le=3600, description="Seconds to wait at most.")
        ] = None,
    ) -> CallToolResult:
        """Wait until an agent has exited (or runs, or is stopped); its status and exit code."""
        return await run(ctx, "wait", name=name, until=until, timeout=timeout)

    async def agent_changes(ctx: Context[Any, Any, Any]) -> CallToolResult:
        """What happened to your agents since you last asked (created, started, stopped,
        exited, failed, deleted...); never waits."""
        return await run(ctx, "changes")

    async def delete_agent(ctx: Context[Any, Any, Any], name: Name) -> CallToolResult:
        """Delete an agent and its workspace volume for good."""
        return await run(ctx, "delete", name=name)

    async def update_agent(
        ctx: Context[Any, Any, Any],
        name: Name,
        image: Annotated[str | None, Field(description="A new image (restarts it).")] = None,
        command: Annotated[
            list[str] | None, Field(description="A new command, one argument per item.")
        ] = None,
        env: Annotated[Strings, Field(description="Environment variables to set.")] = None,
        secrets: Annotated[
            Strings, Field(description="Secrets to set or rotate; only names are shown.")
        ] = None,
        labels: Annotated[Strings, Field(description="Labels to set.")] = None,
        cpus: Annotated[float | None, Field(gt=0, description="CPU limit (in place).")] = None,
        memory_mb: Annotated[
            int | None, Field(gt=0, description="Memory limit in MB (in place).")
        ] = None,
        restart_policy: RestartPolicy | None = None,
        ttl_seconds: Annotated[
            int | None, Field(ge=1, description="Stop the agent this many seconds from now.")
        ] = None,
    ) -> CallToolResult:
        """Change a running agent: limits change in place, anything else restarts it
        (its workspace is kept)."""
        return await run(
            ctx,
            "update",
            name=name,
            image=image,
            command=command,
            env=env,
            secrets=secrets,
            labels=labels,
            cpus=cpus,
            memory_mb=memory_mb,
            restart_policy=restart_policy,
            ttl_seconds=ttl_seconds,
        )

    async def agent_stats(ctx: Context[Any, Any, Any], name: Name) -> CallToolResult:
        """What an agent uses now: CPU, memory, processes, network."""
        return await run(ctx, "stats", name=name)

    return [
        spawn_agent,
        list_agents,
        agent_status,
        start_agent,
        stop_agent,
        restart_agent,
        agent_logs,
        wait_agent,
        agent_changes,
        delete_agent,
        update_agent,
        agent_stats,
    ]


TOOL_NAMES = (
    "spawn_agent",
    "list_agents",
    "agent_status",
    "start_agent",
    "stop_agent",
    "restart_agent",
    "agent_logs",
    "wait_agent",
    "agent_changes",
    "delete_agent",
    "update_agent",
    "agent_stats",
)
_READ_ONLY = {
    "list_agents",
    "agent_status",
    "agent_logs",
    "agent_stats",
    "wait_agent",
    "agent_changes",
}


def _strict(fn: Callable[..., Awaitable[CallToolResult]]) -> Tool:
    """An MCP tool whose schema and argument check refuse what it does not define."""
    tool = Tool.from_function(
        fn,
        annotations=ToolAnnotations(
            readOnlyHint=fn.__name__ in _READ_ONLY,
            destructiveHint=fn.__name__ == "delete_agent",
            openWorldHint=False,
        ),
    )
    loose = tool.fn_metadata.arg_model
    strict = type(loose.__name__, (loose,), {"model_config": ConfigDict(extra="forbid")})
    tool.fn_metadata = tool.fn_metadata.model_copy(update={"arg_model": strict})
    tool.parameters = {**tool.parameters, "additionalProperties": False}
    return tool


def build_server(
    url: str | None = None,
    key: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    timeout: float = DEFAULT_TIMEOUT,
) -> FastMCP[Any]:
    """The MCP server for agent-api at ``url`` (default ``AGENT_API_URL``)."""
    run = _runner(resolve_url(url), resolve_key(key), timeout)
    return FastMCP(
        "agent-api",
        instructions=_INSTRUCTIONS,
        host=host,
        port=port,
        log_level="WARNING",
        tools=[_strict(fn) for fn in _tools(run)],
    )


def serve(
    transport: Transport = "stdio",
    url: str | None = None,
    key: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
) -> None:
    """Serve until stopped: on stdin/stdout, or streamable HTTP at ``http://host:port/mcp``."""
    server = build_server(url, key, host=host, port=port)
    server.run("stdio" if transport == "stdio" else "streamable-http")

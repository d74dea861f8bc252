"""``agentctl``: manage agents on agent-api from a shell, the way docker and kubectl do.

The server and key come from --url/--key or AGENT_API_URL/AGENT_API_KEY (prefer the
variable for the key: a command line is visible to other users of the machine).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .client import AgentClient
from .config import ENV_KEY, ENV_URL
from .errors import (
    AgentAPIError,
    NotFoundError,
    ServerUnavailableError,
    TransportError,
    UnauthorizedError,
)
from .models import Agent, AgentStats, AgentStatus, EventType, ResourceRequest
from .render import (
    OutputFormat,
    print_agent,
    print_agents,
    print_change,
    print_event,
    print_revisions,
    print_stats,
)
from .retry import RetryPolicy

__all__ = ["app"]

app = typer.Typer(
    name="agentctl",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send requests; the key never leaves this object except in a header."""

    url: str | None
    key: str | None

    def __repr__(self) -> str:
        return f"Target(url={self.url!r})"


class NetworkOption(StrEnum):
    DEFAULT = "default"
    NONE = "none"


class RestartPolicyChoice(StrEnum):
    NO = "no"
    ON_FAILURE = "on-failure"
    UNLESS_STOPPED = "unless-stopped"
    ALWAYS = "always"


def _complete_agent(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Agent names for shell completion; nothing (never an error) when the server is away."""
    params = ctx.find_root().params
    try:
        with AgentClient(
            params.get("url"), params.get("key"), timeout=3, retry=RetryPolicy(attempts=1)
        ) as client:
            agents = list(client.iter_agents())
    except AgentAPIError:
        return []
    return [(a.name, a.status.value) for a in agents if a.name.startswith(incomplete)]


AgentArg = Annotated[
    str, typer.Argument(help="the agent's name or id", autocompletion=_complete_agent)
]
Output = Annotated[
    OutputFormat, typer.Option("--output", "-o", help="table or json", case_sensitive=False)
]
Owner = Annotated[
    str | None, typer.Option("--owner", help="admin keys only: the owner whose agent this is")
]
Grace = Annotated[
    int | None,
    typer.Option("--timeout", "-t", min=0, help="seconds of grace before the agent is killed"),
]


@app.callback()
def main(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(envvar=ENV_URL, show_default=False, help="agent-api base URL"),
    ] = None,
    key: Annotated[
        str | None,
        typer.Option(envvar=ENV_KEY, show_default=False, help="API key"),
    ] = None,
) -> None:
    """Manage agents on agent-api, the way docker and kubectl manage containers.

    The server and the key come from --url and --key, or AGENT_API_URL and AGENT_API_KEY
    (prefer the variable for the key: a command line is visible to other users).
    """
    ctx.obj = Target(url, key)


def _hint(exc: AgentAPIError) -> str | None:
    if isinstance(exc, UnauthorizedError):
        return f"pass --key or set {ENV_KEY}"
    if isinstance(exc, TransportError) and exc.connection_failed:
        return f"is agent-api running there? pass --url or set {ENV_URL}"
    if isinstance(exc, NotFoundError):
        return "agentctl ls lists the agents this key can see"
    if isinstance(exc, ServerUnavailableError) and exc.retry_after is not None:
        return f"try again in {exc.retry_after:g} seconds"
    return None


@contextmanager
def _client(ctx: typer.Context) -> Iterator[AgentClient]:
    """A client for the command; an API error ends the command with exit code 1."""
    target = ctx.find_object(Target) or Target(None, None)
    try:
        with AgentClient(target.url, target.key) as client:
            yield client
    except AgentAPIError as exc:
        typer.echo(f"Error: {exc}", err=True)
        hint = _hint(exc)
        if hint:
            typer.echo(f"hint: {hint}", err=True)
        raise typer.Exit(1) from None


def _pairs(values: list[str] | None, what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint=what)
        pairs[key] = value
    return pairs


def _secrets(values: list[str] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in values or []:
        key, sep, value = item.partition("=")
        if not sep:
            from_env = os.environ.get(key)
            if from_env is None:
                raise typer.BadParameter(
                    f"no value given for {key!r} and ${key} is not set", param_hint="--secret"
                )
            value = from_env
        if not key:
            raise typer.BadParameter("a secret needs a name", param_hint="--secret")
        found[key] = value
    return found


@app.command(no_args_is_help=True)
def spawn(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="the agent's name (DNS label, unique per owner)")],
    image: Annotated[str, typer.Option("--image", "-i", help="the image to run")],
    command: Annotated[
        list[str] | None, typer.Argument(help="command and arguments; put them after --")
    ] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE, repeatable")
    ] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            "-s",
            help="KEY=VALUE, or KEY to take the value from your environment; repeatable; "
            "injected at run time and never shown back",
        ),
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE, repeatable")
    ] = None,
    cpus: Annotated[float | None, typer.Option(help="CPU limit")] = None,
    memory: Annotated[int | None, typer.Option(help="memory limit in MB")] = None,
    pids: Annotated[int | None, typer.Option(help="process limit")] = None,
    restart: Annotated[
        RestartPolicyChoice | None, typer.Option(help="restart policy (server default)")
    ] = None,
    workspace: Annotated[
        bool, typer.Option("--workspace", help="a volume at /workspace that survives restarts")
    ] = False,
    network: Annotated[
        NetworkOption | None,
        typer.Option(help="default: the platform's network; none: no network at all"),
    ] = None,
    ttl: Annotated[
        int | None, typer.Option(min=1, help="seconds after which the server stops the agent")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="repeat a spawn safely: the same key returns the first agent"),
    ] = None,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Create and start an agent: agentctl spawn NAME --image IMAGE [OPTIONS] [-- COMMAND...]."""
    environment = _pairs(env, "--env")
    labels = _pairs(label, "--label")
    secrets = _secrets(secret)
    limits = ResourceRequest.model_validate(
        {
            k: v
            for k, v in {"cpus": cpus, "memory_mb": memory, "pids": pids}.items()
            if v is not None
        }
    )
    with _client(ctx) as client:
        agent = client.spawn(
            name,
            image,
            command=command or None,
            env=environment,
            secrets=secrets,
            labels=labels,
            resources=limits if limits.model_fields_set else None,
            restart_policy=restart.value if restart else None,
            workspace=workspace or None,
            network=network.value if network else None,
            ttl_seconds=ttl,
            idempotency_key=idempotency_key,
        )
    print_agent(agent, output)


@app.command("ls")
def list_agents(
    ctx: typer.Context,
    status: Annotated[
        AgentStatus | None, typer.Option("--status", help="only agents in this status")
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="KEY=VALUE, repeatable: all must match"),
    ] = None,
    owner: Annotated[
        str | None, typer.Option("--owner", help="admin keys only: this owner's agents")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="only print ids")] = False,
    output: Output = OutputFormat.TABLE,
) -> None:
    """List agents, oldest first (every page)."""
    labels = _pairs(label, "--label")
    with _client(ctx) as client:
        agents = list(client.iter_agents(status=status, labels=labels, owner=owner))
    if quiet:
        for agent in agents:
            typer.echo(agent.id)
        return
    print_agents(agents, output)


@app.command()
def get(
    ctx: typer.Context, agent: AgentArg, owner: Owner = None, output: Output = OutputFormat.TABLE
) -> None:
    """Show one agent in detail."""
    with _client(ctx) as client:
        found = client.get(agent, owner=owner)
    print_agent(found, output, detail=True)


@app.command()
def start(
    ctx: typer.Context, agent: AgentArg, owner: Owner = None, output: Output = OutputFormat.TABLE
) -> None:
    """Start an agent (nothing to do if it runs)."""
    with _client(ctx) as client:
        started = client.start(agent, owner=owner)
    print_agent(started, output)


@app.command()
def stop(
    ctx: typer.Context,
    agent: AgentArg,
    timeout: Grace = None,
    owner: Owner = None,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Stop an agent (nothing to do if it is stopped)."""
    with _client(ctx) as client:
        stopped = client.stop(agent, timeout=timeout, owner=owner)
    print_agent(stopped, output)


@app.command()
def restart(
    ctx: typer.Context,
    agent: AgentArg,
    timeout: Grace = None,
    owner: Owner = None,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Restart an agent (starts it if it is stopped)."""
    with _client(ctx) as client:
        restarted = client.restart(agent, timeout=timeout, owner=owner)
    print_agent(restarted, output)


@app.command()
def renew(
    ctx: typer.Context,
    agent: AgentArg,
    ttl: Annotated[int, typer.Argument(min=1, help="seconds from now until it is stopped")],
    owner: Owner = None,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Give an agent spawned with a TTL a new deadline (an expired one can start again)."""
    with _client(ctx) as client:
        renewed = client.renew(agent, ttl_seconds=ttl, owner=owner)
    print_agent(renewed, output, detail=True)


IfMatch = Annotated[
    str | None,
    typer.Option(
        "--if-match", help="only if the agent is still at this revision (else exit 1, 412)"
    ),
]


def _removals(names: list[str] | None) -> dict[str, str | None]:
    return dict.fromkeys(names or [], None)


@app.command(no_args_is_help=True)
def update(
    ctx: typer.Context,
    agent: AgentArg,
    image: Annotated[str | None, typer.Option("--image", "-i", help="a new image")] = None,
    cpus: Annotated[float | None, typer.Option(help="CPU limit (changed in place)")] = None,
    memory: Annotated[
        int | None, typer.Option(help="memory limit in MB (changed in place)")
    ] = None,
    pids: Annotated[int | None, typer.Option(help="process limit (changed in place)")] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="KEY=VALUE to set, repeatable")
    ] = None,
    unset_env: Annotated[
        list[str] | None, typer.Option("--unset-env", help="KEY to remove, repeatable")
    ] = None,
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            "-s",
            help="KEY=VALUE (or KEY, from your environment) to set or rotate, repeatable",
        ),
    ] = None,
    remove_secret: Annotated[
        list[str] | None, typer.Option("--remove-secret", help="KEY to remove, repeatable")
    ] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE to set, repeatable")
    ] = None,
    unset_label: Annotated[
        list[str] | None, typer.Option("--unset-label", help="KEY to remove, repeatable")
    ] = None,
    restart: Annotated[
        RestartPolicyChoice | None, typer.Option(help="restart policy (changed in place)")
    ] = None,
    ttl: Annotated[int | None, typer.Option(min=1, help="a new TTL in seconds, from now")] = None,
    command: Annotated[
        list[str] | None, typer.Argument(help="a new command; put it after --")
    ] = None,
    if_match: IfMatch = None,
    owner: Owner = None,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Change an agent: agentctl update NAME --memory 1024. Limits and the restart policy
    change in place; anything else restarts the agent, keeping its workspace."""
    limits = {"cpus": cpus, "memory_mb": memory, "pids": pids}
    secrets: dict[str, str | None] = {**_secrets(secret), **_removals(remove_secret)}
    with _client(ctx) as client:
        result = client.update(
            agent,
            image=image,
            command=command or None,
            env={**_pairs(env, "--env"), **_removals(unset_env)} or None,
            secrets=secrets or None,
            labels={**_pairs(label, "--label"), **_removals(unset_label)} or None,
            resources={k: v for k, v in limits.items() if v is not None} or None,
            restart_policy=restart.value if restart else None,
            ttl_seconds=ttl,
            if_match=if_match,
            owner=owner,
        )
    print_change(result, output)


@app.command()
def revisions(
    ctx: typer.Context, agent: AgentArg, owner: Owner = None, output: Output = OutputFormat.TABLE
) -> None:
    """An agent's revisions, newest first: what each change changed."""
    with _client(ctx) as client:
        found = client.revisions(agent, owner=owner)
    print_revisions(found, output)


@app.command()
def rollback(
    ctx: typer.Context,
    agent: AgentArg,
    to: Annotated[
        int | None, typer.Option("--to", min=1, help="the revision (default: the previous)")
    ] = None,
    if_match: IfMatch = None,
    owner: Owner = None,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Back to the previous revision's spec (or --to N), as a new revision."""
    with _client(ctx) as client:
        result = client.rollback(agent, revision=to, if_match=if_match, owner=owner)
    print_change(result, output)


def _samples(client: AgentClient, agents: list[Agent]) -> list[tuple[Agent, AgentStats | None]]:
    """One sample per agent, a few at a time (each takes the engine about a second)."""

    def one(agent: Agent) -> AgentStats | None:
        try:
            return client.stats(agent.id, owner=agent.owner)
        except NotFoundError:
            return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(zip(agents, pool.map(one, agents), strict=True))


@app.command()
def top(
    ctx: typer.Context,
    agents: Annotated[
        list[str] | None, typer.Argument(help="names or ids (default: every running agent)")
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="refresh until Ctrl-C")] = False,
    interval: Annotated[
        float, typer.Option(min=1.0, help="seconds between refreshes with --watch")
    ] = 2.0,
    output: Output = OutputFormat.TABLE,
) -> None:
    """What each agent uses, like docker stats: one sample, or --watch to refresh."""
    with _client(ctx) as client:
        while True:
            if agents:
                chosen = [client.get(name) for name in agents]
            else:
                chosen = list(client.iter_agents(status=AgentStatus.RUNNING))
            samples = _samples(client, chosen)
            if watch and output is OutputFormat.TABLE:
                typer.echo("\x1b[2J\x1b[H", nl=False)
            print_stats(samples, output)
            if not watch:
                return
            try:
                time.sleep(interval)
            except KeyboardInterrupt:
                return


@app.command("rm")
def remove(
    ctx: typer.Context,
    agent: AgentArg,
    force: Annotated[
        bool, typer.Option("--force", "-f", help="no error if the agent does not exist")
    ] = False,
    owner: Owner = None,
) -> None:
    """Remove an agent and what it owns (its workspace volume): there is no undo."""
    with _client(ctx) as client:
        client.delete(agent, owner=owner, missing_ok=force)
    typer.echo(agent)


@app.command()
def whoami(ctx: typer.Context, output: Output = OutputFormat.TABLE) -> None:
    """Show the key's name, owner and role (never the key)."""
    with _client(ctx) as client:
        me = client.whoami()
    if output is OutputFormat.JSON:
        typer.echo(me.model_dump_json())
    else:
        typer.echo(f"key {me.key_name}, role {me.role}, owner {me.owner}")


@app.command()
def logs(
    ctx: typer.Context,
    agent: AgentArg,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="keep printing until the agent stops")
    ] = False,
    tail: Annotated[int | None, typer.Option(min=0, help="only the last N lines")] = None,
    since: Annotated[
        str | None, typer.Option(help="RFC 3339, Unix seconds, or a duration like 10m")
    ] = None,
    timestamps: Annotated[
        bool, typer.Option("--timestamps", "-t", help="prefix each line with its time")
    ] = False,
    owner: Owner = None,
) -> None:
    """Print an agent's output."""
    with _client(ctx) as client:
        lines = client.logs(
            agent, tail=tail, since=since, timestamps=timestamps, follow=follow, owner=owner
        )
        try:
            with closing(lines):
                for line in lines:
                    typer.echo(line)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


class UntilChoice(StrEnum):
    RUNNING = "running"
    EXITED = "exited"
    STOPPED = "stopped"


@app.command()
def wait(
    ctx: typer.Context,
    agent: AgentArg,
    until: Annotated[
        UntilChoice,
        typer.Option(help="running; exited (exited or failed); stopped (not running)"),
    ] = UntilChoice.EXITED,
    timeout: Annotated[float, typer.Option(min=0.1, max=3600, help="seconds at most")] = 300,
    owner: Owner = None,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Wait until an agent runs, has exited or is stopped, and show it (with its exit code)."""
    with _client(ctx) as client:
        done = client.wait(agent, until=until.value, timeout=timeout, owner=owner)
    print_agent(done, output, detail=True)


@app.command()
def events(
    ctx: typer.Context,
    agent: Annotated[
        str | None, typer.Option("--agent", "-a", help="only this agent (name or id)")
    ] = None,
    kinds: Annotated[
        list[EventType] | None,
        typer.Option("--type", help="only these event types, repeatable"),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="resume after this event id (printed with -o json)")
    ] = None,
    owner: Annotated[
        str | None, typer.Option("--owner", help="admin keys only: this owner's agents")
    ] = None,
    output: Output = OutputFormat.TABLE,
) -> None:
    """Print the agents' lifecycle events as they happen (Ctrl-C to stop)."""
    with _client(ctx) as client:
        stream = client.events(
            agent=agent,
            types=[kind.value for kind in kinds or ()],
            owner=owner,
            last_event_id=since,
        )
        try:
            with closing(stream):
                for event in stream:
                    print_event(event, output)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


class McpTransport(StrEnum):
    STDIO = "stdio"
    HTTP = "http"


@app.command()
def mcp(
    ctx: typer.Context,
    transport: Annotated[
        McpTransport,
        typer.Option("--transport", case_sensitive=False, help="stdio, or streamable HTTP"),
    ] = McpTransport.STDIO,
    host: Annotated[str, typer.Option(help="http: the address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="http: the port")] = 8765,
) -> None:
    """Serve the agent tools to MCP clients: on stdin/stdout, or at http://HOST:PORT/mcp.

    Over HTTP a caller's own 'Authorization: Bearer KEY' is used when it sends one, else
    the key given here. Needs the mcp extra (pip install 'agent-platform-client[mcp]').
    """
    try:
        from .mcp_server import serve
    except ImportError:
        typer.echo(
            "Error: the MCP server needs the mcp package: pip install 'agent-platform-client[mcp]'",
            err=True,
        )
        raise typer.Exit(1) from None
    target = ctx.find_object(Target) or Target(None, None)
    serve(transport.value, target.url, target.key, host=host, port=port)


SKILL_NAME = "remote-agents"
skill_app = typer.Typer(no_args_is_help=True, help="The nanobot skill that teaches the tool.")
app.add_typer(skill_app, name="skill")


@skill_app.command("install")
def install_skill(
    workspace: Annotated[
        Path,
        typer.Option(help="the nanobot workspace (its skills/ folder gets the skill)"),
    ] = Path("~/.nanobot/workspace"),
) -> None:
    """Put the remote-agents skill where nanobot loads skills: WORKSPACE/skills/remote-agents/."""
    target = workspace.expanduser() / "skills" / SKILL_NAME / "SKILL.md"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).with_name("SKILL.md"), target)
    typer.echo(target)


if __name__ == "__main__":
    app(prog_name="agentctl")

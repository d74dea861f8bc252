"""What the RemoteAgentManager tool says: short agent summaries and one sentence per error.

Written for a language model: each answer says what happened and, for errors, what to do
next. Errors start with ``Error:`` (nanobot appends its own hint to those). Nothing here
ever prints a key or a secret value: the server never returns them and the client's
messages leave inputs out.
"""

from __future__ import annotations

import shlex

from .errors import (
    AgentAPIError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    PolicyViolationError,
    RateLimitedError,
    ServerUnavailableError,
    TransportError,
    UnauthorizedError,
    ValidationError,
)
from .humanize import ago, human_bytes
from .models import Agent, AgentEvent, AgentStats, AgentStatus, ChangeResult

__all__ = [
    "describe_agent",
    "describe_change",
    "describe_changes",
    "describe_list",
    "describe_logs",
    "describe_state",
    "describe_wait",
    "describe_stats",
    "explain",
    "summary_line",
]

_TROUBLED = {AgentStatus.FAILED, AgentStatus.EXITED, AgentStatus.UNKNOWN}


def _status(agent: Agent) -> str:
    return f"{agent.status.value} ({agent.detail})" if agent.detail else agent.status.value


def summary_line(agent: Agent) -> str:
    """``- name: running, image x, created 5 minutes ago``."""
    line = f"- {agent.name}: {_status(agent)}, image {agent.image}, created {ago(agent.created_at)}"
    if agent.labels:
        line += ", labels " + ", ".join(f"{k}={v}" for k, v in sorted(agent.labels.items()))
    return line


def describe_list(agents: list[Agent], *, filtered: bool) -> str:
    if not agents:
        if filtered:
            return "No agents match those filters. Call action 'list' without filters to see all."
        return "You have no agents. Use action 'spawn' to create one."
    heading = "1 agent:" if len(agents) == 1 else f"{len(agents)} agents:"
    return "\n".join([heading, *(summary_line(agent) for agent in agents)])


def _advice(agent: Agent) -> str:
    if agent.status in _TROUBLED:
        return f" Use action 'logs' with name '{agent.name}' to see why."
    return ""


def describe_state(agent: Agent, verb: str) -> str:
    """After spawn, start, stop or restart: what the agent is now."""
    return f"Agent '{agent.name}' {verb}; it is now {_status(agent)}.{_advice(agent)}"


def describe_agent(agent: Agent) -> str:
    """The detail of one agent (action ``status``)."""
    resources = agent.resources
    command = shlex.join(agent.command) if agent.command else "the image's default"
    workspace = "yes" if agent.workspace else "no"
    lines = [
        f"Agent '{agent.name}' (id {agent.id}) is {_status(agent)}.",
        f"Image: {agent.image}; command: {command}.",
        f"Created {ago(agent.created_at)} by owner {agent.owner}; restart policy "
        f"{agent.restart_policy or 'default'}; workspace volume: {workspace}.",
    ]
    if resources:
        lines.append(
            f"Limits: {resources.cpus:g} CPUs, {resources.memory_mb} MB memory, "
            f"{resources.pids} processes."
        )
    if agent.network == "none":
        lines.append("It has no network access.")
    elif agent.address:
        lines.append(
            f"Reach it by the name '{agent.address.host}' on the network '{agent.address.network}'."
        )
    if agent.expires_at:
        lines.append(f"It is stopped automatically at {agent.expires_at.isoformat()}.")
    if agent.labels:
        lines.append("Labels: " + ", ".join(f"{k}={v}" for k, v in sorted(agent.labels.items())))
    if agent.env:
        lines.append("Environment variables: " + ", ".join(sorted(agent.env)) + ".")
    if agent.secret_names:
        lines.append("Secrets (values hidden): " + ", ".join(agent.secret_names) + ".")
    advice = _advice(agent).strip()
    if advice:
        lines.append(advice)
    return "\n".join(lines)


def describe_wait(agent: Agent) -> str:
    """After a wait: what the agent is now and, once it exited, with which code."""
    text = f"Agent '{agent.name}' is now {_status(agent)}"
    if agent.exit_code is not None and agent.status.value != "running":
        text += f"; its process exited with code {agent.exit_code}"
    return f"{text}. Use action 'logs' with name '{agent.name}' to read what it printed."


def _event_line(event: AgentEvent) -> str:
    """One lifecycle event, in a line."""
    who = f"agent '{event.agent.name}'" if event.agent else "the platform"
    text = f"{event.time:%Y-%m-%d %H:%M:%S} UTC: {who} {event.type}"
    if event.by:
        text += f" by {event.by}"
    if event.health:
        text += f" ({event.health})"
    if event.reason:
        text += f" ({event.reason})"
    if event.exit_code is not None:
        text += f" with exit code {event.exit_code}"
    if event.status:
        text += f"; now {event.status}"
    return text


def describe_changes(
    events: list[AgentEvent], *, first: bool, lost: bool, agents: list[Agent], most: int = 30
) -> str:
    """After ``changes``: the events since the last look (``agents``: listed after a loss)."""
    if lost:
        return (
            "Some changes since you last looked are too old for the platform to tell; "
            "here are your agents now (call changes again later for what happens next).\n"
            + describe_list(agents, filtered=False)
        )
    if not events:
        if first:
            return (
                "No recent changes to your agents. From now on, action 'changes' tells "
                "what happened since you last called it."
            )
        return "Nothing changed since you last looked."
    heading = (
        "Recent changes to your agents (the platform keeps only the latest):"
        if first
        else "Changes since you last looked:"
    )
    shown = events[-most:]
    lines = [heading, *(f"- {_event_line(event)}" for event in shown)]
    if len(events) > len(shown):
        lines.insert(1, f"({len(events) - len(shown)} earlier changes not shown)")
    return "\n".join(lines)


def describe_change(result: ChangeResult) -> str:
    """After an update: what changed, and whether the agent was restarted for it."""
    what = ", ".join(result.changes) or "nothing (it already was so)"
    how = (
        "it was restarted for it (its workspace was kept)"
        if result.restarted
        else "it went on running"
    )
    agent = result.agent
    return (
        f"Agent '{agent.name}' changed ({what}), now revision {result.revision}; {how}. "
        f"It is now {_status(agent)}.{_advice(agent)}"
    )


def describe_stats(name: str, stats: AgentStats) -> str:
    """What an agent uses now (action ``stats``)."""
    parts = []
    if stats.cpu_percent is not None:
        parts.append(f"CPU {stats.cpu_percent:.1f}% of one core")
    if stats.memory_bytes is not None:
        limit = f" of {human_bytes(stats.memory_limit_bytes)}" if stats.memory_limit_bytes else ""
        parts.append(f"memory {human_bytes(stats.memory_bytes)}{limit}")
    if stats.pids is not None:
        parts.append(f"{stats.pids} processes")
    if stats.network_rx_bytes is not None:
        parts.append(
            f"network {human_bytes(stats.network_rx_bytes)} in, "
            f"{human_bytes(stats.network_tx_bytes)} out"
        )
    return f"Agent '{name}' uses " + ("; ".join(parts) or "nothing the platform can tell") + "."


def describe_logs(name: str, lines: list[str], *, max_chars: int) -> str:
    if not lines:
        return f"Agent '{name}' has printed nothing (in that range)."
    text = "\n".join(lines)
    if len(text) > max_chars:
        text = "[earlier output cut]\n" + text[-max_chars:]
    count = "1 line" if len(lines) == 1 else f"{len(lines)} lines"
    return f"Last {count} of output from '{name}':\n{text}"


def _conflict(exc: ConflictError, agent: str) -> str:
    if exc.code == "agent_name_ambiguous":
        return (
            f"Error: several owners have an agent named {agent}. Use its id instead "
            "(action 'list' shows the agents with their details)."
        )
    if exc.code == "agent_expired":
        return (
            f"Error: agent {agent} reached its time limit, so it cannot run as it is. Call "
            "start again with ttl_seconds set to give it more time, or spawn a new agent."
        )
    if exc.code == "idempotency_key_reused":
        return f"Error: {exc.detail}. Spawn again; a fresh request will not clash."
    return (
        f"Error: you already have an agent named {agent}. Use action 'status' to see it, "
        "'start' to run it again, or spawn with a different name."
    )


def _invalid(exc: ValidationError) -> str:
    if exc.code == "image_not_found":
        return f"Error: {exc.detail}. Check the image name, or ask the user which image to use."
    if exc.code == "spawn_failed":
        return (
            f"Error: {exc.detail}. The agent could not start and nothing was left behind; "
            "check the command and the image, then spawn again."
        )
    return f"Error: the request was refused as invalid: {exc.detail}. Fix that and call again."


def explain(exc: AgentAPIError, *, name: str | None, url: str) -> str:
    """One sentence for a failed call: what went wrong and what to do next."""
    agent = f"'{name}'" if name else "that name"
    if isinstance(exc, NotFoundError):
        return (
            f"Error: there is no agent named {agent} among yours. Call action 'list' to see "
            "your agents' names, then try again with one of them."
        )
    if isinstance(exc, ConflictError):
        return _conflict(exc, agent)
    if isinstance(exc, PolicyViolationError):
        return (
            f"Error: the platform's policy does not allow this: {exc.detail}. Do not retry "
            "unchanged: ask for less (cpus, memory_mb) or another image, or ask the user."
        )
    if isinstance(exc, ForbiddenError):
        return (
            f"Error: your API key may not do this ({exc.detail}). Do not retry; tell the "
            "user this key needs the operator role."
        )
    if isinstance(exc, UnauthorizedError):
        return (
            f"Error: the agent platform did not accept the API key ({exc.detail}). Do not "
            "retry; ask the user to check AGENT_API_KEY."
        )
    if isinstance(exc, ValidationError):
        return _invalid(exc)
    if isinstance(exc, RateLimitedError):
        wait = f"{exc.retry_after:g} seconds" if exc.retry_after else "a minute"
        return f"Error: too many requests to the agent platform. Wait {wait}, then try again."
    if isinstance(exc, ServerUnavailableError):
        return (
            f"Error: the agent platform's container engine is unavailable right now "
            f"({exc.detail}). Wait a minute and try again; if it keeps failing, tell the user."
        )
    if isinstance(exc, TransportError) and exc.code == "timeout":
        return (
            "Error: the agent platform did not answer in time. The request may still "
            "complete: check with action 'list' or 'status' before trying again."
        )
    if isinstance(exc, TransportError):
        return (
            f"Error: could not reach the agent platform at {url}. Wait a minute and try "
            "again; if it keeps failing, tell the user the agent API is down."
        )
    return (
        f"Error: the agent platform answered {exc.status} ({exc.code}): {exc.detail}. Try "
        "once more; if it fails again, tell the user."
    )

"""How ``agentctl`` prints agents: a ``docker ps``-like table, a detail view, or JSON."""

from __future__ import annotations

import io
import json
import shlex
import sys
from collections.abc import Iterable
from enum import StrEnum

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from .humanize import ago, human_bytes
from .models import Agent, AgentEvent, AgentStats, ChangeResult, RevisionList

__all__ = [
    "OutputFormat",
    "agents_table",
    "detail_table",
    "event_line",
    "print_agent",
    "print_agents",
    "print_change",
    "print_event",
    "print_revisions",
    "print_stats",
    "stats_table",
]

_WIDE = 1000  # when not on a terminal, no column is ever cut

_STATUS_STYLE = {
    "running": "green",
    "pending": "yellow",
    "restarting": "yellow",
    "failed": "red",
    "unknown": "magenta",
}


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


def _show(renderable: RenderableType) -> None:
    """Print to stdout: styled on a terminal; else plain, uncut, without trailing blanks."""
    if sys.stdout.isatty():
        Console(highlight=False).print(renderable)
        return
    console = Console(file=io.StringIO(), width=_WIDE, highlight=False, color_system=None)
    with console.capture() as captured:
        console.print(renderable)
    for line in captured.get().splitlines():
        print(line.rstrip())


def _status(agent: Agent) -> Text:
    return Text(agent.status.value, style=_STATUS_STYLE.get(agent.status.value, ""))


def agents_table(agents: Iterable[Agent]) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("NAME", "ID", "IMAGE", "STATUS", "OWNER", "CREATED"):
        table.add_column(column, no_wrap=True)
    for agent in agents:
        table.add_row(
            agent.name,
            agent.short_id,
            agent.image,
            _status(agent),
            agent.owner,
            ago(agent.created_at),
        )
    return table


def _pairs(values: dict[str, str]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(values.items())) or "-"


def detail_table(agent: Agent) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    status = _status(agent)
    if agent.detail:
        status.append(f" ({agent.detail})", style="")
    resources = agent.resources
    rows: list[tuple[str, str | Text]] = [
        ("Name:", agent.name),
        ("ID:", agent.id),
        ("Owner:", agent.owner),
        ("Image:", agent.image),
        ("Status:", status),
        ("Created:", f"{agent.created_at.isoformat()} ({ago(agent.created_at)})"),
        (
            "Started:",
            f"{agent.started_at.isoformat()} ({ago(agent.started_at)})"
            if agent.started_at
            else "-",
        ),
        ("Command:", shlex.join(agent.command) if agent.command else "(image default)"),
        ("Restart policy:", agent.restart_policy or "-"),
        (
            "Resources:",
            f"cpus={resources.cpus} memory={resources.memory_mb}MB pids={resources.pids}"
            if resources
            else "-",
        ),
        ("Workspace:", "yes" if agent.workspace else "no"),
        ("Network:", agent.network or "-"),
        (
            "Expires:",
            f"{agent.expires_at.isoformat()} (stopped then)" if agent.expires_at else "-",
        ),
        ("Labels:", _pairs(agent.labels)),
        ("Env:", _pairs(agent.env)),
        ("Secrets:", ", ".join(agent.secret_names) or "-"),
        ("Orchestrator:", agent.orchestrator or "-"),
    ]
    for label, value in rows:
        table.add_row(label, value)
    return table


def _json(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=False)


def print_agents(agents: list[Agent], output: OutputFormat) -> None:
    """Several agents: a table, or a JSON array."""
    if output is OutputFormat.JSON:
        print(_json([agent.model_dump(mode="json") for agent in agents]))
    else:
        _show(agents_table(agents))


def print_agent(agent: Agent, output: OutputFormat, *, detail: bool = False) -> None:
    """One agent: a table row (or the detail view), or a JSON object."""
    if output is OutputFormat.JSON:
        print(_json(agent.model_dump(mode="json")))
    elif detail:
        _show(detail_table(agent))
    else:
        _show(agents_table([agent]))


def event_line(event: AgentEvent) -> str:
    """One event on one line, as ``kubectl get -w`` prints changes."""
    when = event.time.strftime("%H:%M:%S")
    if event.agent is None:
        return f"{when}  {event.type:<10} {'-':<24} {event.detail or ''}".rstrip()
    facts = [
        f"{name}={value}"
        for name, value in (
            ("by", event.by),
            ("reason", event.reason),
            ("exit_code", event.exit_code),
            ("health", event.health),
        )
        if value is not None
    ]
    who = f"{event.agent.owner}/{event.agent.name}"
    status = event.status or "-"
    return f"{when}  {event.type:<10} {who:<24} {status:<10} {' '.join(facts)}".rstrip()


def print_event(event: AgentEvent, output: OutputFormat) -> None:
    """One event as it arrives: a line, or one JSON object per line."""
    if output is OutputFormat.JSON:
        print(event.model_dump_json(), flush=True)
    else:
        print(event_line(event), flush=True)


def print_change(result: ChangeResult, output: OutputFormat) -> None:
    """A change's answer: what changed and how, then the agent."""
    if output is OutputFormat.JSON:
        print(_json(result.model_dump(mode="json")))
        return
    how = "restarted" if result.restarted else "changed in place"
    what = ", ".join(result.changes) or "nothing"
    print(f"{result.agent.name}: revision {result.revision}, {how} ({what})")
    _show(agents_table([result.agent]))


def print_revisions(revisions: RevisionList, output: OutputFormat) -> None:
    if output is OutputFormat.JSON:
        print(_json(revisions.model_dump(mode="json")))
        return
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("REVISION", "CREATED", "RESTARTED", "CHANGES"):
        table.add_column(column, no_wrap=column != "CHANGES")
    for revision in revisions.items:
        table.add_row(
            str(revision.number),
            ago(revision.created_at),
            "yes" if revision.restarted else "no",
            ", ".join(revision.changes) or "-",
        )
    _show(table)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}%"


def _io(first: int | None, second: int | None) -> str:
    return f"{human_bytes(first)} / {human_bytes(second)}"


def stats_table(samples: Iterable[tuple[Agent, AgentStats | None]]) -> Table:
    """``docker stats``' columns, one row per agent (dashes where no sample came)."""
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in ("NAME", "ID", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O"):
        table.add_column(column, no_wrap=True)
    table.add_column("PIDS", no_wrap=True)
    for agent, stats in samples:
        if stats is None:
            table.add_row(agent.name, agent.short_id, *(["-"] * 6))
            continue
        memory_share = None
        if stats.memory_bytes is not None and stats.memory_limit_bytes:
            memory_share = stats.memory_bytes / stats.memory_limit_bytes * 100
        table.add_row(
            agent.name,
            agent.short_id,
            _percent(stats.cpu_percent),
            _io(stats.memory_bytes, stats.memory_limit_bytes),
            _percent(memory_share),
            _io(stats.network_rx_bytes, stats.network_tx_bytes),
            _io(stats.block_read_bytes, stats.block_write_bytes),
            "-" if stats.pids is None else str(stats.pids),
        )
    return table


def print_stats(samples: list[tuple[Agent, AgentStats | None]], output: OutputFormat) -> None:
    if output is OutputFormat.JSON:
        rows = [
            {"agent": agent.name, "id": agent.id, "stats": s.model_dump(mode="json") if s else None}
            for agent, s in samples
        ]
        print(_json(rows))
    else:
        _show(stats_table(samples))

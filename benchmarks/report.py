"""The Markdown report (``docs/benchmarks.md``) and the table printed on the console."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from .config import BenchConfig
from .kubernetes import OPERATION as KUBERNETES_LIST
from .results import Comparison, LoadRun, RunResults
from .stats import Spread, percentile

__all__ = ["comparison_table", "markdown_table", "number", "render_report"]

_LABELS = {
    "list": "list (`GET /v1/agents` vs `GET /containers/json`, same label filter)",
    KUBERNETES_LIST: "list on Kubernetes (`GET /v1/agents` vs the API server's Deployments)",
    "get": "get one agent (`GET /v1/agents/{id}` vs inspect)",
    "spawn": "spawn: create + start (`POST /v1/agents` vs create + start)",
    "stop": "stop (`?timeout=0` vs `stop?t=0`)",
    "start": "start",
    "delete": "delete (vs `DELETE /containers/{id}?force=1`)",
}
_ORDER = ("list", KUBERNETES_LIST, "get", "spawn", "stop", "start", "delete")


def number(value: float, digits: int = 1) -> str:
    """``value`` with ``digits`` decimals, or n/a for NaN (a figure that was not taken)."""
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _ms(value: Spread) -> str:
    if math.isnan(value.median):
        return "n/a"
    return f"{value.median * 1000:.2f} ({value.low * 1000:.2f}-{value.high * 1000:.2f})"


def _ratio(value: Spread) -> str:
    if math.isnan(value.median):
        return "n/a"
    return f"**{value.median:.2f}** ({value.low:.2f}-{value.high:.2f})"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def comparison_table(comparisons: Sequence[Comparison]) -> list[str]:
    """One row per operation and fleet size: both sides' p50 and p95 and their ratios."""
    ordered = sorted(comparisons, key=lambda c: (_ORDER.index(c.operation), c.size))
    rows = []
    for item in ordered:
        overhead = (item.side("proxy", 50).median - item.side("engine", 50).median) * 1000
        rows.append(
            [
                item.operation,
                str(item.size),
                _ms(item.side("proxy", 50)),
                _ms(item.side("engine", 50)),
                _ratio(item.ratio(50)),
                _ms(item.side("proxy", 95)),
                _ms(item.side("engine", 95)),
                _ratio(item.ratio(95)),
                f"{overhead:+.2f}",
                f"{len(item.proxy)} x {len(item.proxy[0]) if item.proxy else 0}",
            ]
        )
    return markdown_table(
        [
            "operation",
            "agents",
            "proxy p50 ms",
            "engine p50 ms",
            "ratio p50",
            "proxy p95 ms",
            "engine p95 ms",
            "ratio p95",
            "p50 overhead ms",
            "reps x calls",
        ],
        rows,
    )


def _load_rows(loads: Sequence[LoadRun]) -> list[str]:
    rows = []
    for run in loads:
        every = run.all_latencies()
        probe = run.probe_latencies
        rows.append(
            [
                run.side,
                str(run.size),
                str(run.clients),
                f"{run.seconds:.1f}",
                str(run.requests),
                f"{run.throughput:.0f}",
                f"{percentile(every, 50) * 1000:.1f}",
                f"{percentile(every, 99) * 1000:.1f}",
                f"{percentile(run.latencies.get('list', []), 99) * 1000:.1f}",
                f"{percentile(run.latencies.get('get', []), 99) * 1000:.1f}",
                str(run.error_count),
                f"{percentile(probe, 50) * 1000:.1f} / {max(probe, default=math.nan) * 1000:.1f}",
                "-" if math.isnan(run.peak_rss_mb) else f"{run.peak_rss_mb:.0f}",
            ]
        )
    return markdown_table(
        [
            "side",
            "agents",
            "clients",
            "s",
            "requests",
            "req/s",
            "p50 ms",
            "p99 ms",
            "list p99 ms",
            "get p99 ms",
            "errors",
            "probe p50 / max ms",
            "peak RSS MB",
        ],
        rows,
    )


def _kubernetes_method(results: RunResults) -> list[str]:
    """How the Kubernetes rows are measured, when there are any."""
    if not any(c.operation == KUBERNETES_LIST for c in results.comparisons):
        return []
    return [
        f"- `{KUBERNETES_LIST}`: a disposable Kubernetes v1.20 control plane on the same host "
        "(etcd, kube-apiserver, controller-manager, scheduler and a fake kubelet that marks "
        "pods Running: no container runs), a fresh namespace, and a second service process "
        "with `ORCHESTRATOR=kubernetes` and the admin's kubeconfig. The fleet is the "
        "Deployment the backend builds for the same busybox sleeper "
        "(`orchestrators.kubernetes.objects`), scaled to one, with 0.01 CPU (1000 pods must "
        "fit the fake node's 64 CPUs), created straight on the API server and timed once "
        "every pod is ready. The service answers `GET /v1/agents?owner=` "
        "(`limit=1000`, every page) with two API calls (Deployments, then pods, by label "
        "selector); the baseline is the API server's own `GET "
        "/apis/apps/v1/namespaces/<ns>/deployments?labelSelector=` with the same selector, "
        "over HTTPS with httpx and the admin token (the body is read, not parsed), with the "
        "same repetitions and alternation as the Docker list.",
    ]


def render_report(results: RunResults, config: BenchConfig, plot: Path | None) -> str:
    """The whole report: machine, method, figures, targets, profiles, plot."""
    out = [
        f"# {config.title}",
        "",
        f"One run of `python -m benchmarks` started {results.started}, "
        f"{results.duration_s / 60:.1f} minutes, fleet sizes "
        f"{', '.join(str(s) for s in config.sizes)}. Generated by the command; do not edit.",
        "",
        "## Machine and versions",
        "",
        *markdown_table(["", ""], [[k, f"`{v}`"] for k, v in results.machine.items()]),
        "",
        "## How it is measured",
        "",
        "- Both sides are measured in the same run, from the same client process, with httpx: "
        "the proxy over HTTP on 127.0.0.1, the raw engine over its unix socket with the same "
        "label filter and the same container description the service builds "
        "(`orchestrators.labels`, `orchestrators.docker.objects`).",
        "- Sequential figures alternate the sides call by call. Each figure is "
        f"{config.repetitions} repetitions (spawn and lifecycle: {config.spawn_repetitions} of "
        f"{config.spawns_per_repetition}); a cell is the median over repetitions of that "
        "repetition's percentile, with the range in brackets. A ratio is proxy / engine "
        "computed per repetition, then the median (range) of those.",
        "- The fleet is busybox sleepers (restart policy `no`, 16 MB, no network) created "
        "straight on the engine with the labels the service writes, owned by one owner; "
        "lists ask for that owner (`?owner=`, `limit=1000`, every page), so the engine "
        "returns the same containers the service does.",
        "- Spawned agents are the same sleepers on the platform network; stop uses a grace of "
        "0 s on both sides (busybox `sleep` as PID 1 ignores SIGTERM).",
        f"- Sustained load: {config.load_clients} concurrent clients (asyncio tasks, each on "
        "its own kept-alive connection through a minimal HTTP/1.1 client that reads each body "
        "whole without parsing it: with httpx the Python client, not either server, set the "
        "pace) "
        f"for {config.load_seconds:.0f} s on each side, one request in "
        f"{config.load_list_share} a list of the whole fleet, the rest gets of random agents; "
        "a probe asks `/healthz` (engine: `/_ping`) every 100 ms on its own connection. The "
        "event loop is then watched by running the same load against a second service "
        "process in asyncio debug mode, which logs any callback holding the loop >= 100 ms. "
        "Peak RSS is the service's high-water mark (`VmHWM`) over the whole run.",
        "- The service runs as `python -m agent_platform serve` with its defaults (16 engine "
        "threads, the JSON access log, the background sweep), an admin key, no image pulls "
        "and no agent quota; both sides use keep-alive connections.",
        "- The host may be shared: the load averages at the start and the end are in the "
        "table above, and every ratio pairs calls made moments apart.",
        *_kubernetes_method(results),
        "",
        "## Results",
        "",
        "Latencies in milliseconds: median (min-max over repetitions).",
        "",
        *comparison_table(results.comparisons),
        "",
    ]
    for run in results.concurrent:
        out += [
            f"Concurrent spawns at {run.size} agents: {run.count} spawns by {run.clients} clients, "
            f"{len(run.proxy_walls)} rounds per side.",
            "",
            *markdown_table(
                ["side", "wall s", "spawn p50 ms", "spawn p95 ms", "ratio (wall)"],
                [
                    [
                        "proxy",
                        _s(run.wall("proxy")),
                        f"{percentile(run.proxy_latencies, 50) * 1000:.0f}",
                        f"{percentile(run.proxy_latencies, 95) * 1000:.0f}",
                        _ratio(run.ratio()),
                    ],
                    [
                        "engine",
                        _s(run.wall("engine")),
                        f"{percentile(run.engine_latencies, 50) * 1000:.0f}",
                        f"{percentile(run.engine_latencies, 95) * 1000:.0f}",
                        "",
                    ],
                ],
            ),
            "",
        ]
    if results.loads:
        out += ["Sustained load:", "", *_load_rows(results.loads), ""]
    if results.loop_watch is not None:
        watch = results.loop_watch
        out += [
            f"Event loop watch (asyncio debug mode, {watch.seconds:.0f} s, {watch.requests} "
            f"requests, {watch.errors} errors): {len(watch.slow_callbacks)} callbacks held the "
            f"loop >= {watch.threshold * 1000:.0f} ms"
            + (
                f" (longest {max(watch.slow_callbacks) * 1000:.0f} ms)."
                if watch.slow_callbacks
                else "."
            ),
            "",
        ]
    if results.kubernetes:
        out += [f"Kubernetes backend: {results.kubernetes}", ""]
    if plot is not None:
        out += [
            "## Latency against fleet size",
            "",
            f"![list and get latency against fleet size]({plot.name})",
            "",
        ]
    out += ["## Targets", ""]
    out += markdown_table(
        ["target", "goal", "measured", "met"],
        [[t.name, t.goal, t.measured, "yes" if t.met else "**no**"] for t in results.targets],
    )
    out.append("")
    if results.profiles:
        out += [
            "## Where the time goes (profiles of the missed targets)",
            "",
            "py-spy sampled every thread of the service while the operation was repeated "
            "through the API at the largest fleet size.",
            "",
        ]
        for profile in results.profiles:
            out.append(
                f"### {profile.target}: {profile.operation} at {profile.size} agents "
                f"({profile.seconds:.0f} s)"
            )
            out.append("")
            if profile.error:
                out.append(f"- not profiled: {profile.error}")
            out += [f"- {line}" for line in profile.lines]
            out.append("")
    if results.notes:
        out += ["## Notes", "", *[f"- {note}" for note in results.notes], ""]
    return "\n".join(out)


def _s(value: Spread) -> str:
    if math.isnan(value.median):
        return "n/a"
    return f"{value.median:.2f} ({value.low:.2f}-{value.high:.2f})"

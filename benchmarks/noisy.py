"""The noisy-neighbour figure: owner A runs each attack in turn, owner B's reads are timed.

One service process with two operator keys (owners A and B). B spawns a few agents, then
runs a steady mix of list, get and logs (``b_clients`` clients, back to back) through every
phase: quiet (B alone), one phase per attack of ``attacks.ATTACKS`` (A attacks while B
reads), and quiet again at the end (the service recovers without a restart). Each phase
quotes B's p50/p99, B's errors and the service's resident memory; the run quotes its peak
(``VmHWM``). Everything is created under the run's prefix and removed at the end, also on
an error or Ctrl-C.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import docker
import httpx

from agent_platform.auth import hash_key
from testenv.images import BUSYBOX_IMAGE, build_busybox_image

from .attacks import ATTACKS, Attack, AttackContext, run_attack
from .drivers import sustained_load
from .engine import RawEngine, docker_api, engine_socket, remove_resources
from .machine import describe_load, describe_machine
from .rawhttp import RawTarget
from .service import Service
from .stats import percentile

__all__ = ["NoisyConfig", "NoisyPhase", "NoisyResults", "quick_noisy", "run_noisy"]

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class NoisyConfig:
    """Durations and bounds of one run (the defaults are the full figure)."""

    phase_seconds: float = 20.0
    b_clients: int = 4
    b_agents: int = 5
    pull_timeout: float = 10.0
    counts: dict[str, int] = field(
        default_factory=lambda: {
            "invented_methods": 100_000,
            "big_env_bytes": 200_000,
            "renewals": 1200,
            "long_stops": 16,
            "follows": 64,
            "pulls": 200,
            "big_agents": 20,
            "slow_clients": 100,
        }
    )
    prefix: str = "apnoisy-"

    @property
    def network(self) -> str:
        return f"{self.prefix}net"


def quick_noisy(base: NoisyConfig) -> NoisyConfig:
    """A smoke run: short phases, small counts."""
    return replace(
        base,
        phase_seconds=4.0,
        b_clients=2,
        b_agents=2,
        pull_timeout=2.0,
        counts={
            "invented_methods": 2000,
            "big_env_bytes": 200_000,
            "renewals": 100,
            "long_stops": 6,
            "follows": 16,
            "pulls": 20,
            "big_agents": 4,
            "slow_clients": 16,
        },
    )


@dataclass(slots=True)
class NoisyPhase:
    """One phase: what A did, what B saw."""

    name: str
    attack: str
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    rss_max_mb: float = float("nan")
    answers: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)

    def p(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


@dataclass(slots=True)
class NoisyResults:
    started: str = ""
    duration_s: float = 0.0
    machine: dict[str, str] = field(default_factory=dict)
    phases: list[NoisyPhase] = field(default_factory=list)
    peak_rss_mb: float = float("nan")
    ready_after: int = 0  # /readyz status after the last phase
    notes: list[str] = field(default_factory=list)

    @property
    def quiet(self) -> NoisyPhase:
        return self.phases[0]


def _stderr(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def _keys_file(directory: Path) -> tuple[Path, str, str]:
    attacker, neighbour = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    entries = [
        {"name": "a-op", "owner": "noisy-a", "role": "operator", "sha256": hash_key(attacker)},
        {"name": "b-op", "owner": "quiet-b", "role": "operator", "sha256": hash_key(neighbour)},
    ]
    path = directory / "keys.json"
    path.write_text(json.dumps({"keys": entries}))
    return path, attacker, neighbour


def _b_phase(service: Service, key: str, names: list[str], config: NoisyConfig) -> NoisyPhase:
    """B's steady mix for one phase (the phase's name and attack are filled by the caller)."""
    phase = NoisyPhase("", "")
    kinds = ("list", "get", "logs")

    def pick(worker: int, iteration: int) -> tuple[str, str]:
        kind = kinds[(worker + iteration) % len(kinds)]
        name = names[(worker * 7 + iteration) % len(names)]
        if kind == "list":
            return kind, "/v1/agents"
        if kind == "get":
            return kind, f"/v1/agents/{name}"
        return kind, f"/v1/agents/{name}/logs?tail=20"

    async def drive() -> None:
        target = RawTarget(
            port=service.port,
            headers=(("Authorization", f"Bearer {key}"),),
        )
        outcome = await sustained_load(
            target,
            clients=config.b_clients,
            seconds=config.phase_seconds,
            pick=pick,
            probe="/healthz",
            sample=lambda: service.memory_mb()[0],
        )
        for values in outcome.latencies.values():
            phase.latencies.extend(values)
        phase.errors = dict(outcome.errors)
        phase.rss_max_mb = max(outcome.samples, default=float("nan"))

    asyncio.run(drive())
    return phase


def run_noisy(config: NoisyConfig, log: Log = _stderr) -> NoisyResults:
    """Measure every phase; always removes what it created."""
    started = time.perf_counter()
    results = NoisyResults(started=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))
    api = docker_api()
    engine = RawEngine(engine_socket())
    workdir = tempfile.TemporaryDirectory(prefix="agent-api-noisy-")
    service: Service | None = None
    try:
        results.machine = describe_machine(engine.version)
        remove_resources(api, prefix=config.prefix, network=config.network)
        sdk = docker.DockerClient(base_url=f"unix://{engine_socket()}", version="auto")
        try:
            image = build_busybox_image(sdk, BUSYBOX_IMAGE)
        finally:
            sdk.close()
        keys_file, attacker, neighbour = _keys_file(Path(workdir.name))
        service = Service(
            prefix=config.prefix,
            network=config.network,
            extra_env={
                "AGENT_API_KEYS_FILE": str(keys_file),
                "AGENT_API_PULL_MISSING_IMAGES": "true",
                # The silent registry is on 127.0.0.1: allowed here so that the pull and its
                # deadline are what is measured (by default such a pull is refused at once).
                "AGENT_API_ALLOW_PRIVATE_REGISTRIES": "true",
                "AGENT_API_PULL_TIMEOUT": str(config.pull_timeout),
                "AGENT_API_SWEEP_INTERVAL": "0",
            },
        )
        service.start()
        log(f"agent-api pid {service.pid} on {service.url}")
        names = [f"steady-{i}" for i in range(config.b_agents)]
        with httpx.Client(
            base_url=service.url, headers={"Authorization": f"Bearer {neighbour}"}, timeout=60
        ) as b:
            for name in names:
                response = b.post(
                    "/v1/agents",
                    json={
                        "name": name,
                        "image": image,
                        "command": ["sh", "-c", "while true; do echo steady; sleep 1; done"],
                        "restart_policy": "no",
                    },
                )
                if response.status_code != 201:
                    raise RuntimeError(f"B could not spawn: {response.status_code} {response.text}")

        phases: list[tuple[str, str, Attack | None]] = [("quiet", "owner B alone", None)]
        phases += [(name, what, attack) for name, what, attack in ATTACKS]
        phases.append(("quiet again", "owner B alone, after every attack", None))
        for name, what, attack in phases:
            ctx = AttackContext(
                url=service.url,
                key=attacker,
                image=image,
                seconds=config.phase_seconds,
                stop=threading.Event(),
                counts=dict(config.counts),
            )
            thread = run_attack(attack, ctx) if attack is not None else None
            phase = _b_phase(service, neighbour, names, config)
            ctx.stop.set()
            if thread is not None:
                thread.join(timeout=config.phase_seconds + 90)
                if thread.is_alive():
                    ctx.notes.append("the attack was still running 90 s after its phase")
            phase.name, phase.attack = name, what
            phase.answers, phase.notes = ctx.answers, ctx.notes
            results.phases.append(phase)
            log(
                f"{name}: B p50 {phase.p(50):.1f} ms, p99 {phase.p(99):.1f} ms, "
                f"{sum(phase.errors.values())} errors; A got {dict(ctx.answers)}"
            )
        results.ready_after = httpx.get(f"{service.url}/readyz", timeout=30).status_code
        results.peak_rss_mb = service.memory_mb()[1]
    finally:
        if service is not None:
            service.close()
        removed = remove_resources(api, prefix=config.prefix, network=config.network)
        results.notes.append(f"cleanup: removed {removed} containers left at the end")
        workdir.cleanup()
        engine.close()
        api.close()
    results.duration_s = time.perf_counter() - started
    results.machine["load average at end"] = describe_load()
    return results

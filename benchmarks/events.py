"""``--only events``: how soon a change reaches a client, and what reads from the model cost.

- event latency: a container stopped and started on the raw engine (behind the service's
  back), to the SSE client's receipt of the ``stopped`` and ``started`` events; measured
  against the engine's own time of the event (one machine, one clock);
- staleness across replicas: a stop answered by one replica, to the first read of the
  other replica that shows it;
- get and list of a small fleet from the model against the raw inspect and filtered list.

Everything is created under the run's prefix and removed at the end, pass or fail. The
report's section of these figures is written by hand between ``BEGIN`` and ``END`` (a full
run keeps it).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import docker
import httpx

from orchestrators import labels as L
from testenv.images import BUSYBOX_IMAGE, build_busybox_image

from .config import BenchConfig
from .engine import RawEngine, docker_api, engine_socket, remove_resources
from .service import Service
from .stats import percentile

__all__ = ["BEGIN", "END", "EventListener", "run_events"]

BEGIN = "<!-- events: figures of python -m benchmarks --only events, kept by a full run -->"
END = "<!-- /events -->"

_FLEET = 20
_CYCLES = 30
_STALENESS_ROUNDS = 15
_READS = 300


class EventListener:
    """The event stream read on a thread: (receipt time, event) pairs."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.received: list[tuple[float, dict[str, Any]]] = []
        # Heartbeats every 15 s: a read timeout of a minute never fires on a live stream.
        self._client = httpx.Client(base_url=url, headers=headers, timeout=60)
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        self._ready.wait(30)

    def _read(self) -> None:
        try:
            with self._client.stream("GET", "/v1/events") as response:
                self._ready.set()
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        self.received.append((time.time(), json.loads(line[5:])))
        except httpx.HTTPError:
            return

    def wait_for(self, agent_id: str, kind: str, after: int) -> tuple[float, dict[str, Any]]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for got in self.received[after:]:
                agent = got[1].get("agent") or {}
                if got[1]["type"] == kind and agent.get("id") == agent_id:
                    return got
            time.sleep(0.002)
        raise RuntimeError(f"no {kind} event for {agent_id}")

    def close(self) -> None:
        self._client.close()


def _latency(got: tuple[float, dict[str, Any]]) -> float:
    received, event = got
    return received - datetime.fromisoformat(str(event["time"])).timestamp()


def _timed(calls: int, fn: Callable[[int], object]) -> list[float]:
    samples = []
    for i in range(calls):
        started = time.perf_counter()
        fn(i)
        samples.append(time.perf_counter() - started)
    return samples


def _ms(samples: list[float], q: float) -> str:
    return f"{percentile(samples, q) * 1000:.1f} ms"


def run_events(config: BenchConfig, log: Callable[[str], object] = print) -> int:
    api = docker_api()
    sdk = docker.DockerClient(base_url=f"unix://{engine_socket()}", version="auto")
    image = build_busybox_image(sdk, BUSYBOX_IMAGE)
    one = Service(prefix=config.prefix, network=config.network)
    two = Service(
        prefix=config.prefix, network=config.network, extra_env={"AGENT_API_KEY": one.key}
    )
    engine = RawEngine(engine_socket())
    remove_resources(api, prefix=config.prefix, network=config.network)
    try:
        one.start()
        two.start()
        a = httpx.Client(base_url=one.url, headers=one.headers, timeout=60)
        b = httpx.Client(base_url=two.url, headers=one.headers, timeout=60)
        body = {"image": image, "command": ["sleep", "86400"], "restart_policy": "no"}
        resources = {"cpus": 0.1, "memory_mb": 16, "pids": 16}
        agents = [
            a.post("/v1/agents", json={**body, "name": f"ev{i}", "resources": resources})
            .raise_for_status()
            .json()
            for i in range(_FLEET)
        ]
        containers = {
            c.labels[L.ID]: c.id for c in sdk.containers.list(filters={"name": config.prefix})
        }
        log(f"{_FLEET} agents spawned")
        listener = EventListener(one.url, one.headers)
        latencies: list[float] = []
        for i in range(_CYCLES):
            agent_id = agents[i % _FLEET]["id"]
            mark = len(listener.received)
            engine.stop(containers[agent_id], 0)
            latencies.append(_latency(listener.wait_for(agent_id, "stopped", mark)))
            mark = len(listener.received)
            sdk.api.start(containers[agent_id])
            latencies.append(_latency(listener.wait_for(agent_id, "started", mark)))
        listener.close()
        log("event latency measured")

        stale: list[float] = []
        for i in range(_STALENESS_ROUNDS):
            ref = agents[i % _FLEET]["id"]
            a.post(f"/v1/agents/{ref}/stop", params={"timeout": 0}).raise_for_status()
            answered = time.perf_counter()
            while b.get(f"/v1/agents/{ref}").raise_for_status().json()["status"] != "stopped":
                time.sleep(0.001)
            stale.append(time.perf_counter() - answered)
            a.post(f"/v1/agents/{ref}/start").raise_for_status()

        log("staleness measured")
        ids = [agent["id"] for agent in agents]
        selector = L.selector(instance=L.instance_name(config.prefix))
        terms = [f"{key}={value}" for key, value in selector.items()]
        get_proxy = _timed(_READS, lambda i: a.get(f"/v1/agents/{ids[i % _FLEET]}"))
        get_raw = _timed(_READS, lambda i: engine.inspect(containers[ids[i % _FLEET]]))
        list_proxy = _timed(_READS // 3, lambda i: a.get("/v1/agents", params={"limit": 1000}))
        list_raw = _timed(
            _READS // 3,
            lambda i: engine.list_containers(terms),
        )
        log(f"fleet {_FLEET} agents; event latency over {len(latencies)} events:")
        log(f"  engine event -> SSE client: p50 {_ms(latencies, 50)}, p99 {_ms(latencies, 99)}")
        log(
            f"  staleness across replicas ({len(stale)} stops): p50 {_ms(stale, 50)}, "
            f"max {_ms(stale, 100)}"
        )
        for name, proxy, raw in (
            ("get", get_proxy, get_raw),
            ("list", list_proxy, list_raw),
        ):
            ratio = percentile(proxy, 50) / percentile(raw, 50)
            log(
                f"  {name}: agent-api p50 {_ms(proxy, 50)}, raw engine p50 {_ms(raw, 50)} "
                f"({ratio:.2f}x)"
            )
        a.close()
        b.close()
        return 0
    finally:
        engine.close()
        one.close()
        two.close()
        remove_resources(api, prefix=config.prefix, network=config.network)
        sdk.close()

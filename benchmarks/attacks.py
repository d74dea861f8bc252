"""The attacks of the noisy-neighbour figure: what one owner (A) does to starve the others.

Each attack runs in its own thread until ``stop`` is set or its count is spent, talks only
to the service on 127.0.0.1 (and to a silent registry it opens there), counts the answers
it got, and removes what it created before it returns.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from testenv.registry import SilentRegistry

__all__ = ["ATTACKS", "Attack", "AttackContext", "run_attack"]

# An agent that ignores SIGTERM (PID 1 with a trap), as a stuck agent would.
_STUBBORN = ["sh", "-c", "trap 'echo term' TERM; while true; do sleep 1; done"]
_TALKER = ["sh", "-c", "while true; do echo talking; sleep 0.5; done"]
_SPAMMER = ["sh", "-c", "yes 'noisy neighbour fills the disk with its output, line after line'"]


@dataclass(slots=True)
class AttackContext:
    """What an attack needs: where the service is, A's key, the image, the bounds."""

    url: str
    key: str
    image: str
    seconds: float
    stop: threading.Event
    counts: dict[str, int]
    answers: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, *, keyed: bool = True, timeout: float | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.key}"} if keyed else {}
        return httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout or self.seconds + 30
        )

    def count(self, answer: str) -> None:
        with self._lock:
            self.answers[answer] += 1

    def send(self, call: Callable[[], httpx.Response]) -> httpx.Response | None:
        try:
            response = call()
        except httpx.HTTPError as exc:
            self.count(type(exc).__name__)
            return None
        self.count(str(response.status_code))
        return response

    def spawn(self, client: httpx.Client, name: str, **extra: Any) -> bool:
        request = {"name": name, "image": self.image, "restart_policy": "no", **extra}
        request.setdefault("command", ["sleep", "3600"])
        response = self.send(lambda: client.post("/v1/agents", json=request))
        return response is not None and response.status_code == 201

    def delete_all(self, client: httpx.Client) -> None:
        """Remove every agent of A (the attack's own cleanup)."""
        with contextlib.suppress(httpx.HTTPError):
            items = client.get("/v1/agents", params={"limit": 1000}).json()["items"]
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda a: client.delete(f"/v1/agents/{a['id']}"), items))


Attack = Callable[[AttackContext], None]


def _until_stopped(ctx: AttackContext, limit: int) -> Iterator[int]:
    for index in range(limit):
        if ctx.stop.is_set():
            return
        yield index


def invented_methods(ctx: AttackContext) -> None:
    """1. Requests with invented HTTP methods, no key."""
    limit = ctx.counts["invented_methods"]
    numbers = itertools.count()
    lock = threading.Lock()

    def worker() -> None:
        with ctx.client(keyed=False) as client:
            while not ctx.stop.is_set():
                with lock:
                    index = next(numbers)
                if index >= limit:
                    return
                ctx.send(functools.partial(client.request, f"NOISY{index:07d}", "/v1/agents"))

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(worker) for _ in range(4)]:
            future.result()


def ttl_renewals(ctx: AttackContext) -> None:
    """2. TTL renewals of an agent spawned with a big env."""
    with ctx.client() as client:
        size = ctx.counts["big_env_bytes"]
        env = {f"BIG_{i:03d}": "x" * 4000 for i in range(size // 4000)}
        if not ctx.spawn(client, "renewer", env=env, ttl_seconds=3600):
            ctx.notes.append("the big env was refused; renewing an agent with a 16 KB env")
            small = dict(itertools.islice(env.items(), 4))
            ctx.spawn(client, "renewer", env=small, ttl_seconds=3600)
        for _ in _until_stopped(ctx, ctx.counts["renewals"]):
            ctx.send(lambda: client.post("/v1/agents/renewer/ttl", json={"ttl_seconds": 3600}))
        ctx.delete_all(client)


def long_grace_stops(ctx: AttackContext) -> None:
    """3. Stops with an hour of grace of agents that ignore SIGTERM, all at once."""
    count = ctx.counts["long_stops"]
    names = [f"stubborn-{i:02d}" for i in range(count)]
    with ctx.client() as client, ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda n: ctx.spawn(client, n, command=_STUBBORN), names))
        pending = [
            pool.submit(
                ctx.send,
                functools.partial(client.post, f"/v1/agents/{name}/stop", params={"timeout": 3600}),
            )
            for name in names
        ]
        ctx.stop.wait()
        # Deleting the agents ends the stops still waiting out their grace.
        ctx.delete_all(client)
        for future in pending:
            with contextlib.suppress(Exception):
                future.result(timeout=60)


def log_follows(ctx: AttackContext) -> None:
    """4. Many log follows held open."""
    count = ctx.counts["follows"]
    with ctx.client() as client:
        ctx.spawn(client, "talker", command=_TALKER)

        def follow(_: int) -> None:
            try:
                with client.stream(
                    "GET", "/v1/agents/talker/logs", params={"follow": "true"}
                ) as response:
                    ctx.count(str(response.status_code))
                    for _chunk in response.iter_raw():
                        if ctx.stop.is_set():
                            return
            except httpx.HTTPError as exc:
                ctx.count(type(exc).__name__)

        with ThreadPoolExecutor(count) as pool:
            list(pool.map(follow, range(count)))
        ctx.delete_all(client)


def stalled_pulls(ctx: AttackContext) -> None:
    """5. Spawns of images from a registry on 127.0.0.1 that never answers."""
    registry = SilentRegistry()
    numbers = itertools.count()
    lock = threading.Lock()
    limit = ctx.counts["pulls"]
    try:
        with ctx.client() as client:

            def worker() -> None:
                while not ctx.stop.is_set():
                    with lock:
                        index = next(numbers)
                    if index >= limit:
                        return
                    ctx.spawn(client, f"pulled-{index:04d}", image=_stalled(registry, index))

            with ThreadPoolExecutor(4) as pool:
                for future in [pool.submit(worker) for _ in range(4)]:
                    future.result()
            ctx.delete_all(client)
    finally:
        registry.close()


def _stalled(registry: SilentRegistry, index: int) -> str:
    return f"127.0.0.1:{registry.port}/noisy/agent-{index}:1"


def log_spam(ctx: AttackContext) -> None:
    """6. An agent that writes output as fast as it can (disk)."""
    with ctx.client() as client:
        ctx.spawn(client, "spammer", command=_SPAMMER, resources={"cpus": 0.5})
        ctx.stop.wait()
        ctx.delete_all(client)


def big_agents(ctx: AttackContext) -> None:
    """7. As many agents at the resource ceilings as it may spawn (aggregate limits)."""
    with ctx.client() as client:
        for index in _until_stopped(ctx, ctx.counts["big_agents"]):
            ctx.spawn(client, f"big-{index:03d}", resources={"cpus": 2.0, "memory_mb": 4096})
        ctx.stop.wait()
        ctx.delete_all(client)


def slow_clients(ctx: AttackContext) -> None:
    """8. Connections that send their request (headers or body) one byte a second."""
    host, _, port = ctx.url.removeprefix("http://").partition(":")
    sockets: list[socket.socket] = []
    heads = [
        b"GET /v1/agents HTTP/1.1\r\nHost: x\r\nX-Slow: ",
        b"POST /v1/agents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 200000\r\n\r\n{",
    ]
    try:
        for index in range(ctx.counts["slow_clients"]):
            try:
                sock = socket.create_connection((host, int(port)), timeout=5)
                sock.sendall(heads[index % 2])
                sockets.append(sock)
                ctx.count("connected")
            except OSError:
                ctx.count("refused")
        while not ctx.stop.wait(1.0):
            for sock in list(sockets):
                try:
                    sock.sendall(b"a")
                except OSError:
                    sockets.remove(sock)
                    ctx.count("closed by the server")
    finally:
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()


ATTACKS: tuple[tuple[str, str, Attack], ...] = (
    ("invented methods", "requests with invented HTTP methods, no key", invented_methods),
    ("TTL renewals, big env", "renewals of an agent with a ~200 KB env", ttl_renewals),
    ("long-grace stops", "stops with timeout=3600 of agents ignoring SIGTERM", long_grace_stops),
    ("log follows", "follow=true streams held open", log_follows),
    ("stalled pulls", "spawns of images from a silent registry on 127.0.0.1", stalled_pulls),
    ("log spam", "an agent writing output as fast as it can", log_spam),
    ("big agents", "agents of 2 CPUs and 4 GiB each", big_agents),
    ("slow clients", "connections trickling headers or a body, 1 byte/s", slow_clients),
)


def run_attack(attack: Attack, ctx: AttackContext) -> threading.Thread:
    """Start ``attack`` in a thread; errors are counted, never raised into the run."""

    def target() -> None:
        try:
            attack(ctx)
        except Exception as exc:  # the figure reports it
            ctx.notes.append(f"the attack stopped early: {type(exc).__name__}: {exc}"[:200])

    thread = threading.Thread(target=target, name="attack", daemon=True)
    thread.start()
    return thread

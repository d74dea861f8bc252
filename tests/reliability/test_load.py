"""Load: 64 concurrent clients spawning, listing, getting and deleting for a bounded time."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import docker
import httpx
import pytest

from ..api.helpers import body
from ..conftest import Keys, StartServer
from .conftest import Recorder
from .helpers import agent_containers

CLIENTS = 64
SECONDS = 25.0


@pytest.mark.anyio
async def test_sixty_four_clients_leave_nothing_behind(
    start_server: StartServer,
    keys: tuple[Keys, Path],
    busybox: str,
    clean_docker: docker.DockerClient,
    reliability: Recorder,
) -> None:
    server = start_server(AGENT_API_MAX_AGENTS_PER_OWNER="0", AGENT_API_LOG_LEVEL="WARNING")
    statuses: Counter[int] = Counter()
    rss: list[int] = []
    stop_at = time.monotonic() + SECONDS

    async def worker(http: httpx.AsyncClient, number: int) -> None:
        iteration = 0
        while time.monotonic() < stop_at:
            name = f"aptest-load-{number}-{iteration}"
            iteration += 1
            created = await http.post("/v1/agents", json=body(name, busybox))
            statuses[created.status_code] += 1
            for path in ("/v1/agents?limit=20", f"/v1/agents/{name}"):
                statuses[(await http.get(path)).status_code] += 1
            statuses[(await http.delete(f"/v1/agents/{name}")).status_code] += 1

    async def sample_memory() -> None:
        while time.monotonic() < stop_at + 5:
            rss.append(server.rss_bytes())
            await asyncio.sleep(1)

    limits = httpx.Limits(max_connections=CLIENTS + 8)
    async with httpx.AsyncClient(
        base_url=server.url, headers={"X-API-Key": keys[0].alice}, timeout=120, limits=limits
    ) as http:
        sampler = asyncio.create_task(sample_memory())
        await asyncio.gather(*(worker(http, n) for n in range(CLIENTS)))
        sampler.cancel()

    server_errors = sum(count for status, count in statuses.items() if status >= 500)
    assert server_errors == 0, statuses
    assert set(statuses) <= {200, 201, 204}, statuses
    assert agent_containers(clean_docker) == []
    settled = rss[len(rss) // 3 :]
    growth = max(settled) - min(settled)
    assert growth < 40 * 2**20, [r // 2**20 for r in rss]
    total = sum(statuses.values())
    reliability.record(
        f"load: {CLIENTS} concurrent clients spawning, listing, getting and deleting for "
        f"{SECONDS:.0f} s",
        f"{total} requests ({statuses[201]} spawns)",
        f"0 errors, 0 leaked containers; service RSS {min(rss) // 2**20}-{max(rss) // 2**20} MiB, "
        f"{growth // 2**20} MiB spread after warm-up",
    )

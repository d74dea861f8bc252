"""Screenshots of the fleet and of one agent, from the real browser.

Always taken (so a page that cannot render fails here); written to the folder named by
``AGENT_PLATFORM_SCREENSHOTS`` when it is set, which is how ``docs/`` gets them:
``AGENT_PLATFORM_SCREENSHOTS=docs pytest tests/ui/test_screenshots.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

from playwright.sync_api import expect

from ..api.helpers import body, wait_status
from ..conftest import Api
from .conftest import Dashboard

CHATTY = 'i=0; while :; do echo "step $i: fetched 3 pages, 2 notes"; i=$((i+1)); sleep 2; done'


def test_screenshots_of_the_fleet_and_an_agent(
    api: Api, busybox: str, dashboard: Dashboard, tmp_path: Path
) -> None:
    fleet = [
        ("researcher", api.alice, {"team": "research"}, 3600, CHATTY),
        ("summarizer", api.alice, {"team": "research"}, None, "exec sleep 3600"),
        ("crawler", api.bob, {"team": "web"}, None, "echo boom >&2; exit 2"),
        ("indexer", api.bob, {"team": "web"}, 900, "exec sleep 3600"),
    ]
    dashboard.sign_in(api.keys.admin)  # first, so that the changes are listed as they come
    for name, client, labels, ttl, script in fleet:
        spec = body(name, busybox, command=["sh", "-c", script], labels=labels, ttl_seconds=ttl)
        assert client.post("/v1/agents", json=spec).status_code == 201
    assert api.bob.post("/v1/agents/indexer/stop").status_code == 200
    wait_status(api.bob, "crawler", "failed")
    for name, colour in (("researcher", "green"), ("crawler", "red"), ("indexer", "grey")):
        dashboard.light(name, colour)
    shots = [tmp_path / f"dashboard-{view}.png" for view in ("fleet", "agent", "phone")]
    dashboard.page.screenshot(path=shots[0], full_page=True)
    dashboard.open_agent("researcher")
    expect(dashboard.page.locator("#logs")).to_contain_text("step 1")
    dashboard.page.screenshot(path=shots[1], full_page=True)
    dashboard.page.set_viewport_size({"width": 390, "height": 844})
    dashboard.page.go_back()
    dashboard.light("crawler", "red")
    dashboard.page.screenshot(path=shots[2])
    target = os.environ.get("AGENT_PLATFORM_SCREENSHOTS")
    for shot in shots:
        assert shot.stat().st_size > 10_000
        if target:
            (Path(target) / shot.name).write_bytes(shot.read_bytes())
    assert dashboard.errors == []

"""The dashboard as a user drives it in chromium, against the service on the real engine."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import docker
import httpx
from playwright.sync_api import expect

from orchestrators import labels as L

from ..api.helpers import body, wait_status
from ..conftest import Api, StartServer
from .conftest import Dashboard

# Exits with code 3 on SIGUSR1: what an agent that crashes looks like to the engine.
CRASHES_ON_USR1 = [
    "sh",
    "-c",
    "trap 'exit 3' USR1; echo ready; while :; do sleep 3600 & wait $!; done",
]
RED_WATCH = """name => new MutationObserver((_, observer) => {
  if (document.querySelector(`tr[data-name="${name}"] .light[data-light="red"]`)) {
    window.redAt = Date.now();
    observer.disconnect();
  }
}).observe(document.getElementById("agents"), {childList: true, subtree: true})"""
TICKS = ["sh", "-c", "i=0; while :; do echo tick-$i; i=$((i+1)); sleep 0.3; done"]


def spawn(api: Api, busybox: str, name: str, **extra: Any) -> dict[str, Any]:
    response = api.alice.post("/v1/agents", json=body(name, busybox, **extra))
    assert response.status_code == 201, response.text
    agent: dict[str, Any] = response.json()
    return agent


def opened(api: Api, busybox: str, dashboard: Dashboard, name: str, **extra: Any) -> None:
    """Spawn ``name`` as alice, sign in as alice, see it green and open its page."""
    spawn(api, busybox, name, **extra)
    dashboard.sign_in(api.keys.alice)
    dashboard.light(name, "green")
    dashboard.open_agent(name)


def test_a_spawned_agent_turns_green_and_a_crash_behind_the_services_back_turns_it_red(
    api: Api, busybox: str, dashboard: Dashboard, clean_docker: docker.DockerClient
) -> None:
    dashboard.sign_in(api.keys.alice)
    assert "operator" in dashboard.page.inner_text("#who")
    agent = spawn(api, busybox, "crashy", command=CRASHES_ON_USR1, labels={"team": "ui"})
    green = dashboard.light("crashy", "green")
    assert green.text_content() == "running"
    row = dashboard.row("crashy").inner_text()
    assert busybox in row
    assert "team=ui" in row
    assert "running 1" in dashboard.page.inner_text("#counts")
    dashboard.page.evaluate("window.notReloaded = true")
    # Fed by the event stream, not by listing again.
    expect(dashboard.page.locator("#feed-mode")).to_have_text("Live.")

    # The page notes the moment its light turns red (wall clock, as the engine's events).
    dashboard.page.evaluate(RED_WATCH, "crashy")
    (container,) = clean_docker.containers.list(filters={"label": f"{L.ID}={agent['id']}"})
    since = int(time.time()) - 1
    container.kill(signal="SIGUSR1")
    red = dashboard.light("crashy", "red")
    assert red.text_content() == "failed"
    (died,) = clean_docker.api.events(
        since=since,
        until=int(time.time()) + 1,
        filters={"container": container.id, "event": "die"},
        decode=True,
    )
    latency = dashboard.page.evaluate("window.redAt") / 1000 - died["timeNano"] / 1e9
    assert "exit 3" in dashboard.row("crashy").inner_text()
    assert dashboard.page.evaluate("window.notReloaded") is True
    assert "failed 1" in dashboard.page.inner_text("#counts")
    expect(dashboard.page.locator("#recent li").first).to_contain_text("crashy failed")
    print(f"\nengine event (the container's death) to red light: {latency * 1000:.0f} ms")
    # Why it is red: its page lists the change among its recent events.
    dashboard.open_agent("crashy")
    expect(dashboard.page.locator("#events")).to_contain_text("failed")
    expect(dashboard.page.locator("#details")).to_contain_text("exited with code 3")
    assert dashboard.errors == []


def test_an_agents_page_follows_its_logs_and_stops_it(
    api: Api, busybox: str, dashboard: Dashboard
) -> None:
    opened(api, busybox, dashboard, "ticker", command=TICKS)
    logs = dashboard.page.locator("#logs")
    expect(logs).to_contain_text("tick-")
    dashboard.page.check("#follow")
    expect(logs).to_contain_text("tick-")
    last = max(int(line[5:]) for line in logs.inner_text().split() if line.startswith("tick-"))
    # A line the agent writes after the follow began appears without any click.
    expect(logs).to_contain_text(f"tick-{last + 3}")

    dashboard.page.get_by_role("button", name="Stop").click()
    dashboard.page.wait_for_selector("#agent-light .light[data-light='grey']", timeout=20_000)
    assert dashboard.page.inner_text("#agent-light") == "stopped"
    assert api.alice.get("/v1/agents/ticker").json()["status"] == "stopped"
    expect(logs).to_contain_text("[log stream ended]", timeout=20_000)
    assert dashboard.errors == []


def test_delete_asks_for_a_confirmation_first(api: Api, busybox: str, dashboard: Dashboard) -> None:
    opened(api, busybox, dashboard, "doomed")
    dashboard.page.get_by_role("button", name="Delete…").click()
    assert api.alice.get("/v1/agents/doomed").status_code == 200
    dashboard.page.get_by_role("button", name="Cancel").click()
    dashboard.page.get_by_role("button", name="Delete…").click()
    dashboard.page.get_by_role("button", name="Delete doomed").click()
    dashboard.page.wait_for_selector("#fleet:not([hidden])")
    dashboard.row("doomed").wait_for(state="detached", timeout=20_000)
    assert api.alice.get("/v1/agents/doomed").status_code == 404
    assert dashboard.dialogs == []


def test_a_viewer_sees_the_agent_but_no_button(
    api: Api, busybox: str, dashboard: Dashboard
) -> None:
    spawn(api, busybox, "watched")
    dashboard.sign_in(api.keys.alice_viewer)
    assert "viewer" in dashboard.page.inner_text("#who")
    dashboard.light("watched", "green")
    dashboard.open_agent("watched")
    dashboard.page.wait_for_selector("#details dd")
    assert dashboard.page.locator("button:visible").all_inner_texts() == ["Sign out"]
    # The server refuses regardless of what a page shows.
    assert api.viewer.post("/v1/agents/watched/stop").status_code == 403


def test_an_operator_sees_only_its_owner_and_an_admin_filters_by_owner(
    api: Api, busybox: str, dashboard: Dashboard
) -> None:
    spawn(api, busybox, "alices")
    response = api.bob.post("/v1/agents", json=body("bobs", busybox))
    assert response.status_code == 201, response.text
    dashboard.sign_in(api.keys.alice)
    dashboard.light("alices", "green")
    assert dashboard.row("bobs").count() == 0
    assert dashboard.page.locator("#filter-owner").is_hidden()

    dashboard.sign_in(api.keys.admin)
    dashboard.light("bobs", "green")
    dashboard.light("alices", "green")
    dashboard.page.select_option("#filter-owner", "bob")
    assert dashboard.row("alices").count() == 0
    assert dashboard.row("bobs").count() == 1
    dashboard.page.select_option("#filter-owner", "")
    dashboard.page.fill("#filter-label", "nothing=here")
    assert dashboard.page.locator("#agents tbody tr").count() == 0


HOSTILE = "<img src=x onerror=alert(1)><script>alert(2)</script><b>bold</b>"


def test_html_in_a_name_a_label_a_command_or_a_log_line_renders_as_text(
    api: Api, busybox: str, dashboard: Dashboard
) -> None:
    # Names and labels cannot hold markup (DNS-1123, label syntax); commands and logs can.
    opened(
        api,
        busybox,
        dashboard,
        "img-src-x-onerror-alert-1",
        command=["sh", "-c", f"echo '{HOSTILE}'; exec sleep 3600", HOSTILE],
        labels={"script": "alert-1"},
    )
    expect(dashboard.page.locator("#logs")).to_contain_text("<img src=x")
    assert HOSTILE in dashboard.page.inner_text("#logs")
    assert HOSTILE in dashboard.page.inner_text("#details")
    assert dashboard.page.locator("img, script:not([src]), #logs *, #details b").count() == 0
    assert dashboard.dialogs == []
    assert dashboard.errors == []
    # Even markup that got in could not run: the policy refuses inline script.
    with dashboard.page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        dashboard.page.evaluate(
            "() => { const s = document.createElement('script');"
            " s.textContent = 'window.ran = 1'; document.body.append(s); }"
        )
    assert dashboard.page.evaluate("window.ran") is None


def test_a_wrong_key_is_refused_and_a_narrow_screen_shows_cards(
    api: Api, busybox: str, dashboard: Dashboard
) -> None:
    dashboard.page.goto(f"{dashboard.url}/ui")
    dashboard.page.fill("#key", "not-a-key")
    dashboard.page.keyboard.press("Enter")
    dashboard.page.wait_for_selector("#sign-in-error:text('not valid')")
    assert dashboard.page.locator("#fleet").is_hidden()

    spawn(api, busybox, "pocket")
    dashboard.page.set_viewport_size({"width": 390, "height": 800})
    dashboard.sign_in(api.keys.alice)
    dashboard.light("pocket", "green")
    assert dashboard.page.locator("#agents thead").is_hidden()
    width = dashboard.page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390
    # Keyboard only: tab to the agent's link and open it.
    for _ in range(12):
        dashboard.page.keyboard.press("Tab")
        if dashboard.page.evaluate("document.activeElement.textContent") == "pocket":
            break
    dashboard.page.keyboard.press("Enter")
    dashboard.page.wait_for_selector("#agent-title:text-is('pocket')")
    wait_status(api.alice, "pocket", "running")


def test_the_page_reconnects_by_itself_when_the_service_restarts(
    api: Api, busybox: str, dashboard: Dashboard, start_server: StartServer
) -> None:
    own = start_server()
    alice = api.client(api.keys.alice)
    alice.base_url = httpx.URL(own.url)
    page = replace(dashboard, url=own.url)
    page.sign_in(api.keys.alice)
    assert alice.post("/v1/agents", json=body("before", busybox)).status_code == 201
    page.light("before", "green")
    page.page.evaluate("window.notReloaded = true")

    own.restart()
    assert alice.post("/v1/agents", json=body("after", busybox)).status_code == 201
    page.light("after", "green", timeout=30_000)
    expect(page.page.locator("#feed-mode")).to_have_text("Live.")
    assert page.page.evaluate("window.notReloaded") is True


def test_the_key_travels_only_in_the_authorization_header_and_is_kept_nowhere(
    api: Api, busybox: str, dashboard: Dashboard
) -> None:
    opened(api, busybox, dashboard, "quiet", command=TICKS)
    dashboard.page.check("#follow")
    expect(dashboard.page.locator("#logs")).to_contain_text("tick-")
    key = api.keys.alice
    to_api = [r for r in dashboard.requests if "/v1/" in r.url]
    assert {"/v1/whoami", "/v1/events", "/v1/agents"} <= {
        r.url.split("?")[0][len(dashboard.url) :] for r in to_api
    }
    for request in dashboard.requests:
        assert key not in request.url
    for request in to_api:
        assert request.headers["authorization"] == f"Bearer {key}"
    stored = dashboard.page.evaluate(
        "() => JSON.stringify([{...sessionStorage}, {...localStorage}, document.cookie])"
    )
    assert key not in stored
    assert dashboard.page.context.cookies() == []
    assert key not in dashboard.page.content()
    dashboard.page.get_by_role("button", name="Sign out").click()
    assert dashboard.page.locator("#fleet").is_hidden()
    assert dashboard.page.locator("#agent").is_hidden()


def test_renew_restart_and_start_from_the_page_and_the_status_filter(
    api: Api, busybox: str, dashboard: Dashboard
) -> None:
    spawn(api, busybox, "leased", ttl_seconds=120)
    spawn(api, busybox, "other")
    assert api.alice.post("/v1/agents/other/stop").status_code == 200
    dashboard.sign_in(api.keys.alice)
    dashboard.light("other", "grey")
    dashboard.page.select_option("#filter-status", "stopped")
    assert dashboard.row("leased").count() == 0
    assert dashboard.row("other").count() == 1
    dashboard.page.select_option("#filter-status", "")
    expect(dashboard.row("leased")).to_contain_text("1m ")

    dashboard.open_agent("leased")
    dashboard.page.get_by_label("TTL seconds").fill("7200")
    dashboard.page.get_by_role("button", name="Renew TTL").click()
    expect(dashboard.page.locator("#action-state")).to_have_text("Renew TTL: done")
    expect(dashboard.page.locator("#details")).to_contain_text("1h 59m")
    dashboard.page.get_by_role("button", name="Restart").click()
    expect(dashboard.page.locator("#action-state")).to_have_text("Restart: done")
    assert api.alice.get("/v1/agents/leased").json()["status"] == "running"

    dashboard.page.go_back()
    dashboard.open_agent("other")
    dashboard.page.get_by_role("button", name="Start", exact=True).click()
    dashboard.page.wait_for_selector("#agent-light .light[data-light='green']", timeout=20_000)
    assert api.alice.get("/v1/agents/other").json()["status"] == "running"
    assert dashboard.errors == []

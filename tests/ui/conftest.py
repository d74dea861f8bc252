"""The dashboard in a real browser: Debian's chromium driven by Playwright, against the
service under test on the real engine (no downloaded browser build exists here)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Dialog,
    Locator,
    Page,
    Request,
    sync_playwright,
)

from testenv.server import ServerProcess

CHROMIUM = Path(os.environ.get("AGENT_PLATFORM_CHROMIUM", "/usr/bin/chromium"))


# Package-scoped: Playwright's sync API holds an event loop while it runs, which the async
# tests elsewhere in a session could not start theirs beside.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"no chromium at {CHROMIUM} (scripts/bootstrap.sh test installs Debian's)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        # As root chromium refuses to start with its sandbox.
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@dataclass
class Dashboard:
    """One browser tab on ``/ui``, and what it did that a user would notice."""

    page: Page
    url: str
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def sign_in(self, key: str) -> None:
        self.page.goto(f"{self.url}/ui")
        self.page.fill("#key", key)
        self.page.click("#sign-in button[type=submit]")
        self.page.wait_for_selector("#who:not([hidden])")

    def row(self, name: str) -> Locator:
        return self.page.locator(f"#agents tr[data-name='{name}']")

    def light(self, name: str, colour: str, timeout: float = 20_000) -> Locator:
        """The agent's light, once it shows ``colour``."""
        found = self.row(name).locator(f".light[data-light='{colour}']")
        found.wait_for(timeout=timeout)
        return found

    def open_agent(self, name: str) -> None:
        self.row(name).get_by_role("link", name=name).click()
        self.page.wait_for_selector(f"#agent-title:text-is('{name}')")


def _fault(message: ConsoleMessage) -> bool:
    """A script error or a blocked load (the policy); not a refused request, which the page
    handles (the browser logs every 4xx answer to fetch as an error too)."""
    return message.type == "error" and "Failed to load resource" not in message.text


@pytest.fixture
def dashboard(browser: Browser, server: ServerProcess) -> Iterator[Dashboard]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    made = Dashboard(page, server.url)

    def on_dialog(dialog: Dialog) -> None:
        made.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("request", lambda request: made.requests.append(request))
    page.on("pageerror", lambda error: made.errors.append(str(error)))
    page.on(
        "console", lambda message: made.errors.append(message.text) if _fault(message) else None
    )
    yield made
    context.close()

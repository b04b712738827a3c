"""The browser side of the panel tests: Debian's Chromium driven by Playwright (no browser
download), a real uvicorn server in a thread, a page that records every console error,
failed request and error reply so a test can assert there were none, and the checks both
networks' browser tests make (every page renders, a column heading sorts its list, the
dashboard polls, an operator releases a quarantined file)."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import uvicorn

from tests.e2e.e2e_support import free_port, wait_until
from tests.panel.panel_support import PASSWORD

CHROMIUM = Path(os.environ.get("FERRY_TEST_CHROMIUM", "/usr/bin/chromium"))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
#: A browser module signs the same people in more often a minute than the login throttle
#: allows one account or address (`test_panel_sessions.py` tests the throttle itself).
UNTHROTTLED = {
    "login_attempts_per_minute_per_ip": 200,
    "login_attempts_per_minute_per_account": 200,
}


def launch_chromium(playwright):
    """Chromium, or a skip (NOT RUN) where there is none; under CI a failure instead."""
    if not CHROMIUM.exists():
        message = (
            f"NOT RUN: no Chromium at {CHROMIUM} (apt-get install -y chromium); "
            "the panel's browser tests need it"
        )
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True
    )


@contextmanager
def serve(app) -> Iterator[str]:
    """`app` on a real uvicorn server in a thread; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=30, what="the panel's test server to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class Watched:
    """What went wrong while a page was used: console errors, failed requests, replies of
    400 and more (`expected` lists statuses a test provokes on purpose), script dialogs
    that were not a confirmation."""

    page: object
    console: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    bad_replies: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    confirms: list[str] = field(default_factory=list)
    expected: set[int] = field(default_factory=set)

    def problems(self) -> list[str]:
        return [*self.console, *self.failed, *self.bad_replies, *self.alerts]

    def assert_clean(self) -> None:
        assert not self.problems(), "\n".join(self.problems())


def watch(page) -> Watched:
    seen = Watched(page)

    def on_console(message) -> None:
        provoked = any(f"status of {code} " in message.text for code in seen.expected)
        if provoked:
            return  # the browser's own line for a reply a test asked for on purpose
        if message.type in ("error", "warning") and "Content Security Policy" in message.text:
            seen.console.append(f"CSP: {message.text}")
        elif message.type == "error":
            seen.console.append(f"console error: {message.text}")

    def on_response(response) -> None:
        if response.status >= 400 and response.status not in seen.expected:
            seen.bad_replies.append(f"{response.status} {response.url}")

    def on_dialog(dialog) -> None:
        if dialog.type == "confirm":
            seen.confirms.append(dialog.message)
            dialog.accept()
        else:
            seen.alerts.append(f"{dialog.type} dialog: {dialog.message}")
            dialog.dismiss()

    page.on("console", on_console)
    page.on("pageerror", lambda exc: seen.console.append(f"page error: {exc}"))

    def on_failed(request) -> None:
        # Leaving a page cancels what it still loads: its icon, an htmx poll in flight.
        left = request.failure == "net::ERR_ABORTED" and (
            "favicon" in request.url or request.resource_type in ("xhr", "fetch")
        )
        if not left:
            seen.failed.append(f"failed: {request.url} {request.failure}")

    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    page.on("dialog", on_dialog)
    return seen


def sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/admin/login")
    page.fill('input[name="username"]', username)
    page.fill('input[name="password"]', password)
    with page.expect_navigation():
        page.click('button[type="submit"]')


@contextmanager
def chromium() -> Iterator:
    """A Chromium for a test module (`launch_chromium`)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = launch_chromium(playwright)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def signed_in(browser, base: str, username: str, viewport=DESKTOP) -> Iterator[tuple]:
    """A page signed in as `username` in a context of its own: (page, what it watched)."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    seen = watch(page)
    sign_in(page, base, username, PASSWORD)
    try:
        yield page, seen
    finally:
        context.close()


def make_dirs(settings) -> None:
    for d in (settings.inbox, settings.outbox, settings.quarantine_dir):
        d.mkdir(parents=True, exist_ok=True)


def assert_every_page_renders(browser, base: str, paths: list[str], viewport) -> None:
    """Each page as the admin: 200, a heading, nothing wider than the screen (tables scroll
    inside their own box), no console error, failed request, error reply or script dialog."""
    with signed_in(browser, base, "root", viewport) as (page, seen):
        for path in paths:
            reply = page.goto(base + path)
            assert reply is not None and reply.status == 200, path
            assert page.locator("h1").count() >= 1, path
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{path} is {overflow} px wider than the screen"
        seen.assert_clean()


def sort_by_header(page, base: str, path: str, label: str, key: str) -> None:
    """On `path`, a click on the heading of the column `label` sorts the list by `key`, and a
    second click the other way: each time the page comes back with the heading marked
    (`aria-sort`) and the sort in its address."""
    page.goto(base + path)

    def heading():
        found = page.locator("thead th", has=page.locator("a", has_text=re.compile(f"^{label}")))
        assert found.count() == 1, (path, label)
        return found

    for _ in range(2):
        was = heading().get_attribute("aria-sort")
        with page.expect_navigation():
            heading().locator("a").click()
        wanted = "descending" if was == "ascending" else "ascending"
        sort = parse_qs(urlsplit(page.url).query)["sort"]
        assert sort == [key if wanted == "ascending" else f"-{key}"], (path, page.url)
        assert heading().get_attribute("aria-sort") == wanted, (path, label)
        marked = (
            heading()
            .locator("xpath=..")
            .locator('th[aria-sort="ascending"], th[aria-sort="descending"]')
        )
        assert marked.count() == 1, (path, label)  # in its table, this column alone
        assert page.locator("h1").count() == 1 and page.locator("tbody").count() >= 1


def assert_headings_sort(browser, base: str, lists: list[tuple[str, str, str]], viewport) -> None:
    """As the admin, `sort_by_header` on each (path, heading, key) of `lists`, with no
    console error, failed request, error reply or script dialog on the way."""
    with signed_in(browser, base, "root", viewport) as (page, seen):
        for path, label, key in lists:
            sort_by_header(page, base, path, label, key)
        seen.assert_clean()


def poll_dashboard(page, base: str):
    """The dashboard's poll, now rather than in 15 s: its reply, after checking the page
    polls every 15 s, says it is no activity (`X-Panel-Poll`) and shows both charts."""
    page.goto(base + "/admin/dashboard")
    assert page.locator("#live").get_attribute("hx-trigger") == "every 15s"
    with page.expect_response(lambda r: r.url.endswith("/admin/dashboard/live")) as polled:
        page.evaluate(
            "htmx.ajax('GET', '/admin/dashboard/live', {source: '#live', target: '#live'})"
        )
    assert polled.value.status == 200
    assert polled.value.request.headers["x-panel-poll"] == "1"  # not activity
    assert page.locator("#live svg.chart").count() == 2
    return polled.value


def release_as_operator(browser, world: dict, not_theirs: tuple[str, ...]) -> str:
    """The operator (olga, on a phone) sees the batch and quarantine pages only, releases the
    world's quarantined file to the inbox, and is refused `not_theirs`; the file's name."""
    base, name = world["base"], world["ids"]["quarantined"]
    with signed_in(browser, base, "olga", PHONE) as (page, seen):
        assert page.url.endswith("/admin/batches")
        assert page.locator("nav.nav a").all_inner_texts() == ["Batches", "Quarantine"]
        page.goto(f"{base}/admin/quarantine")
        row = page.locator("tr", has_text=name)
        assert "<script>" in row.inner_text()  # shown as text
        with page.expect_navigation():
            row.locator("button:has-text('Release')").click()
        assert "released to the inbox" in page.locator(".flash-ok").inner_text()
        assert (Path(world["settings"].inbox) / name).is_file()
        seen.expected.add(403)
        for path in not_theirs:
            assert page.goto(base + path).status == 403, path
        seen.assert_clean()
    return name

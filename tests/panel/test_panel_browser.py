"""The request network's panel in a real browser: headless Chromium (Debian's, through
Playwright) against a real uvicorn server on the test PostgreSQL and Redis.

Every page renders at 1280 px and at 375 px without a console error (a refused inline script
or style shows there), a failed request or an error reply, and a click on a column's heading
sorts its list (one way, then the other); each action works end to end and
is audited; a request without its CSRF token is refused; an operator sees the batch and
quarantine pages only; stored `<script>` never runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from request_network.models import AccountLock, AuditLog, Batch, Request, User
from shared.db import reading, transaction, utcnow
from tests.panel.browser_support import (
    DESKTOP,
    PHONE,
    UNTHROTTLED,
    assert_every_page_renders,
    assert_headings_sort,
    make_dirs,
    poll_dashboard,
    release_as_operator,
    serve,
)
from tests.panel.panel_support import (
    PASSWORD,
    XSS,
    clear_redis,
    fresh,
    ledger_batches,
    make_settings,
    panel_app,
    quarantined,
)
from tests.request_network.request_api_helpers import Seed, truncate_request_db

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def world(pg_urls, tmp_path_factory) -> Iterator[dict]:
    """A request network with people, requests, a locked account, a cached response and a
    quarantined file, served on a real server."""
    with contextmanager(fresh)(pg_urls["request"], truncate_request_db) as url:
        settings = make_settings(url, tmp_path_factory.mktemp("panel") / "transfer", **UNTHROTTLED)
        make_dirs(settings)
        seed = Seed(url)
        seed.profile_type()
        ids = {
            "root": seed.user("root", role="admin"),
            "olga": seed.user("olga", role="operator"),
            "alice": seed.user("alice"),
            "bob": seed.user("bob"),
            "mallory": seed.user(f"m{XSS}"[:64]),
        }
        ids["pending"] = seed.request(ids["alice"])
        ids["answered"] = seed.request(ids["bob"])
        seed.response(ids["answered"], [{"_id": "1", "_source": {"title": XSS}}])
        with transaction(url) as session:
            session.get(User, ids["alice"]).display_name = XSS
            session.add(
                AccountLock(
                    user_id=ids["alice"], failures=5, locked_until=utcnow() + timedelta(minutes=15)
                )
            )
        ids["quarantined"] = quarantined(
            settings,
            f"results-response-00000007-{uuid.uuid4()}.jsonl",
            f"digest mismatch {XSS}",
            b'{"not": "a batch"}\n',
        )
        ids |= ledger_batches(url, Batch, settings, "requests", "results")
        with serve(panel_app(settings)) as base:
            yield {"base": base, "settings": settings, "ids": ids, "url": url}


def audit_actions(url: str, actor: str) -> list[str]:
    with reading(url) as session:
        return list(
            session.scalars(
                select(AuditLog.action).where(AuditLog.actor == actor).order_by(AuditLog.id)
            )
        )


def pages(world) -> list[str]:
    ids = world["ids"]
    return [
        "/admin/dashboard",
        "/admin/users",
        "/admin/users?sort=-role",
        "/admin/users?sort=-last_login_at",
        f"/admin/users/{ids['alice']}",
        f"/admin/users/{ids['mallory']}",
        "/admin/requests",
        "/admin/requests?stuck_hours=1",
        "/admin/requests?sort=-batch_id",
        f"/admin/requests/{ids['pending']}",
        f"/admin/requests/{ids['answered']}",
        "/admin/batches",
        "/admin/batches?tab=carried",
        "/admin/batches?tab=inbox",
        "/admin/batches?tab=acked",
        "/admin/batches/history",
        "/admin/batches/history?sort=-records",
        "/admin/quarantine",
        "/admin/quarantine?sort=reason",
        f"/admin/quarantine/{ids['quarantined']}",
        "/admin/cache",
        "/admin/queues",
        "/admin/settings",
        "/admin/alerts",
        "/admin/notifications",
        "/admin/notifications?sort=-severity",
    ]


#: A list, the heading of one of its columns and the column it sorts by.
SORTED = [
    ("/admin/requests", "User", "username"),
    ("/admin/requests", "Changed", "updated_at"),
    ("/admin/requests", "Request", "id"),
    ("/admin/requests", "Age", "age"),
    ("/admin/requests", "Batch", "batch_id"),
    ("/admin/users", "Role", "role"),
    ("/admin/users", "Profile type", "profile_type"),
    ("/admin/users", "State", "state"),
    ("/admin/users", "Last login", "last_login_at"),
    ("/admin/users", "Custom limits", "custom_limits"),
    ("/admin/settings", "In force", "value"),
    ("/admin/settings", "Bounds", "bounds"),
    ("/admin/batches", "Records", "records"),
    ("/admin/batches?tab=carried", "Waiting", "age_seconds"),
    ("/admin/batches?tab=inbox", "Size", "bytes"),
    ("/admin/batches?tab=acked", "Acked after", "ack_seconds"),
    ("/admin/batches/history", "Took", "processing_ms"),
    ("/admin/quarantine", "Reasons", "reason"),
    ("/admin/alerts", "Severity", "severity"),
    ("/admin/notifications", "Severity", "severity"),
    ("/admin/notifications", "Read", "read"),
]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_renders_cleanly(browser, world, viewport):
    assert_every_page_renders(browser, world["base"], pages(world), viewport)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_column_heading_sorts_its_list(browser, world, viewport):
    assert_headings_sort(browser, world["base"], SORTED, viewport)


def test_the_dashboard_refreshes_itself(as_admin, world):
    page, seen = as_admin
    polled = poll_dashboard(page, world["base"])
    assert polled.request.headers["x-csrf-token"]  # from <body hx-headers>
    seen.assert_clean()


def test_unlock_a_user(as_admin, world):
    page, seen = as_admin
    alice = world["ids"]["alice"]
    page.goto(f"{world['base']}/admin/users/{alice}")
    lock = page.locator("section", has_text="Login lock")
    assert "locked until" in lock.inner_text()
    with page.expect_navigation():
        page.click("button:has-text('Unlock')")
    assert page.locator(".flash-ok").inner_text() == "Account unlocked"
    assert "locked until" not in lock.inner_text()
    assert seen.confirms and "Unlock" in seen.confirms[-1]
    # she can log in again through the API
    token = httpx.post(
        f"{world['base']}/api/v1/auth/login", data={"username": "alice", "password": PASSWORD}
    )
    assert token.status_code == 200, token.text
    assert "account.unlocked" in audit_actions(world["url"], world["ids"]["root"])
    seen.assert_clean()


def bearer(base: str, username: str) -> dict[str, str]:
    login = httpx.post(
        f"{base}/api/v1/auth/login", data={"username": username, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


def test_set_a_custom_limit_and_see_it_in_force(as_admin, world):
    page, seen = as_admin
    bob = world["ids"]["bob"]
    page.goto(f"{world['base']}/admin/users/{bob}")
    page.fill('input[name="minute"]', "7")
    page.fill('input[name="reason"]', "a busy week")
    with page.expect_navigation():
        page.click("button:has-text('Set limits')")
    assert page.locator(".flash-ok").inner_text() == "Custom limits set"
    row = page.locator("#usage tr", has_text="minute")
    assert "7" in row.inner_text() and "override" in row.inner_text()
    # in force for bob himself
    mine = httpx.get(
        f"{world['base']}/api/v1/rate-limits/me", headers=bearer(world["base"], "bob")
    ).json()
    minute = next(w for w in mine["windows"] if w["window"] == "minute")
    assert (minute["limit"], minute["source"]) == (7, "override")
    assert "rate_limits.set" in audit_actions(world["url"], world["ids"]["root"])
    seen.assert_clean()


def test_cancel_a_request(as_admin, world):
    page, seen = as_admin
    request_id = world["ids"]["pending"]
    page.goto(f"{world['base']}/admin/requests/{request_id}")
    with page.expect_navigation():
        page.click("button:has-text('Cancel')")
    assert page.locator(".flash-ok").inner_text() == "Request cancelled"
    assert "CANCELLED" in page.locator("dl.facts").first.inner_text()
    with reading(world["url"]) as session:
        assert session.get(Request, request_id).status == "CANCELLED"
    assert "request.cancelled" in audit_actions(world["url"], world["ids"]["root"])
    seen.assert_clean()


def test_release_a_quarantined_file(browser, world):
    """As the operator, who sees the batch and quarantine pages only."""
    not_theirs = ("/admin/users", "/admin/dashboard", "/admin/cache", "/admin/queues")
    release_as_operator(browser, world, not_theirs)
    assert "quarantine.released" in audit_actions(world["url"], "olga")


def test_clear_the_cache(as_admin, world):
    page, seen = as_admin
    base, answered = world["base"], world["ids"]["answered"]
    read = httpx.get(f"{base}/api/v1/requests/{answered}/response", headers=bearer(base, "bob"))
    assert read.status_code == 200 and read.headers["x-cache"] == "MISS"
    page.goto(f"{base}/admin/cache")
    assert page.locator("table", has_text=answered).count() == 1  # among the largest entries
    with page.expect_navigation():
        page.click("button:has-text('Clear everything')")
    flash = page.locator(".flash-ok").inner_text()
    assert flash.startswith("Cleared (all all): 1 entries"), flash
    assert "The cache is empty" in page.content()
    assert "cache.cleared" in audit_actions(world["url"], world["ids"]["root"])
    seen.assert_clean()


def test_run_a_task_now_and_purge_its_queue(as_admin, world):
    page, seen = as_admin
    base = world["base"]
    page.goto(f"{base}/admin/queues")
    row = page.locator("tr", has_text="system_monitoring")
    with page.expect_navigation():
        row.locator("button:has-text('Run now')").click()
    assert "sent to ferry.request" in page.locator(".flash-ok").inner_text()
    assert "/admin/tasks/" in page.url
    page.goto(f"{base}/admin/queues")
    queue = page.locator("tr", has_text="ferry.request").first
    assert queue.locator("td.num").inner_text() == "1"  # no worker here: it waits
    button = queue.locator("button:has-text('Purge')")
    field = queue.locator('input[name="confirm"]')
    assert button.is_disabled()
    field.fill("ferry")
    assert button.is_disabled()
    field.fill("ferry.request")
    assert button.is_enabled()
    with page.expect_navigation():
        button.click()
    assert page.locator(".flash-ok").inner_text() == "Queue ferry.request purged: 1 messages"
    actions = audit_actions(world["url"], world["ids"]["root"])
    assert "task.run_now" in actions and "queue.purged" in actions
    seen.assert_clean()


def test_a_call_without_the_csrf_token_is_refused(as_admin, world):
    page, seen = as_admin
    alice = world["ids"]["alice"]
    page.goto(f"{world['base']}/admin/users/{alice}")
    seen.expected.add(403)
    status = page.evaluate(
        "(url) => fetch(url, {method: 'POST', body: new URLSearchParams({confirmed: 'yes'})})"
        ".then(r => r.status)",
        f"/admin/users/{alice}/reset-limits",
    )
    assert status == 403
    # with the token htmx sends (hx-headers on <body>), the same call goes through
    token = page.evaluate("JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token']")
    status = page.evaluate(
        "([url, token]) => fetch(url, {method: 'POST', headers: {'X-CSRF-Token': token},"
        " body: new URLSearchParams({confirmed: 'yes'})}).then(r => r.status)",
        [f"/admin/users/{alice}/reset-limits", token],
    )
    assert status == 200  # followed the redirect to the user's page
    assert "rate_limits.reset" in audit_actions(world["url"], world["ids"]["root"])
    seen.assert_clean()


def test_a_page_whose_session_ended_goes_to_the_login_on_its_next_poll(as_admin, world):
    page, seen = as_admin
    page.goto(world["base"] + "/admin/dashboard")
    clear_redis()  # the session ends (as an idle timeout or a logout elsewhere would)
    seen.expected.add(401)
    with page.expect_navigation():
        page.evaluate("htmx.ajax('GET', '/admin/dashboard/live', '#live')")
    assert page.url.endswith("/admin/login")
    assert page.locator("h1").inner_text() == "Sign in"
    seen.assert_clean()

"""The response network's panel in a real browser: headless Chromium (Debian's, through
Playwright) against a real uvicorn server on the test PostgreSQL and Redis.

Every page renders at 1280 px and at 375 px without a console error, a failed request or an
error reply, and a click on a column's heading sorts its list; each action works end to end
and is audited with the admin's username (or the operator's): create a user, disable and
enable, reset a password, assign a profile type, change a governed setting and read it back
with its history, retry a failed request, release a quarantined file as an operator, run a
task now.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from response_network.models import AuditLog, Batch, GovernedSetting, ImportedRequest, User
from shared.db import reading
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
    sign_in,
    watch,
)
from tests.panel.panel_support import PASSWORD, XSS, fresh, ledger_batches, quarantined
from tests.panel.response_support import (
    ResponseSeed,
    empty_response_db,
    make_response_settings,
    response_app,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def world(pg_urls, tmp_path_factory) -> Iterator[dict]:
    """A response network with people, a failed and an answered request and a quarantined
    file, served on a real server."""
    with contextmanager(fresh)(pg_urls["response"], empty_response_db) as url:
        settings = make_response_settings(
            url, tmp_path_factory.mktemp("rpanel") / "transfer", **UNTHROTTLED
        )
        make_dirs(settings)
        seed = ResponseSeed(url)
        seed.profile_type()
        seed.profile_type("patents")
        ids = {
            "root": seed.user("root", role="admin"),
            "olga": seed.user("olga", role="operator"),
            "oscar": seed.user("oscar", role="operator"),
            "ursula": seed.user("ursula"),
            "mallory": seed.user(f"m{XSS}"),
        }
        ids["failed"] = seed.request(ids["ursula"], status="FAILED", error=f"no index {XSS}")
        ids["done"] = seed.request(ids["ursula"], status="DONE", correlation_id=XSS)
        ids["quarantined"] = quarantined(
            settings,
            f"requests-request-00000007-{uuid.uuid4()}.jsonl",
            f"bad {XSS}",
            b'{"not": "a batch"}\n',
        )
        ids |= ledger_batches(url, Batch, settings, "results", "requests")
        with serve(response_app(settings)) as base:
            yield {"base": base, "settings": settings, "ids": ids, "url": url}


def audit_actions(url: str, actor: str) -> list[tuple[str, str]]:
    with reading(url) as session:
        rows = session.scalars(
            select(AuditLog).where(AuditLog.actor == actor).order_by(AuditLog.id)
        )
        return [(r.action, r.target) for r in rows]


def pages(world) -> list[str]:
    ids = world["ids"]
    return [
        "/admin/dashboard",
        "/admin/users",
        "/admin/users?sort=-role",
        "/admin/users/new",
        f"/admin/users/{ids['ursula']}",
        f"/admin/users/{ids['mallory']}",
        "/admin/requests",
        "/admin/requests?status=FAILED",
        "/admin/requests?sort=-attempt",
        f"/admin/requests/{ids['failed']}",
        f"/admin/requests/{ids['done']}",
        "/admin/executions",
        "/admin/executions?sort=-took_ms",
        "/admin/batches",
        "/admin/batches?tab=carried",
        "/admin/batches?tab=inbox",
        "/admin/batches?tab=acked",
        "/admin/batches?tab=acked&sort=-ack_seconds",
        "/admin/batches/history",
        "/admin/quarantine",
        f"/admin/quarantine/{ids['quarantined']}",
        "/admin/queues",
        "/admin/settings",
        "/admin/settings/history",
        "/admin/settings/history?sort=-new",
        "/admin/alerts",
        "/admin/notifications",
    ]


#: A list, the heading of one of its columns and the column it sorts by.
SORTED = [
    ("/admin/requests", "Status", "status"),
    ("/admin/requests", "Imported", "imported_at"),
    ("/admin/requests", "Sending", "attempt"),
    ("/admin/requests", "Correlation id", "correlation_id"),
    ("/admin/executions", "Started", "started_at"),
    ("/admin/executions", "took", "took_ms"),
    ("/admin/executions", "Error", "error"),
    ("/admin/users", "State", "state"),
    ("/admin/users", "Last login", "last_login_at"),
    ("/admin/settings", "Default", "default"),
    ("/admin/settings/history", "New", "new"),
    ("/admin/settings/history", "Version", "version"),
    ("/admin/batches?tab=carried", "Records", "records"),
    ("/admin/batches?tab=acked", "Written", "written_at"),
    ("/admin/quarantine", "Size", "bytes"),
    ("/admin/notifications", "When", "at"),
]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_page_renders_cleanly(browser, world, viewport):
    assert_every_page_renders(browser, world["base"], pages(world), viewport)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_a_column_heading_sorts_its_list(browser, world, viewport):
    assert_headings_sort(browser, world["base"], SORTED, viewport)


def test_the_dashboard_refreshes_itself(as_admin, world):
    page, seen = as_admin
    poll_dashboard(page, world["base"])
    assert "search" in page.locator("ul.health").inner_text()
    seen.assert_clean()


def test_create_a_user_and_assign_a_profile_type(as_admin, world):
    page, seen = as_admin
    base = world["base"]
    page.goto(f"{base}/admin/users")
    with page.expect_navigation():
        page.click("a:has-text('New user')")
    page.fill('input[name="username"]', "vera")
    page.fill('input[name="password"]', "vera's long password")
    page.select_option('select[name="role"]', "user")
    page.select_option('select[name="profile_type"]', "articles")
    with page.expect_navigation():
        page.click("button:has-text('Create')")
    assert page.locator(".flash-ok").inner_text() == "User vera created"
    assert page.locator("h1").inner_text().startswith("vera")
    form = page.locator("form", has=page.locator('select[name="profile_type"]'))
    form.locator('select[name="profile_type"]').select_option("patents")
    with page.expect_navigation():
        form.locator("button:has-text('Save')").click()
    assert page.locator(".flash-ok").inner_text() == "User updated"
    assert "patents" in page.locator("dl.facts").inner_text()
    with reading(world["url"]) as session:
        vera = session.scalars(select(User).where(User.username == "vera")).one()
        assert (vera.profile_type, vera.version) == ("patents", 2)
    actions = audit_actions(world["url"], "root")
    assert ("user.created", vera.id) in actions and ("user.updated", vera.id) in actions
    seen.assert_clean()


def test_disable_and_enable_a_user(as_admin, world):
    page, seen = as_admin
    ursula = world["ids"]["ursula"]
    page.goto(f"{world['base']}/admin/users/{ursula}")
    with page.expect_navigation():
        page.click("button:has-text('Disable')")
    assert seen.confirms and "Disable ursula" in seen.confirms[-1]
    assert page.locator(".flash-ok").inner_text() == "User disabled"
    assert "inactive" in page.locator("dl.facts").inner_text()
    with page.expect_navigation():
        page.click("button:has-text('Enable')")
    assert page.locator(".flash-ok").inner_text() == "User enabled"
    with reading(world["url"]) as session:
        assert session.get(User, ursula).active
    seen.assert_clean()


def test_reset_a_password_and_sign_in_with_it(browser, as_admin, world):
    page, seen = as_admin
    oscar = world["ids"]["oscar"]
    page.goto(f"{world['base']}/admin/users/{oscar}")
    page.fill('input[name="password"]', "oscar's new password")
    page.check('input[type="checkbox"][name="confirmed"]')
    with page.expect_navigation():
        page.click("button:has-text('Reset password')")
    assert page.locator(".flash-ok").inner_text() == "Password reset"
    assert ("user.password_reset", oscar) in audit_actions(world["url"], "root")
    seen.assert_clean()
    # oscar signs in with the new password (the old one no longer works)
    context = browser.new_context(viewport=PHONE)
    other = context.new_page()
    watched = watch(other)
    watched.expected.add(401)
    sign_in(other, world["base"], "oscar", PASSWORD)
    assert other.url.endswith("/admin/login")
    sign_in(other, world["base"], "oscar", "oscar's new password")
    assert other.url.endswith("/admin/batches")
    watched.assert_clean()
    context.close()


def test_change_a_governed_setting_and_see_its_history(as_admin, world):
    page, seen = as_admin
    page.goto(f"{world['base']}/admin/settings")
    row = page.locator("#setting-rate_limits-soft_ratio")
    seen.expected.add(422)
    row.locator('input[name="value"]').fill("3")
    with page.expect_navigation():
        row.locator("button:has-text('Save')").click()
    assert page.locator("#error-rate_limits-soft_ratio").count() == 1  # beside its field
    row.locator('input[name="value"]').fill("0.65")
    with page.expect_navigation():
        row.locator("button:has-text('Save')").click()
    assert page.locator(".flash-ok").inner_text() == "rate_limits.soft_ratio changed"
    assert row.locator("td.value").inner_text() == "0.65"
    latest = page.locator("table.changes tbody tr").first.inner_text()
    assert "rate_limits.soft_ratio" in latest and "0.65" in latest and "root" in latest
    with reading(world["url"]) as session:
        stored = session.get(GovernedSetting, "rate_limits.soft_ratio")
        assert (stored.value, stored.version) == (0.65, 1)
    assert ("setting.changed", "rate_limits.soft_ratio") in audit_actions(world["url"], "root")
    seen.assert_clean()


def test_retry_a_failed_request(as_admin, world):
    page, seen = as_admin
    failed = world["ids"]["failed"]
    page.goto(f"{world['base']}/admin/requests/{failed}")
    assert "<script>" in page.locator("section", has_text="Executions").inner_text()  # text
    with page.expect_navigation():
        page.click("button:has-text('Retry')")
    assert page.locator(".flash-ok").inner_text() == "Request queued again"
    assert "QUEUED" in page.locator("dl.facts").first.inner_text()
    assert page.locator("button:has-text('Retry')").count() == 0
    with reading(world["url"]) as session:
        assert session.get(ImportedRequest, failed).status == "QUEUED"
    assert ("request.retried", failed) in audit_actions(world["url"], "root")
    seen.assert_clean()


def test_release_a_quarantined_file(browser, world):
    """As the operator, who sees the batch and quarantine pages only."""
    not_theirs = ("/admin/users", "/admin/dashboard", "/admin/settings", "/admin/queues")
    name = release_as_operator(browser, world, not_theirs)
    assert ("quarantine.released", name) in audit_actions(world["url"], "olga")


def test_run_a_task_now(as_admin, world):
    page, seen = as_admin
    base = world["base"]
    page.goto(f"{base}/admin/queues")
    row = page.locator("tr", has_text="system_monitoring")
    with page.expect_navigation():
        row.locator("button:has-text('Run now')").click()
    assert "sent to ferry.response" in page.locator(".flash-ok").inner_text()
    assert "/admin/tasks/" in page.url
    page.goto(f"{base}/admin/queues")
    queue = page.locator("tr", has_text="ferry.response").first
    assert queue.locator("td.num").inner_text() == "1"  # no worker here: it waits
    actions = [a for a, _ in audit_actions(world["url"], world["ids"]["root"])]
    assert "task.run_now" in actions  # the API's actor here: the admin's id
    seen.assert_clean()

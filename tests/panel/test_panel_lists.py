"""The panel's lists sort by their columns, both ways, and refuse a column they do not sort
by (422 naming `sort`): both networks' requests, the response network's executions, the users
(profile type, state, last login, custom limits too), the governed settings and the response
network's change history, the admin's own notifications, every tab of the batch page with
what the batch ledger knows of each batch (records, errors, size, written, acknowledged and
how long after), the quarantine and the batch metadata."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import get_args

import pytest
from sqlalchemy import text, update

from request_network.models import (
    EXPORTED,
    AccountLock,
    Batch,
    Notification,
    Request,
    RequestExport,
    User,
)
from response_network.models import ImportedRequest
from response_network.services import governed
from shared.db import transaction, utcnow
from shared.panel import batch_pages
from tests.panel.panel_support import batch_file, ledger_batches, quarantined, sign_in
from transfer.operator.batch_report import BatchSort

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def in_order(html: str, *names: str) -> bool:
    """Whether `names` stand in this order in the page's table."""
    body = html.split("<tbody>", 1)[1]
    places = [body.index(n) for n in names]
    return places == sorted(places)


def assert_refused(client, path: str) -> None:
    reply = client.get(path)
    assert reply.status_code == 422, (path, reply.text[:300])
    assert "invalid fields: query.sort" in reply.text


def headings(html: str) -> list[str]:
    """The column headings of the page's (first) table."""
    head = html.split("<thead>", 1)[1].split("</thead>", 1)[0]
    return re.findall(r"<th[ >].*?</th>", head, re.S)


def assert_every_heading_sorts(html: str, *but: str) -> None:
    """Each column heading of the page's table is a sort link, but those labelled `but`."""
    for heading in headings(html):
        label = re.sub(r"<[^>]+>|[▲▼]", "", heading).strip()
        assert ("<a href=" in heading and "sort=" in heading) != (label in but), heading


def both_ways(key: str, order: list[str]) -> dict[str, tuple[str, ...]]:
    """`key` lists the rows in `order`, `-key` the other way round."""
    return {key: tuple(order), f"-{key}": tuple(order[::-1])}


def assert_sorts(client, path: str, expected: dict[str, tuple[str, ...]]) -> None:
    """`path?sort=…` lists the rows (each named by a text in its row) in the order expected."""
    for sort, order in expected.items():
        page = client.get(f"{path}{'&' if '?' in path else '?'}sort={sort}")
        assert page.status_code == 200, (sort, page.text[:300])
        assert in_order(page.text, *order), sort


def test_the_response_networks_requests_sort_by_their_columns(rclient, rpeople, rseed):
    ids = {
        user: rseed.request(rpeople[user], status=status, hours_ago=hours)
        for user, status, hours in (("root", "QUEUED", 1), ("olga", "FAILED", 3))
    }
    ids["ursula"] = rseed.request(rpeople["ursula"], status="CANCELLED", hours_ago=2)
    sign_in(rclient, "root")
    default = rclient.get("/admin/requests").text
    assert in_order(default, ids["root"], ids["ursula"], ids["olga"])  # latest imported first
    assert 'aria-sort="descending"' in default.split("Imported", 1)[0].rsplit("<th", 1)[1]
    oldest = rclient.get("/admin/requests?sort=imported_at").text
    assert in_order(oldest, ids["olga"], ids["ursula"], ids["root"])
    by_status = rclient.get("/admin/requests?sort=status").text
    assert in_order(by_status, ids["ursula"], ids["olga"], ids["root"])  # CANCELLED, FAILED, …
    backwards = rclient.get("/admin/requests?sort=-status").text
    assert in_order(backwards, ids["root"], ids["olga"], ids["ursula"])
    # a header links to the other way; a filter keeps the sort and the sort keeps the filter
    assert 'href="/admin/requests?sort=-status&amp;offset=0"' in by_status
    failed = rclient.get("/admin/requests?status=FAILED&sort=-submitted_at").text
    assert ids["olga"] in failed and ids["root"] not in failed
    assert 'name="sort" value="-submitted_at"' in failed
    assert "status=FAILED&amp;sort=submitted_at" in failed
    assert_refused(rclient, "/admin/requests?sort=query")
    assert_refused(rclient, "/admin/requests?sort=--status")


def notify(url: str, user_id: str, title: str, kind: str, severity: str, **more) -> None:
    with transaction(url) as session:
        session.add(
            Notification(
                event_id=str(uuid.uuid4()),
                user_id=user_id,
                kind=kind,
                severity=severity,
                title=title,
                **more,
            )
        )


def test_my_notifications_sort_by_time_severity_kind_and_read(client, db, people):
    now = utcnow()
    for title, kind, severity, hours, read_at in (
        ("note-old-critical", "component.down", "critical", 3, None),
        ("note-new-info", "request.completed", "info", 1, None),
        ("note-read-warning", "batch.unacknowledged", "warning", 2, now),
    ):
        at = now - timedelta(hours=hours)
        notify(db, people["root"], title, kind, severity, at=at, read_at=read_at)
    sign_in(client, "root")
    old, new, read = "note-old-critical", "note-new-info", "note-read-warning"
    for sort, order in (
        ("", (new, old, read)),  # unread first, then the newest
        ("-read", (read, new, old)),
        ("at", (old, read, new)),
        ("-severity", (old, read, new)),  # by weight, not by name
        ("severity", (new, read, old)),
        ("kind", (read, old, new)),
    ):
        assert in_order(client.get(f"/admin/notifications?sort={sort}").text, *order), sort
    unread = client.get("/admin/notifications?unread=true&sort=at").text
    assert in_order(unread, "note-old-critical", "note-new-info")
    assert "note-read-warning" not in unread
    assert 'aria-sort="ascending"' in unread and "unread=true&amp;sort=-at" in unread
    assert_refused(client, "/admin/notifications?sort=title")


@pytest.fixture
def ledger(db, settings, people) -> dict[str, str]:
    """Two batches acknowledged (kept in outbox/acked), one carried and two in the outbox,
    all three awaiting their acknowledgement; a file in the inbox and one in quarantine."""
    names = ledger_batches(db, Batch, settings, "requests", "results")
    names["quarantined"] = quarantined(
        settings, batch_file("results", "response", 7, str(uuid.uuid4())), "digest mismatch"
    )
    return names


def cells(html: str, name: str) -> list[str]:
    """The texts of the cells of the table row that names `name`."""
    row = next(r for r in html.split("<tr") if name in r and "<td" in r)
    return [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]


def test_every_batch_tab_shows_the_ledgers_metadata_and_sorts_by_each_column(client, ledger):
    sign_in(client, "olga")  # the operator's pages
    outbox = client.get("/admin/batches").text
    assert in_order(outbox, ledger["out4"], ledger["out5"])  # carrying order
    # stream, seq, file, records, errors, size, SHA-256, written
    row = cells(outbox, ledger["out4"])
    assert row[:6] == ["requests", "4", ledger["out4"], "2", "0", "2.0 KiB"]
    assert len(row[6]) == 64 and row[7].endswith("UTC")
    by_records = client.get("/admin/batches?sort=-records").text
    assert in_order(by_records, ledger["out5"], ledger["out4"])
    assert in_order(client.get("/admin/batches?sort=bytes").text, ledger["out5"], ledger["out4"])

    carried = client.get("/admin/batches?tab=carried").text  # the longest waiting first
    assert in_order(carried, ledger["carried"], ledger["out4"], ledger["out5"])
    row = cells(carried, ledger["carried"])
    assert row[:6] == ["requests", "3", ledger["carried"], "12", "1", "120 B"]
    assert row[8] == "carried" and cells(carried, ledger["out4"])[8] == "outbox"
    fewest = client.get("/admin/batches?tab=carried&sort=records").text
    assert in_order(fewest, ledger["out4"], ledger["out5"], ledger["carried"])

    acked = client.get("/admin/batches?tab=acked").text
    # stream, seq, file, records, errors, size, written, acknowledged, acknowledged after
    first, second = cells(acked, ledger["acked1"]), cells(acked, ledger["acked2"])
    assert first[3:6] == ["30", "1", "300 B"] and first[8] == "90 s"
    assert second[3:6] == ["4", "0", "40 B"] and second[8] == "2.0 h"
    assert first[6].endswith("UTC") and first[7].endswith("UTC")
    slowest = client.get("/admin/batches?tab=acked&sort=-ack_seconds").text
    assert in_order(slowest, ledger["acked2"], ledger["acked1"])
    assert in_order(
        client.get("/admin/batches?tab=acked&sort=records").text, ledger["acked2"], ledger["acked1"]
    )

    inbox = client.get("/admin/batches?tab=inbox").text
    assert cells(inbox, ledger["inbox"])[:5] == [
        "results",
        "response",
        "8",
        ledger["inbox"],
        "1.5 KiB",
    ]
    assert "known once imported" in inbox

    for tab, keys in batch_pages.SORTS.items():  # every column shown sorts, both ways
        for key in keys:
            for sort in (key, f"-{key}"):
                page = client.get(f"/admin/batches?tab={tab}&sort={sort}")
                assert page.status_code == 200, (tab, sort)
                assert f'href="/admin/batches?tab={tab}&amp;sort=' in page.text
    assert_refused(client, "/admin/batches?tab=inbox&sort=records")  # not a column there
    assert_refused(client, "/admin/batches?sort=password")


def test_the_quarantine_sorts_by_its_columns_and_shows_each_files_stream_and_size(
    client, settings, ledger
):
    other = quarantined(
        settings, batch_file("users", "response", 2, str(uuid.uuid4())), "a forked chain", b"z"
    )
    sign_in(client, "olga")
    page = client.get("/admin/quarantine").text
    assert 'aria-sort="descending"' in page.split("When", 1)[0].rsplit("<th", 1)[1]
    by_name = client.get("/admin/quarantine?sort=-quarantined_as").text
    assert in_order(by_name, other, ledger["quarantined"])
    row = cells(page, ledger["quarantined"])
    assert row[2:6] == ["results", "7", "8 B", "digest mismatch"]
    by_reason = client.get("/admin/quarantine?sort=reason").text
    assert in_order(by_reason, other, ledger["quarantined"])
    assert in_order(client.get("/admin/quarantine?sort=-seq").text, ledger["quarantined"], other)
    assert in_order(client.get("/admin/quarantine?sort=bytes").text, other, ledger["quarantined"])
    assert_refused(client, "/admin/quarantine?sort=sha256")


def test_the_batch_metadata_sorts_by_every_column(client, ledger):
    assert (
        tuple(dict.fromkeys(s.lstrip("-") for s in get_args(BatchSort)))
        == batch_pages.HISTORY_SORTS
    )
    sign_in(client, "root")
    newest = client.get("/admin/batches/history").text
    assert in_order(newest, ledger["out5"], ledger["out4"], ledger["carried"], ledger["acked1"])
    most = client.get("/admin/batches/history?sort=-records").text
    assert in_order(most, ledger["acked1"], ledger["carried"], ledger["out5"], ledger["out4"])
    for key in batch_pages.HISTORY_SORTS:
        for sort in (key, f"-{key}"):
            assert (
                client.get(f"/admin/batches/history?sort={sort}&direction=out").status_code == 200
            )
    kept = client.get("/admin/batches/history?direction=out&sort=seq").text
    assert "direction=out&amp;sort=-seq" in kept and 'name="sort" value="seq"' in kept
    assert_refused(client, "/admin/batches/history?sort=digest")


def test_the_request_networks_requests_sort_by_id_age_and_batch(client, db, seed, people):
    ids = [seed.request(people["alice"], status=s) for s in (EXPORTED, "PENDING", EXPORTED)]
    now = utcnow()
    with transaction(db) as session:
        for hours, rid in enumerate(ids):  # the first the youngest
            session.execute(
                update(Request)
                .where(Request.id == rid)
                .values(created_at=now - timedelta(hours=hours + 1))
            )
    sent = sorted((rid for rid in ids if rid != ids[1]), key=lambda rid: batch_of(db, rid))
    sign_in(client, "root")
    assert_every_heading_sorts(client.get("/admin/requests").text)
    assert_sorts(
        client,
        "/admin/requests",
        {
            **both_ways("id", sorted(ids)),
            **both_ways("age", ids),
            "batch_id": (*sent, ids[1]),  # not sent yet: last either way
            "-batch_id": (*sent[::-1], ids[1]),
        },
    )
    by_age = client.get("/admin/requests?sort=age").text
    assert 'aria-sort="ascending"' in by_age.split("Age", 1)[0].rsplit("<th", 1)[1]
    assert 'href="/admin/requests?sort=-age&amp;offset=0"' in by_age
    assert_refused(client, "/admin/requests?sort=query")


def batch_of(url: str, request_id: str) -> str:
    with transaction(url) as session:
        return session.get(RequestExport, request_id).batch_id


def test_the_response_networks_requests_sort_by_id_and_correlation_id(rclient, rpeople, rseed):
    ids = [
        rseed.request(rpeople["ursula"], hours_ago=n, correlation_id=cid)
        for n, cid in ((1, "corr-b"), (2, None), (3, "corr-a"))
    ]
    sign_in(rclient, "root")
    assert_every_heading_sorts(rclient.get("/admin/requests").text)
    assert_sorts(
        rclient,
        "/admin/requests",
        {
            **both_ways("id", sorted(ids)),
            "correlation_id": (ids[2], ids[0], ids[1]),  # none: last either way
            "-correlation_id": (ids[0], ids[2], ids[1]),
        },
    )
    assert_refused(rclient, "/admin/requests?sort=batch_id")


def test_the_executions_sort_by_every_column(rclient, rdb, rpeople, rseed):
    ids = {
        name: rseed.request(rpeople["ursula"], status=status, error=error, hours_ago=hours)
        for name, status, error, hours in (
            ("done", "DONE", None, 1),
            ("late", "FAILED", "b: search timed out", 2),
            ("lost", "FAILED", "a: index missing", 3),
        )
    }
    with transaction(rdb) as session:
        session.execute(
            update(ImportedRequest)
            .where(ImportedRequest.id == ids["lost"])
            .values(profile_type="payroll")
        )
    done, late, lost = ids["done"], ids["late"], ids["lost"]
    sign_in(rclient, "root")
    page = rclient.get("/admin/executions").text
    assert in_order(page, done, late, lost)  # newest first
    assert_every_heading_sorts(page)
    assert 'aria-sort="descending"' in page.split(">Started ▼", 1)[0].rsplit("<th", 1)[1]
    assert_sorts(
        rclient,
        "/admin/executions",
        {
            "started_at": (lost, late, done),
            **both_ways("request_id", sorted(ids.values())),
            "status": (done, late, lost),  # DONE, then FAILED newest first
            "-status": (late, lost, done),
            "error": (lost, late, done),  # no error: last either way
            "-error": (late, lost, done),
            "took_ms": (done, late, lost),  # never ran: last either way
            "profile_type": (done, late, lost),
            "-profile_type": (lost, done, late),
        },
    )
    for key in ("attempt", "finished_at"):
        for sort in (key, f"-{key}"):
            assert rclient.get(f"/admin/executions?sort={sort}").status_code == 200
    failed = rclient.get("/admin/executions?status=FAILED&sort=error").text
    assert in_order(failed, lost, late) and done not in failed
    assert 'name="sort" value="error"' in failed and "status=FAILED&amp;sort=-error" in failed
    assert_refused(rclient, "/admin/executions?sort=user_id")


def test_the_users_sort_by_profile_type_state_last_login_and_custom_limits(
    client, db, seed, people
):
    seed.profile_type("payroll")
    bob = seed.user("bob", profile_type="payroll", active=False)
    now = utcnow()
    with transaction(db) as session:
        session.execute(
            update(User).where(User.id == people["alice"]).values(rate_limits={"minute": 5})
        )
        session.execute(text("UPDATE users SET rate_limits = 'null' WHERE id = :id"), {"id": bob})
        session.add(AccountLock(user_id=people["olga"], locked_until=now + timedelta(hours=1)))
        session.add(AccountLock(user_id=people["alice"], last_login_at=now - timedelta(days=2)))
    sign_in(client, "root")  # root's last login: now
    alice, bob, olga, root = (f">{name}</a>" for name in ("alice", "bob", "olga", "root"))
    page = client.get("/admin/users").text
    assert_every_heading_sorts(page)
    assert "Custom limits" in page
    assert_sorts(
        client,
        "/admin/users",
        {
            "profile_type": (root, bob),
            "-profile_type": (bob, root),
            "state": (root, olga, bob),  # active, active but locked, inactive
            "-state": (bob, olga, root),
            "last_login_at": (alice, root, olga),  # never: last either way
            "-last_login_at": (root, alice, olga),
            "custom_limits": (root, alice),
            "-custom_limits": (alice, root),
        },
    )
    assert in_order(client.get("/admin/users?sort=custom_limits").text, bob, alice)  # JSON null
    assert in_order(client.get("/admin/users?sort=-custom_limits").text, alice, bob)
    kept = client.get("/admin/users?status=active&sort=-last_login_at").text
    assert bob not in kept and "status=active&amp;sort=last_login_at" in kept
    assert_refused(client, "/admin/users?sort=password_hash")


def test_the_response_networks_users_sort_by_every_column_shown(rclient, rpeople):
    sign_in(rclient, "root")
    assert_every_heading_sorts(rclient.get("/admin/users").text)
    for key in ("profile_type", "state", "last_login_at"):
        for sort in (key, f"-{key}"):
            assert rclient.get(f"/admin/users?sort={sort}").status_code == 200, sort
    assert_refused(rclient, "/admin/users?sort=version")


def test_the_governed_settings_sort_by_value_default_and_bounds(client, rclient, rpeople, people):
    soft, grace, by_role = (
        "rate_limits.soft_ratio",
        "rate_limits.grace_ratio",
        "rate_limits.by_role",
    )
    for panel, but in ((client, ()), (rclient, ("Change",))):
        sign_in(panel, "root")
        assert_every_heading_sorts(panel.get("/admin/settings").text, *but)
        assert_sorts(
            panel,
            "/admin/settings",
            {
                "default": (soft, grace, by_role),  # 0.8, 1.1, then {}: numbers first
                "-default": (by_role, grace, soft),
                "value": (soft, grace, by_role),
                "bounds": (soft, grace),  # > 0, ≥ 1
            },
        )
        assert_refused(panel, "/admin/settings?sort=description")


def test_the_settings_history_sorts_by_every_column(rclient, rdb, rsettings, rpeople):
    changes = (
        ("amy-x", "rate_limits.grace_seconds", 600),
        ("bob-x", "rate_limits.soft_ratio", 0.7),
        ("cat-x", "rate_limits.by_role", {"articles": {"user": {"minute": 5}}}),
        ("dan-x", "rate_limits.grace_seconds", 120),
    )
    for actor, key, value in changes:
        with transaction(rdb) as session:
            governed.set_values({key: value}, rsettings, session=session, actor=actor)
    amy, bob, cat, dan = (actor for actor, _, _ in changes)
    sign_in(rclient, "root")
    page = rclient.get("/admin/settings/history").text
    assert in_order(page, dan, cat, bob, amy)  # newest first
    assert_every_heading_sorts(page)
    assert_sorts(
        rclient,
        "/admin/settings/history",
        {
            "at": (amy, bob, cat, dan),
            **both_ways("actor", [amy, bob, cat, dan]),
            "key": (cat, dan, amy, bob),  # by_role, grace_seconds (newest first), soft_ratio
            "-key": (bob, dan, amy, cat),
            "new": (bob, dan, amy, cat),  # 0.7, 120, 600, then the object
            "-new": (cat, amy, dan, bob),
            "-old": (dan, cat),  # 600 over none
            "-version": (dan, cat),
            "version": (cat, bob, amy, dan),
        },
    )
    one_key = rclient.get("/admin/settings/history?key=rate_limits.grace_seconds&sort=new").text
    assert in_order(one_key, dan, amy) and bob not in one_key
    assert "key=rate_limits.grace_seconds&amp;sort=-new" in one_key
    assert 'name="sort" value="new"' in one_key
    settings_page = rclient.get("/admin/settings").text  # the latest changes link to them
    assert 'href="/admin/settings/history?sort=new&amp;offset=0"' in settings_page
    assert 'href="/admin/settings/history?sort=at&amp;offset=0"' in settings_page
    assert_refused(rclient, "/admin/settings/history?sort=detail")

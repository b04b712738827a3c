"""The panel's lists sort by their columns, both ways, and refuse a column they do not sort
by (422 naming `sort`): the response network's requests, the admin's own notifications, every
tab of the batch page with what the batch ledger knows of each batch (records, errors, size,
written, acknowledged and how long after), the quarantine and the batch metadata."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import get_args

import pytest

from request_network.models import Batch, Notification
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

"""The panel's actions through the same services as the admin API: each destructive one asks
first (a page of its own when the browser runs no script), each lands in the audit log with
the admin (by id) or the operator (by username) as its actor, a refusal shows as a message,
and what they change is what the API then reports."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from request_network.models import Alert, AuditLog, GovernedSetting, Notification, Request
from shared.db import reading, transaction, utcnow
from tests.panel.panel_support import sign_in
from transfer.protocol.quarantine import quarantine

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def audit_rows(url: str) -> list[tuple[str, str, str]]:
    with reading(url) as session:
        return [
            (r.actor, r.action, r.target)
            for r in session.scalars(select(AuditLog).order_by(AuditLog.id))
        ]


def test_a_destructive_action_asks_first(client, db, people, seed):
    token = sign_in(client, "root")
    request_id = seed.request(people["alice"])
    page = client.get(f"/admin/requests/{request_id}")
    assert 'data-confirm="Cancel this request?"' in page.text
    # without confirmed=yes (no script ran): a page that asks, and nothing changes
    asked = client.post(f"/admin/requests/{request_id}/cancel", data={"csrf_token": token})
    assert asked.status_code == 200 and "Are you sure?" in asked.text
    assert 'name="confirmed" value="yes"' in asked.text
    assert f'action="/admin/requests/{request_id}/cancel"' in asked.text  # asked, sent again
    with reading(db) as session:
        assert session.get(Request, request_id).status == "PENDING"
    assert audit_rows(db) == []
    done = client.post(
        f"/admin/requests/{request_id}/cancel", data={"csrf_token": token, "confirmed": "yes"}
    )
    assert "Request cancelled" in done.text
    assert audit_rows(db) == [(people["root"], "request.cancelled", request_id)]
    # again: the service's refusal (409) is a message, not an error page
    again = client.post(
        f"/admin/requests/{request_id}/cancel", data={"csrf_token": token, "confirmed": "yes"}
    )
    assert again.status_code == 200
    assert "Conflict: the request is CANCELLED" in again.text
    retried = client.post(
        f"/admin/requests/{request_id}/retry", data={"csrf_token": token, "confirmed": "yes"}
    )
    assert "Request sent again" in retried.text
    assert audit_rows(db)[-1] == (people["root"], "request.retried", request_id)


def test_limits_reset_and_keys_through_the_users_page(client, db, people):
    token = sign_in(client, "root")
    alice = people["alice"]
    bad = client.post(
        f"/admin/users/{alice}/limits",
        data={"csrf_token": token, "minute": "lots", "reason": "x"},
    )
    assert "Limits not changed: check minute" in bad.text
    unexplained = client.post(
        f"/admin/users/{alice}/limits", data={"csrf_token": token, "minute": "4"}
    )
    assert "Limits not changed: check reason" in unexplained.text
    ok = client.post(
        f"/admin/users/{alice}/limits",
        data={"csrf_token": token, "minute": "4", "hour": "", "reason": "testing"},
    )
    assert "Custom limits set" in ok.text
    assert "override" in client.get(f"/admin/users/{alice}/usage").text
    reset = client.post(
        f"/admin/users/{alice}/reset-limits", data={"csrf_token": token, "confirmed": "yes"}
    )
    assert "Rate-limit counters reset" in reset.text
    actions = [(a, t) for _, a, t in audit_rows(db)]
    assert actions == [("rate_limits.set", alice), ("rate_limits.reset", alice)]


def test_an_admin_disables_and_enables_a_key(client, db, people):
    from fastapi.testclient import TestClient

    api = TestClient(client.app, base_url="https://testserver")
    login = api.post(
        "/api/v1/auth/login", data={"username": "alice", "password": "correct horse battery"}
    )
    bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}
    key = api.post(
        "/api/v1/api-keys", json={"name": "nightly", "scopes": ["requests:read"]}, headers=bearer
    ).json()
    token = sign_in(client, "root")
    page = client.get(f"/admin/users/{people['alice']}")
    assert key["key_id"] in page.text and key["key"] not in page.text  # masked
    form = {"csrf_token": token, "user_id": people["alice"], "confirmed": "yes"}
    disabled = client.post(f"/admin/api-keys/{key['key_id']}/disable", data=form)
    assert "disabled" in disabled.text
    assert api.get("/api/v1/auth/me", headers={"X-API-Key": key["key"]}).status_code == 401
    client.post(f"/admin/api-keys/{key['key_id']}/enable", data=form)
    assert api.get("/api/v1/auth/me", headers={"X-API-Key": key["key"]}).status_code == 200
    assert [a for _, a, _ in audit_rows(db)][-2:] == ["api_key.disabled", "api_key.enabled"]


def test_quarantine_release_and_delete_are_audited_with_the_operator(client, db, settings, people):
    names = []
    for seq in (3, 4):
        source = settings.inbox / f"results-response-0000000{seq}-{uuid.uuid4()}.jsonl"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_bytes(b"damaged\n")
        names.append(quarantine(source, settings.quarantine_dir, ["digest mismatch"]).name)
    token = sign_in(client, "olga")
    listing = client.get("/admin/quarantine")
    assert all(name in listing.text for name in names) and "digest mismatch" in listing.text
    inspected = client.get(f"/admin/quarantine/{names[0]}")
    assert "damaged" in inspected.text
    asked = client.post(f"/admin/quarantine/{names[0]}/release", data={"csrf_token": token})
    assert f'action="/admin/quarantine/{names[0]}/release"' in asked.text
    assert f'href="/admin/quarantine/{names[0]}">Cancel' in asked.text
    form = {"csrf_token": token, "confirmed": "yes"}
    released = client.post(f"/admin/quarantine/{names[0]}/release", data=form)
    assert "released to the inbox" in released.text
    assert (settings.inbox / names[0]).exists()
    deleted = client.post(f"/admin/quarantine/{names[1]}/delete", data=form)
    assert f"{names[1]} deleted" in deleted.text
    assert not list(settings.quarantine_dir.iterdir())
    missing = client.post(f"/admin/quarantine/{names[1]}/delete", data=form)
    assert "Not deleted: nothing quarantined" in missing.text
    assert audit_rows(db) == [
        ("olga", "quarantine.released", names[0]),
        ("olga", "quarantine.deleted", names[1]),
    ]


def test_cache_clear_scopes_and_optimize(client, db, people):
    token = sign_in(client, "root")
    page = client.get("/admin/cache")
    assert page.status_code == 200 and "Hit ratio" in page.text
    bad = client.post(
        "/admin/cache/clear",
        data={"csrf_token": token, "scope": "request", "target": "nope", "confirmed": "yes"},
    )
    assert "not a request id" in bad.text
    asked = client.post(
        "/admin/cache/clear", data={"csrf_token": token, "scope": "user", "target": people["alice"]}
    )
    assert "Are you sure?" in asked.text
    cleared = client.post(
        "/admin/cache/clear",
        data={"csrf_token": token, "scope": "user", "target": people["alice"], "confirmed": "yes"},
    )
    assert f"Cleared (user {people['alice']}): 0 entries" in cleared.text
    optimized = client.post("/admin/cache/optimize", data={"csrf_token": token})
    assert "Maintenance done" in optimized.text
    actions = [a for _, a, _ in audit_rows(db)]
    assert [a for a in actions if a != "cache.stats"] == ["cache.cleared", "cache.optimized"]
    assert "cache.stats" in actions  # reading the statistics is audited, as through the API


def test_purge_needs_the_queue_name_typed_again(client, db, people):
    token = sign_in(client, "root")
    asked = client.post("/admin/queues/ferry.request/purge", data={"csrf_token": token})
    assert 'data-typed-confirm="ferry.request"' in asked.text
    wrong = client.post(
        "/admin/queues/ferry.request/purge",
        data={"csrf_token": token, "confirmed": "yes", "confirm": "ferry"},
    )
    assert "to purge, repeat the queue&#39;s name" in wrong.text
    assert audit_rows(db) == []
    sent = client.post("/admin/tasks/system_monitoring/run", data={"csrf_token": token})
    assert "sent to ferry.request as task" in sent.text and "PENDING" in sent.text
    unknown = client.post("/admin/tasks/no_such_task/run", data={"csrf_token": token})
    assert "Not found: no task called" in unknown.text
    purged = client.post(
        "/admin/queues/ferry.request/purge",
        data={"csrf_token": token, "confirmed": "yes", "confirm": "ferry.request"},
    )
    assert "Queue ferry.request purged: 1 messages" in purged.text
    assert [a for _, a, _ in audit_rows(db)] == ["task.run_now", "queue.purged"]


def test_alerts_are_acknowledged_and_notifications_read(client, db, people):
    now = utcnow()
    with transaction(db) as session:
        alert = Alert(event_id=str(uuid.uuid4()), kind="component.down", severity="critical",
                      title="redis is down", body="", opened_at=now, escalated_at=now,
                      history=[{"at": now.isoformat(), "what": "opened"}])  # fmt: skip
        session.add(alert)
        session.add(
            Notification(
                event_id=str(uuid.uuid4()),
                user_id=people["root"],
                at=now,
                kind="batch.quarantined",
                severity="warning",
                title="a batch",
            )  # fmt: skip
        )
        session.flush()
        alert_id = alert.id
    token = sign_in(client, "root")
    page = client.get("/admin/alerts?state=open")
    assert "redis is down" in page.text and "Acknowledge" in page.text
    acked = client.post(f"/admin/alerts/{alert_id}/ack", data={"csrf_token": token})
    assert f"Alert {alert_id} acknowledged" in acked.text
    assert "redis is down" in client.get("/admin/alerts?state=acknowledged").text
    assert "redis is down" not in client.get("/admin/alerts?state=open").text
    inbox = client.get("/admin/notifications")
    assert "1 unread" in inbox.text
    marked = client.post("/admin/notifications/read-all", data={"csrf_token": token})
    assert "1 marked read" in marked.text and "0 unread" in marked.text


def test_alerts_sort_by_severity_weight_and_keep_their_filter(client, db, people):
    now = utcnow()
    with transaction(db) as session:
        for severity, title in (("warning", "disk is low"), ("critical", "redis is down")):
            session.add(
                Alert(event_id=str(uuid.uuid4()), kind="component.down", severity=severity,
                      title=title, body="", opened_at=now, escalated_at=now, history=[])
            )  # fmt: skip
    sign_in(client, "root")
    worst = client.get("/admin/alerts?state=open&sort=-severity").text
    assert worst.index("redis is down") < worst.index("disk is low")
    assert 'aria-sort="descending"' in worst and "state=open" in worst.split("<thead>")[1]
    mildest = client.get("/admin/alerts?sort=severity").text
    assert mildest.index("disk is low") < mildest.index("redis is down")


def test_settings_show_the_governed_version_and_arrival(client, db, people):
    with transaction(db) as session:
        session.add(
            GovernedSetting(
                key="rate_limits.soft_ratio", value=0.75, version=3, batch_id=str(uuid.uuid4())
            )
        )
    sign_in(client, "root")
    page = client.get("/admin/settings?sort=-version")
    assert page.status_code == 200
    first_row = page.text.split("<tbody>")[1].split("</tr>")[0]
    assert "rate_limits.soft_ratio" in first_row and "0.75" in first_row
    assert ">3<" in first_row and "governed" in first_row


def test_lists_page_and_sort(client, seed, people):
    for n in range(30):
        seed.user(f"user{n:02d}")
    sign_in(client, "root")
    first = client.get("/admin/users?limit=10&sort=-username")
    assert "1–10 of 33" in first.text and "user29" in first.text and "user00" not in first.text
    last = client.get("/admin/users?limit=10&offset=30&sort=-username")
    assert "31–33 of 33" in last.text and "alice" in last.text
    assert 'rel="next"' not in last.text and 'rel="prev"' in last.text
    filtered = client.get("/admin/users?role=operator&name=&status=")
    assert "olga" in filtered.text and "user01" not in filtered.text
    # the same filters as the API's, and the request list's
    for _ in range(3):
        seed.request(people["alice"])
    requests = client.get(f"/admin/requests?user_id={people['alice']}&status=PENDING&limit=10")
    assert "1–3 of 3" in requests.text
    # sorted by a column of the request list, both ways, and the header says which
    for name in ("zoe", "mia"):
        seed.request(seed.user(name))
    by_user = client.get("/admin/requests?sort=username&limit=100").text
    assert by_user.index(">alice<") < by_user.index(">mia<") < by_user.index(">zoe<")
    assert 'aria-sort="ascending"' in by_user
    backwards = client.get("/admin/requests?sort=-username&limit=100").text
    assert backwards.index(">zoe<") < backwards.index(">mia<") < backwards.index(">alice<")
    refused = client.get("/admin/requests?sort=nonsense")  # a column it does not sort by
    assert refused.status_code == 422 and "invalid fields: query.sort" in refused.text

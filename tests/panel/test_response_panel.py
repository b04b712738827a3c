"""The response network's panel through a test client (its roles and CSP with the request
network's, `test_panel_access.py`): a user cannot sign in, the CSRF refusal, the dashboard,
and its actions through the same services as the admin API, audited the same way (the
admin's username as the actor)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from response_network.models import AuditLog, GovernedSetting, ImportedRequest, User
from shared.db import reading
from tests.panel.panel_support import PASSWORD, sign_in

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def audit_rows(url: str) -> list[tuple[str, str, str]]:
    with reading(url) as session:
        return [
            (r.actor, r.action, r.target)
            for r in session.scalars(select(AuditLog).order_by(AuditLog.id))
            if r.action not in ("account.login", "auth.login")
        ]


def test_the_dashboard_shows_the_search_cluster_breakers_and_profile_types(rclient, rpeople):
    sign_in(rclient, "root")
    page = rclient.get("/admin/dashboard").text
    for component in ("search", "indices", "circuit_breakers", "database", "quarantine"):
        assert f"<strong>{component}</strong>" in page, component
    assert "light light-down" in page  # the search cluster cannot be reached
    assert page.count('<svg class="chart"') == 2
    assert ">articles</a>" in page  # per profile type figures
    assert 'hx-trigger="every 15s"' in page


def test_a_user_cannot_sign_in(rclient, rpeople):
    page = rclient.get("/admin/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    reply = rclient.post(
        "/admin/login",
        data={"username": "ursula", "password": PASSWORD, "csrf_token": token},
    )
    assert reply.status_code == 403
    assert "for admins and operators" in reply.text


def test_a_state_change_without_its_csrf_token_is_refused(rclient, rdb, rpeople):
    token = sign_in(rclient, "root")
    disable = f"/admin/users/{rpeople['ursula']}/disable"
    for headers, data in [
        ({}, {"confirmed": "yes"}),
        ({}, {"confirmed": "yes", "csrf_token": "not-the-token"}),
        ({"X-CSRF-Token": "not-the-token"}, {"confirmed": "yes"}),
    ]:
        reply = rclient.post(disable, headers=headers, data=data)
        assert reply.status_code == 403 and "CSRF" in reply.text
    with reading(rdb) as session:
        assert session.get(User, rpeople["ursula"]).active
    reply = rclient.post(disable, headers={"X-CSRF-Token": token}, data={"confirmed": "yes"})
    assert reply.status_code == 200 and "User disabled" in reply.text
    # an operator cannot act as an admin, token or not
    rclient.cookies.clear()
    token = sign_in(rclient, "olga")
    reply = rclient.post(f"/admin/users/{rpeople['ursula']}/enable", data={"csrf_token": token})
    assert reply.status_code == 403


def test_users_are_created_edited_disabled_and_given_a_password(rclient, rdb, rpeople, rseed):
    rseed.profile_type("patents")
    token = sign_in(rclient, "root")
    refused = rclient.post(
        "/admin/users",
        data={"csrf_token": token, "username": "no spaces", "password": "short"},
    )
    assert refused.status_code == 422
    for field in ("username", "password", "profile_type"):
        assert f'id="error-{field}"' in refused.text, field
    assert 'value="no spaces"' in refused.text  # kept for the next try; the password is not
    taken = rclient.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "username": "ursula",
            "password": "long enough password",
            "profile_type": "articles",
        },
    )
    assert taken.status_code == 409 and "already exists" in taken.text
    made = rclient.post(
        "/admin/users",
        data={
            "csrf_token": token,
            "username": "vera",
            "password": "long enough password",
            "role": "operator",
            "profile_type": "articles",
        },
    )
    assert made.status_code == 200 and "User vera created" in made.text
    with reading(rdb) as session:
        vera = session.scalars(select(User).where(User.username == "vera")).one()
        vera_id = vera.id
    edited = rclient.post(
        f"/admin/users/{vera_id}/edit",
        data={"csrf_token": token, "role": "user", "profile_type": "patents"},
    )
    assert "User updated" in edited.text
    asked = rclient.post(f"/admin/users/{vera_id}/disable", data={"csrf_token": token})
    assert "Are you sure?" in asked.text  # nothing done without confirmed=yes
    assert f'action="/admin/users/{vera_id}/disable"' in asked.text
    rclient.post(f"/admin/users/{vera_id}/disable", data={"csrf_token": token, "confirmed": "yes"})
    rclient.post(f"/admin/users/{vera_id}/enable", data={"csrf_token": token})
    unticked = rclient.post(
        f"/admin/users/{vera_id}/password",
        data={"csrf_token": token, "password": "a brand new password"},
    )
    assert unticked.status_code == 422 and 'id="error-confirmed"' in unticked.text
    reset = rclient.post(
        f"/admin/users/{vera_id}/password",
        data={"csrf_token": token, "password": "a brand new password", "confirmed": "yes"},
    )
    assert "Password reset" in reset.text
    with reading(rdb) as session:
        vera = session.get(User, vera_id)
        assert (vera.role, vera.profile_type, vera.active) == ("user", "patents", True)
        assert vera.version == 5  # created, edited, disabled, enabled, password reset
    assert [a for a in audit_rows(rdb) if a[2] == vera_id] == [
        ("root", "user.created", vera_id),
        ("root", "user.updated", vera_id),
        ("root", "user.updated", vera_id),
        ("root", "user.updated", vera_id),
        ("root", "user.password_reset", vera_id),
    ]


def test_a_failed_request_is_retried_once(rclient, rdb, rpeople, rseed):
    failed = rseed.request(rpeople["ursula"], status="FAILED", error="no such index")
    done = rseed.request(rpeople["ursula"], status="DONE")
    token = sign_in(rclient, "root")
    page = rclient.get(f"/admin/requests/{failed}").text
    assert "no such index" in page and 'data-confirm="Run this failed request again?"' in page
    assert "Retry" not in rclient.get(f"/admin/requests/{done}").text
    asked = rclient.post(f"/admin/requests/{failed}/retry", data={"csrf_token": token})
    assert "Are you sure?" in asked.text
    data = {"csrf_token": token, "confirmed": "yes"}
    assert "Request queued again" in rclient.post(f"/admin/requests/{failed}/retry", data=data).text
    again = rclient.post(f"/admin/requests/{failed}/retry", data=data)
    assert "only a FAILED request can be retried; this one is QUEUED" in again.text
    with reading(rdb) as session:
        assert session.get(ImportedRequest, failed).status == "QUEUED"
    assert [a for a in audit_rows(rdb) if a[1] == "request.retried"] == [
        ("root", "request.retried", failed)
    ]
    listed = rclient.get("/admin/requests?older_than_hours=1").text
    assert failed not in listed  # submitted just now


def test_a_governed_setting_changes_with_its_errors_beside_its_field(rclient, rdb, rpeople):
    token = sign_in(rclient, "root")
    key = "rate_limits.soft_ratio"
    for bad in ("lots", "7", '{"a": 1}'):
        reply = rclient.post(f"/admin/settings/{key}", data={"csrf_token": token, "value": bad})
        assert reply.status_code == 422, bad
        assert 'id="error-rate_limits-soft_ratio" role="alert"' in reply.text, bad
        assert 'aria-invalid="true"' in reply.text
    with reading(rdb) as session:
        assert session.get(GovernedSetting, key) is None
    ok = rclient.post(f"/admin/settings/{key}", data={"csrf_token": token, "value": "0.6"})
    assert f"{key} changed" in ok.text
    row = re.search(r'<tr id="setting-rate_limits-soft_ratio">(.*?)</tr>', ok.text, re.S)
    assert "0.6" in row.group(1) and "governed" in row.group(1)
    history = rclient.get(f"/admin/settings/history?key={key}").text
    assert "0.6" in history and "root" in history
    back = rclient.post(f"/admin/settings/{key}", data={"csrf_token": token, "reset": "yes"})
    assert f"{key} changed" in back.text
    with reading(rdb) as session:
        row = session.get(GovernedSetting, key)
        assert (row.value, row.version, row.updated_by) == (None, 2, "root")
    assert [a for a in audit_rows(rdb) if a[1] == "setting.changed"] == [
        ("root", "setting.changed", key),
        ("root", "setting.changed", key),
    ]
    unknown = rclient.post("/admin/settings/no.such.key", data={"csrf_token": token, "value": "1"})
    assert unknown.status_code == 404


def test_the_panel_stays_out_of_the_api_schema(rclient):
    schema_paths = rclient.app.openapi()["paths"]
    assert not [p for p in schema_paths if p.startswith("/admin")]

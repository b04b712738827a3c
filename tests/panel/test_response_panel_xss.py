"""Stored `<script>` stays text on the response network's pages: every field a user, the
request network (through an imported request) or a file arriving at the gap controls holds
one, and every page that shows the field escapes it."""

from __future__ import annotations

import uuid

import pytest

from response_network import models
from response_network.models import AuditLog, GovernedSetting, User
from shared import audit
from shared.db import transaction
from tests.panel.panel_support import (
    ESCAPED,
    XSS,
    add_hostile_gap_rows,
    assert_shown_as_text,
    quarantined,
    sign_in,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def hostile(rdb, rsettings, rseed, rpeople) -> dict[str, str]:
    rseed.profile_type(XSS)
    mallory = rseed.user(XSS, profile_type=XSS)
    failed = rseed.request(
        XSS,
        status="FAILED",
        error=XSS,
        profile_type=XSS,
        correlation_id=XSS,
        query={"query": {"match": {"field": "title", "value": XSS}}},
    )
    with transaction(rdb) as session:
        session.add(
            GovernedSetting(key="rate_limits.soft_ratio", value=0.5, version=1, updated_by=XSS)
        )
        audit.record(
            session,
            AuditLog,
            actor=XSS,
            action="setting.changed",
            target="rate_limits.soft_ratio",
            detail={"old": XSS, "new": 0.5, "version": 1},
        )
        add_hostile_gap_rows(
            session,
            models,
            root=rpeople["root"],
            stream="requests",
            source="request",
            destination="response",
        )
        session.get(User, rpeople["ursula"]).rate_limits = {"minute": 1, "note": XSS}
    name = quarantined(
        rsettings,
        f"requests-request-00000009-{uuid.uuid4()}.jsonl",
        f"digest mismatch {XSS}",
        f'{{"head": "{XSS}"}}\n'.encode(),
    )
    return {"user": mallory, "request": failed, "quarantined": name}


def test_stored_script_renders_as_text_everywhere(rclient, hostile, rpeople):
    sign_in(rclient, "root")
    pages = [
        "/admin/dashboard",
        "/admin/users",
        f"/admin/users/{hostile['user']}",
        f"/admin/users/{rpeople['ursula']}",
        "/admin/users/new",
        "/admin/requests",
        f"/admin/requests/{hostile['request']}",
        "/admin/executions",
        "/admin/settings",
        "/admin/settings/history",
        "/admin/alerts",
        "/admin/notifications",
        "/admin/quarantine",
        f"/admin/quarantine/{hostile['quarantined']}",
        "/admin/batches/history",
    ]
    assert_shown_as_text(rclient, pages, "&lt;script&gt;alert(1)")


def test_a_typed_value_comes_back_as_text(rclient, rpeople):
    token = sign_in(rclient, "root")
    reply = rclient.post(
        "/admin/settings/rate_limits.soft_ratio", data={"csrf_token": token, "value": XSS}
    )
    assert reply.status_code == 422
    assert XSS not in reply.text and ESCAPED in reply.text
    made = rclient.post(
        "/admin/users",
        data={"csrf_token": token, "username": XSS, "password": "x", "profile_type": XSS},
    )
    assert made.status_code == 422
    assert XSS not in made.text and ESCAPED in made.text

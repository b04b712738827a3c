"""Stored `<script>` stays text: every field a user (or a file arriving at the gap) controls
holds one, and every page that shows the field escapes it (the template engine does, for
every value)."""

from __future__ import annotations

import uuid

import pytest

from request_network import models
from request_network.models import ApiKey, RateLimitOverride, Request, RequestEvent, User
from shared.db import transaction, utcnow
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
def hostile(db, settings, seed, people) -> dict[str, str]:
    """A user named `<script>…`, and the script in every text field the panel shows."""
    now = utcnow()
    mallory = seed.user(XSS)
    request_id = str(uuid.uuid4())
    with transaction(db) as session:
        user = session.get(User, mallory)
        user.display_name, user.email = XSS, f"{XSS}@example.org"
        session.add(
            ApiKey(
                key_id="abcdefghijkl",
                user_id=mallory,
                name=XSS,
                key_hmac="0" * 64,
                scopes=["requests:read"],
            )  # fmt: skip
        )
        session.add(
            RateLimitOverride(user_id=mallory, minute=5, reason=XSS, set_by=XSS, set_at=now)
        )
        session.add(
            Request(
                id=request_id,
                user_id=mallory,
                profile_type="articles",
                query={"query": {"match": {"field": "title", "value": XSS}}},
                correlation_id=XSS,
            )
        )
        session.flush()
        session.add(RequestEvent(request_id=request_id, status="PENDING", detail=XSS))
        add_hostile_gap_rows(
            session,
            models,
            root=people["root"],
            stream="results",
            source="response",
            destination="request",
        )
    name = quarantined(
        settings,
        f"results-response-00000009-{uuid.uuid4()}.jsonl",
        f"digest mismatch {XSS}",
        f'{{"head": "{XSS}"}}\n'.encode(),
    )
    return {"user": mallory, "request": request_id, "quarantined": name}


def test_stored_script_renders_as_text_everywhere(client, hostile):
    sign_in(client, "root")
    pages = [
        "/admin/users",
        f"/admin/users/{hostile['user']}",
        f"/admin/users/{hostile['user']}/usage",
        "/admin/requests",
        f"/admin/requests/{hostile['request']}",
        "/admin/alerts",
        "/admin/notifications",
        "/admin/quarantine",
        f"/admin/quarantine/{hostile['quarantined']}",
        "/admin/batches/history",
    ]
    assert_shown_as_text(client, pages, not_shown=(f"/admin/users/{hostile['user']}/usage",))


def test_a_typed_reason_is_shown_as_text(client, hostile, people):
    token = sign_in(client, "root")
    reply = client.post(
        f"/admin/users/{people['alice']}/limits",
        data={"csrf_token": token, "minute": "3", "reason": XSS},
    )
    assert reply.status_code == 200 and "Custom limits set" in reply.text
    assert XSS not in reply.text and ESCAPED in reply.text

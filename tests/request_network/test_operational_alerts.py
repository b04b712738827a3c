"""Operational alerts on the request network (real PostgreSQL): a task failing repeatedly,
a transfer directory short of space, a batch unacknowledged too long and an API key about
to expire each notify once while they last and say when they clear; a rotation tells the
key's owner."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from request_network.models import ApiKey, NotificationEvent, TaskRun
from request_network.services import notifications
from shared.db import transaction, utcnow
from shared.health import Component, HealthReport

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def events(api_db: str) -> list[tuple[str, bool, str]]:
    with transaction(api_db) as session:
        rows = session.execute(
            select(
                NotificationEvent.kind, NotificationEvent.resolved, NotificationEvent.title
            ).order_by(NotificationEvent.at, NotificationEvent.id)
        ).all()
    return [tuple(r) for r in rows]


def report(free_mb: int) -> HealthReport:
    dirs = {"outbox": {"exists": True, "writable": True, "free_mb": free_mb}}
    return HealthReport(
        "ok", "1", None, [Component("transfer_dirs", "ok", "", 1.0, False, {"directories": dirs})]
    )


def check(api_db: str, free_mb: int) -> dict:
    with transaction(api_db) as session:
        return notifications.operational_alerts(
            report(free_mb),
            session=session,
            task_names=["request.export_requests"],
            min_free_mb=100,
        )


def run(api_db: str, outcome: str) -> None:
    with transaction(api_db) as session:
        session.add(
            TaskRun(
                name="request.export_requests",
                started_at=utcnow(),
                finished_at=utcnow(),
                outcome=outcome,
                error="outbox is not writable" if outcome == "failure" else None,
            )
        )


def test_failing_tasks_and_low_disk_notify_once_and_clear(api_db):
    for _ in range(3):
        run(api_db, "failure")
    first = check(api_db, free_mb=10)
    assert first == {
        "task.failing": {"raised": 1, "cleared": 0},
        "disk.low": {"raised": 1, "cleared": 0},
    }
    assert check(api_db, free_mb=10) == {
        "task.failing": {"raised": 0, "cleared": 0},
        "disk.low": {"raised": 0, "cleared": 0},
    }
    run(api_db, "success")
    assert check(api_db, free_mb=5000) == {
        "task.failing": {"raised": 0, "cleared": 1},
        "disk.low": {"raised": 0, "cleared": 1},
    }
    assert [(k, r) for k, r, _ in events(api_db)] == [
        ("task.failing", False),
        ("disk.low", False),
        ("task.failing", True),
        ("disk.low", True),
    ]
    assert events(api_db)[0][2] == "request.export_requests failed 3 times in a row"


def test_an_unacknowledged_batch_notifies_until_it_is_acknowledged(api_db):
    flagged = [{"file": "requests-request-00000007-x.jsonl", "stream": "requests", "seq": 7,
                "age_seconds": 90_000.0}]  # fmt: skip
    for items in (flagged, flagged, []):
        with transaction(api_db) as session:
            notifications.unacked_batches(items, session=session)
    titles = [t for _, _, t in events(api_db)]
    assert titles == [
        "Batch requests-request-00000007-x.jsonl unacknowledged for 25.0 h",
        "Batch requests-request-00000007-x.jsonl acknowledged",
    ]


def test_a_key_about_to_expire_and_a_rotation_tell_the_owner(client, login, seed, api_db):
    seed.profile_type()
    alice = seed.user("alice")
    auth = login("alice")
    key = client.post(
        "/api/v1/api-keys",
        json={"name": "ci", "scopes": ["requests:read"], "expires_in_days": 30},
        headers=auth,
    ).json()
    with transaction(api_db) as session:
        assert notifications.expiring_keys(session=session, within=timedelta(days=7)) == {
            "raised": 0,
            "cleared": 0,
        }
        session.execute(
            update(ApiKey)
            .where(ApiKey.key_id == key["key_id"])
            .values(expires_at=utcnow() + timedelta(days=2))
        )
    with transaction(api_db) as session:
        assert notifications.expiring_keys(session=session, within=timedelta(days=7))["raised"] == 1
    assert client.post(f"/api/v1/api-keys/{key['key_id']}/rotate", headers=auth).status_code == 200
    with transaction(api_db) as session:
        mine = session.execute(
            select(NotificationEvent.kind, NotificationEvent.user_id).order_by(NotificationEvent.at)
        ).all()
    assert [tuple(r) for r in mine] == [("api_key.expiring", alice), ("api_key.rotated", alice)]

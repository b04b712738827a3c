"""Operational alerts on the request network (real PostgreSQL, through the app): an
operational event opens an alert; unacknowledged, it escalates level by level (operators →
admins → the on-call addresses) at the escalation interval, up to the last; acknowledging
stops it; the condition clearing resolves it; every step is in its history."""

from __future__ import annotations

from datetime import timedelta

import pytest
from request_api_helpers import assert_problem
from sqlalchemy import select, update

from request_network.models import Alert, Notification, NotificationDelivery, User
from request_network.services import notifications
from shared.db import transaction, utcnow
from shared.health import Component, HealthReport

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
ALERTS = "/api/v1/admin/alerts"


@pytest.fixture
def staff(seed, api_db) -> dict[str, str]:
    seed.profile_type()
    return {"olga": seed.user("olga", role="operator"), "root": seed.user("root", role="admin")}


def step(api_db: str, settings, *, minutes_later: int = 0) -> dict[str, int]:
    """What `notify` does, `minutes_later` minutes after the alerts' last step."""
    with transaction(api_db) as session:
        if minutes_later:
            session.execute(
                update(Alert).values(escalated_at=utcnow() - timedelta(minutes=minutes_later))
            )
    with transaction(api_db) as session:
        done = notifications.dispatch(session=session)
        done["escalated"] = notifications.escalate(settings, session=session, minutes=30)
        notifications.dispatch(session=session)
    return done


def test_an_unacknowledged_alert_escalates_level_by_level(client, login, api_db, settings, staff):
    settings = settings.model_copy(update={"notification_oncall_emails": ["oncall@example.org"]})
    with transaction(api_db) as session:
        notifications.emit(session, "batch.quarantined", title="Batch quarantined: x.jsonl")
    assert step(api_db, settings)["escalated"] == 0
    assert step(api_db, settings, minutes_later=10)["escalated"] == 0  # not yet
    assert step(api_db, settings, minutes_later=31)["escalated"] == 1  # → admins
    assert step(api_db, settings, minutes_later=31)["escalated"] == 1  # → on call
    assert step(api_db, settings, minutes_later=31)["escalated"] == 0  # the last level

    root = login("root")
    (alert,) = client.get(ALERTS, headers=root).json()["items"]
    assert (alert["state"], alert["level"]) == ("open", 2)
    assert [h["what"] for h in alert["history"]] == ["opened", "escalated", "escalated"]
    assert [h.get("level") for h in alert["history"]] == ["operators", "admins", "oncall"]
    with transaction(api_db) as session:
        titles = session.scalars(
            select(Notification.title)
            .join(User, User.id == Notification.user_id)
            .where(User.username == "root")
            .order_by(Notification.id)
        ).all()
        oncall = session.scalars(select(NotificationDelivery.target)).all()
    assert titles == [
        "Batch quarantined: x.jsonl",
        "[escalated to admins] Batch quarantined: x.jsonl",
        "[escalated to oncall] Batch quarantined: x.jsonl",
    ]
    assert oncall == ["oncall@example.org"]


def test_acknowledging_stops_it_and_clearing_resolves_it(client, login, api_db, settings, staff):
    down = HealthReport("down", "1", None, [Component("redis", "down", "refused", None, True, {})])
    up = HealthReport("ok", "1", None, [Component("redis", "ok", "", 1.0, False, {})])
    with transaction(api_db) as session:
        notifications.emit(session, "batch.quarantined", title="Batch quarantined: y.jsonl")
        notifications.health_alerts(down, session=session)
    step(api_db, settings)
    root = login("root")
    opened = {a["title"]: a for a in client.get(ALERTS, headers=root).json()["items"]}
    batch, redis_down = (
        opened["Batch quarantined: y.jsonl"],
        opened["redis is down (request network)"],
    )

    acked = client.post(f"{ALERTS}/{batch['id']}/ack", headers=root)
    assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
    assert client.post(f"{ALERTS}/{batch['id']}/ack", headers=root).json() == acked.json()
    with transaction(api_db) as session:
        notifications.health_alerts(up, session=session)
    assert step(api_db, settings, minutes_later=31)["escalated"] == 0  # acked; resolved

    states = {a["title"]: a["state"] for a in client.get(ALERTS, headers=root).json()["items"]}
    assert states == {batch["title"]: "acknowledged", redis_down["title"]: "resolved"}
    assert client.get(ALERTS, params={"state": "open"}, headers=root).json()["total"] == 0
    assert_problem(client.post(f"{ALERTS}/{redis_down['id']}/ack", headers=root), 409)
    assert_problem(client.post(f"{ALERTS}/999999/ack", headers=root), 404)
    assert_problem(client.get(ALERTS, headers=login("olga")), 403)


def test_alerts_sort_by_severity_weight_level_kind_or_time(client, login, api_db, settings, staff):
    down = HealthReport("down", "1", None, [Component("redis", "down", "refused", None, True, {})])
    with transaction(api_db) as session:
        notifications.emit(session, "batch.quarantined", title="quarantined")  # error
        notifications.emit(session, "disk.low", title="disk")  # warning
        notifications.health_alerts(down, session=session)  # component.down: critical
    step(api_db, settings)
    root = login("root")

    def kinds(sort: str) -> list[str]:
        reply = client.get(ALERTS, params={"sort": sort}, headers=root)
        assert reply.status_code == 200, reply.text
        return [a["kind"] for a in reply.json()["items"]]

    by_weight = ["component.down", "batch.quarantined", "disk.low"]
    assert kinds("-severity") == by_weight and kinds("severity") == by_weight[::-1]
    assert kinds("kind") == sorted(by_weight) and kinds("-kind") == sorted(by_weight)[::-1]
    assert set(kinds("-opened_at")) == set(by_weight)
    assert_problem(client.get(ALERTS, params={"sort": "title"}, headers=root), 422)

"""Notifications on the request network, real PostgreSQL: events written with their cause,
deduplicated while a condition lasts and resolved when it clears; fanned out once to each
recipient's in-app notifications and to the email deliveries their preferences ask for;
read through the API and live over Server-Sent Events from a real server."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from request_api_helpers import assert_problem
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import func, select, update

from request_network.app import create_app
from request_network.models import (
    Notification,
    NotificationDelivery,
    NotificationEvent,
    User,
)
from request_network.services import notifications
from shared.db import transaction
from shared.health import Component, HealthReport
from shared.notifications import channels_for
from tests.e2e.e2e_support import free_port, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
LIST = "/api/v1/notifications"


@pytest.fixture
def people(seed, api_db) -> dict[str, str]:
    seed.profile_type()
    ids = {
        "alice": seed.user("alice"),
        "bob": seed.user("bob"),
        "olga": seed.user("olga", role="operator"),
        "root": seed.user("root", role="admin"),
        "gone": seed.user("gone", role="admin", active=False),
    }
    with transaction(api_db) as session:
        session.execute(
            update(User).where(User.id == ids["alice"]).values(email="alice@example.org")
        )
    return ids


def count(api_db: str, model: type, *where) -> int:
    with transaction(api_db) as session:
        return session.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


def dispatch(api_db: str) -> dict[str, int]:
    with transaction(api_db) as session:
        return notifications.dispatch(session=session)


def test_events_go_to_their_recipients_once(api_db, people):
    with transaction(api_db) as session:
        notifications.emit_for_users(
            session,
            "request.failed",
            [
                {"user_id": people["alice"], "title": "failed", "data": {"request_id": "r1"}},
                {"user_id": people["bob"], "title": "failed too", "data": {"request_id": "r2"}},
            ],
        )
        notifications.emit(session, "batch.quarantined", title="Batch quarantined: x.jsonl")
    done = dispatch(api_db)
    # alice and bob (their own); olga and root (operators' event); not the inactive admin
    assert done == {"events": 3, "notifications": 4, "deliveries": 1}
    assert dispatch(api_db) == {"events": 0, "notifications": 0, "deliveries": 0}
    assert count(api_db, NotificationEvent, NotificationEvent.dispatched_at.is_(None)) == 0
    assert count(api_db, Notification, Notification.user_id == people["gone"]) == 0
    with transaction(api_db) as session:
        (email,) = session.scalars(select(NotificationDelivery)).all()
        assert (email.channel, email.target, email.status) == (
            "email",
            "alice@example.org",
            "pending",
        )


def _emit_failures(api_db: str, people: dict[str, str], n: int, *, alert: bool = True) -> None:
    users = [people["alice"], people["bob"]]
    with transaction(api_db) as session:
        notifications.emit_for_users(
            session,
            "request.failed",
            [{"user_id": users[i % 2], "title": f"failed {i}"} for i in range(n)],
        )
        if alert:
            notifications.emit(session, "batch.quarantined", title="Batch quarantined: y.jsonl")


def _statements_of_dispatch(api_db: str) -> tuple[dict[str, int], int]:
    seen: list[str] = []
    with transaction(api_db) as session:
        engine = session.get_bind()

        def count_it(conn, cursor, statement, parameters, context, executemany):
            seen.append(statement)

        sqlalchemy_event.listen(engine, "before_cursor_execute", count_it)
        try:
            done = notifications.dispatch(session=session)
        finally:
            sqlalchemy_event.remove(engine, "before_cursor_execute", count_it)
    return done, len(seen)


def test_a_dispatch_takes_as_many_statements_for_many_events_as_for_few(api_db, people):
    _emit_failures(api_db, people, 10)
    few, few_statements = _statements_of_dispatch(api_db)
    assert few == {"events": 11, "notifications": 12, "deliveries": 5}
    _emit_failures(api_db, people, 900)
    many, many_statements = _statements_of_dispatch(api_db)
    # 900 user events (450 emails to alice), the operators' event to olga and root
    assert many == {"events": 901, "notifications": 902, "deliveries": 450}
    assert many_statements == few_statements
    assert count(api_db, Notification) == 914


def test_a_dispatch_run_again_after_a_crash_doubles_nothing(api_db, people):
    """Fan-out written, then the events put back as if their marking had been lost: the
    second run writes no notification or delivery twice (the tables' unique keys)."""
    _emit_failures(api_db, people, 20, alert=False)
    assert dispatch(api_db) == {"events": 20, "notifications": 20, "deliveries": 10}
    with transaction(api_db) as session:
        session.execute(update(NotificationEvent).values(dispatched_at=None))
    assert dispatch(api_db) == {"events": 20, "notifications": 0, "deliveries": 0}
    assert count(api_db, Notification) == 20
    assert count(api_db, NotificationDelivery) == 10


def test_a_condition_notifies_once_while_it_lasts_and_says_when_it_clears(api_db, people):
    down = HealthReport("down", "1", None, [Component("redis", "down", "refused", None, True, {})])
    up = HealthReport("ok", "1", None, [Component("redis", "ok", "", 1.0, False, {})])
    for report in (down, down, up, up, down):
        with transaction(api_db) as session:
            notifications.health_alerts(report, session=session)
    with transaction(api_db) as session:
        events = session.execute(
            select(
                NotificationEvent.kind, NotificationEvent.resolved, NotificationEvent.title
            ).order_by(NotificationEvent.at)
        ).all()
    assert [(k, r) for k, r, _ in events] == [
        ("component.down", False),
        ("component.down", True),
        ("component.down", False),
    ]
    assert events[1].title == "redis has recovered (request network)"
    dispatch(api_db)
    assert count(api_db, Notification, Notification.user_id == people["root"]) == 3
    assert count(api_db, Notification, Notification.user_id == people["olga"]) == 0  # admins


def test_preferences_choose_the_channels():
    assert channels_for("request.completed", None) == ("in_app",)
    assert channels_for("request.failed", None) == ("in_app", "email")
    mine = {"channels": {"request.completed": ["email"], "request.failed": []}}
    assert channels_for("request.completed", mine) == ("in_app", "email")
    assert channels_for("request.failed", mine) == ("in_app",)  # in-app is always on


def test_the_api_lists_unread_first_and_marks_them_read(client, login, api_db, people):
    with transaction(api_db) as session:
        for n in range(3):
            notifications.emit_for_users(
                session, "request.completed", [{"user_id": people["alice"], "title": f"#{n}"}]
            )
    dispatch(api_db)
    alice, bob = login("alice"), login("bob")
    page = client.get(LIST, headers=alice).json()
    assert (page["total"], page["unread"]) == (3, 3)
    assert [n["title"] for n in page["items"]] == ["#2", "#1", "#0"]
    oldest = page["items"][-1]["id"]
    assert_problem(client.post(f"{LIST}/{oldest}/read", headers=bob), 404)  # not bob's
    read = client.post(f"{LIST}/{oldest}/read", headers=alice)
    assert read.status_code == 200 and read.json()["read_at"] is not None
    page = client.get(LIST, headers=alice).json()
    assert [n["title"] for n in page["items"]] == ["#2", "#1", "#0"] and page["unread"] == 2
    assert client.get(LIST, params={"unread": True}, headers=alice).json()["total"] == 2
    assert client.post(f"{LIST}/read-all", headers=alice).json() == {"marked": 2}
    assert client.get(LIST, headers=alice).json()["unread"] == 0
    assert client.get(LIST, headers=bob).json()["total"] == 0
    assert_problem(client.get(LIST), 401)
    assert_problem(client.post(f"{LIST}/0/read", headers=alice), 422)


@pytest.fixture
def live(settings) -> Iterator[str]:
    """The app on a real uvicorn server in a thread (streams need a real connection)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings.model_copy(update={"notification_stream_seconds": 60})),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, timeout=30, what="the test server to start")
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_the_stream_delivers_a_notification_while_connected(live, login, api_db, people):
    headers = login("alice")
    received: list[str] = []

    def listen() -> None:
        with (
            httpx.Client(base_url=live, timeout=30) as http,
            http.stream("GET", f"{LIST}/stream", headers=headers) as reply,
        ):
            assert reply.headers["content-type"].startswith("text/event-stream")
            for line in reply.iter_lines():
                received.append(line)
                if line.startswith("data:"):
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    wait_until(lambda: ": connected" in received, timeout=30, what="the stream to open")
    with transaction(api_db) as session:
        notifications.emit_for_users(
            session, "request.completed", [{"user_id": people["alice"], "title": "live"}]
        )
    dispatch(api_db)
    listener.join(timeout=30)
    assert not listener.is_alive(), received
    assert any(line.startswith("event: notification") for line in received), received
    data = next(line for line in received if line.startswith("data:"))
    assert '"title":"live"' in data

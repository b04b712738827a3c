"""Notifications on the response network (real PostgreSQL): a quarantined batch and a
component down reach its operators and admins in-app, through the same routes as on the
request network."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from response_api_helpers import (
    PASSWORD,
    add_user,
    assert_problem,
    clear_auth_keys,
    empty_response_db,
    make_settings,
)
from sqlalchemy import select

from response_network.app import create_app
from response_network.models import Notification, User
from response_network.services import notifications
from shared.db import reading, transaction, utcnow
from shared.health import Component, HealthReport

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
LIST = "/api/v1/notifications"


@pytest.fixture
def rs(pg_urls, tmp_path) -> Iterator[tuple[TestClient, str]]:
    import redis

    url = pg_urls["response"]
    empty_response_db(url)
    cache = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    clear_auth_keys(cache)
    for name, role in (("root", "admin"), ("olga", "operator"), ("uma", "user")):
        add_user(url, name, role=role)
    with TestClient(create_app(make_settings(url, transfer_dir=tmp_path / "t"))) as client:
        yield client, url
    empty_response_db(url)
    clear_auth_keys(cache)


def login(client: TestClient, username: str) -> dict[str, str]:
    reply = client.post("/api/v1/auth/login", data={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def test_operators_and_admins_hear_of_what_goes_wrong_here(rs):
    client, url = rs
    down = HealthReport("down", "1", None, [Component("search", "down", "timeout", None, True, {})])
    with transaction(url) as session:
        notifications.emit(session, "batch.quarantined", title="Batch quarantined: x.jsonl")
        notifications.health_alerts(down, session=session)
    with transaction(url) as session:
        assert notifications.dispatch(session=session)["events"] == 2
    root, olga, uma = login(client, "root"), login(client, "olga"), login(client, "uma")
    kinds = {n["kind"] for n in client.get(LIST, headers=root).json()["items"]}
    assert kinds == {"batch.quarantined", "component.down"}
    olgas = client.get(LIST, headers=olga).json()["items"]
    assert [n["kind"] for n in olgas] == ["batch.quarantined"]  # component alerts: admins
    assert client.get(LIST, headers=uma).json()["total"] == 0
    assert client.post(f"{LIST}/read-all", headers=root).json() == {"marked": 2}
    assert_problem(client.get(LIST), 401)


def test_the_list_sorts_by_time_severity_kind_or_read_and_refuses_any_other(rs):
    client, url = rs
    root = login(client, "root")
    with reading(url) as session:
        root_id = session.scalars(select(User.id).where(User.username == "root")).one()
    now = utcnow()
    with transaction(url) as session:
        for title, severity, hours, read in (
            ("old critical", "critical", 3, False),
            ("new info", "info", 1, False),
            ("read warning", "warning", 2, True),
        ):
            session.add(
                Notification(
                    event_id=str(uuid.uuid4()),
                    user_id=root_id,
                    at=now - timedelta(hours=hours),
                    kind=f"kind.{severity}",
                    severity=severity,
                    title=title,
                    read_at=now if read else None,
                )
            )

    def titles(sort: str | None = None) -> list[str]:
        reply = client.get(LIST, params={"sort": sort} if sort else {}, headers=root)
        assert reply.status_code == 200, reply.text
        return [n["title"] for n in reply.json()["items"]]

    assert titles() == titles("read") == ["new info", "old critical", "read warning"]
    assert titles("-read") == ["read warning", "new info", "old critical"]
    assert titles("at") == ["old critical", "read warning", "new info"]
    assert titles("-severity") == ["old critical", "read warning", "new info"]  # by weight
    assert titles("kind") == ["old critical", "new info", "read warning"]
    refused = assert_problem(client.get(LIST, params={"sort": "title"}, headers=root), 422)
    assert "sort" in refused["detail"]

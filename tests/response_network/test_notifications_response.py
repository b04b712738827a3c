"""Notifications on the response network (real PostgreSQL): a quarantined batch and a
component down reach its operators and admins in-app, through the same routes as on the
request network."""

from __future__ import annotations

from collections.abc import Iterator

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

from response_network.app import create_app
from response_network.services import notifications
from shared.db import transaction
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

"""Webhooks on the response network (real PostgreSQL, a real HTTP receiver): the same routes
as on the request network, who may use them and subscribe to what, and an operational event
delivered, signed (checked with the `standardwebhooks` reference library), to the endpoints
of the operators and admins who hear of it."""

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
from sqlalchemy import select, update
from standardwebhooks import Webhook

from response_network import jobs
from response_network.app import create_app
from response_network.models import NotificationDelivery
from response_network.services import notifications
from shared.db import transaction, utcnow
from tests.webhook_support import Receiver

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
HOOKS = "/api/v1/webhooks"


@pytest.fixture
def rs(pg_urls, tmp_path) -> Iterator[tuple[TestClient, str, object]]:
    import redis

    url = pg_urls["response"]
    empty_response_db(url)
    cache = redis.Redis.from_url("redis://127.0.0.1:6379/15")
    clear_auth_keys(cache)
    for name, role in (("root", "admin"), ("olga", "operator"), ("uma", "user")):
        add_user(url, name, role=role)
    settings = make_settings(
        url, transfer_dir=tmp_path / "t", webhook_allowed_hosts=["127.0.0.0/8"]
    )
    with TestClient(create_app(settings)) as client:
        yield client, url, settings
    empty_response_db(url)
    clear_auth_keys(cache)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box = Receiver().start()
    yield box
    box.stop()


def login(client: TestClient, username: str) -> dict[str, str]:
    reply = client.post("/api/v1/auth/login", data={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def test_an_operational_event_reaches_operators_and_admins_endpoints(rs, receiver):
    client, url, settings = rs
    root, olga, uma = login(client, "root"), login(client, "olga"), login(client, "uma")
    body = {"url": receiver.url("/root"), "events": ["component.down", "batch.quarantined"]}
    theirs = client.post(HOOKS, json=body, headers=root).json()
    ops = client.post(
        HOOKS, json={"url": receiver.url("/olga"), "events": ["batch.quarantined"]}, headers=olga
    ).json()
    refused = client.post(
        HOOKS, json={"url": receiver.url(), "events": ["batch.quarantined"]}, headers=uma
    )
    assert assert_problem(refused, 422)["errors"][0]["loc"] == "body.events"
    assert (
        client.post(
            HOOKS, json={"url": receiver.url("/uma"), "events": ["request.failed"]}, headers=uma
        ).status_code
        == 201
    )

    with transaction(url) as session:
        notifications.emit(session, "batch.quarantined", title="Batch quarantined: x.jsonl")
    with transaction(url) as session:
        assert notifications.dispatch(session=session)["events"] == 1
    done = jobs.send_webhooks(settings)
    assert (done["sent"], done["failed"]) == (2, 0)
    by_path = {r.path: r for r in receiver.received}
    assert sorted(by_path) == ["/olga", "/root"]
    event = Webhook(theirs["secret"]).verify(by_path["/root"].body, by_path["/root"].headers)
    assert event["type"] == "batch.quarantined" and event["data"]["network"] == "response"
    Webhook(ops["secret"]).verify(by_path["/olga"].body, by_path["/olga"].headers)
    assert by_path["/olga"].headers["webhook-id"] == by_path["/root"].headers["webhook-id"]


def test_a_failed_delivery_is_retried_and_logged(rs, receiver):
    client, url, settings = rs
    root = login(client, "root")
    receiver.status = 503
    hook = client.post(
        HOOKS, json={"url": receiver.url(), "events": ["component.down"]}, headers=root
    ).json()
    with transaction(url) as session:
        notifications.emit(session, "component.down", title="search is down")
    with transaction(url) as session:
        notifications.dispatch(session=session)
    assert jobs.send_webhooks(settings)["failed"] == 1
    receiver.status = 200
    with transaction(url) as session:
        session.execute(update(NotificationDelivery).values(next_attempt_at=utcnow()))
    assert jobs.send_webhooks(settings)["sent"] == 1
    log = client.get(f"{HOOKS}/{hook['id']}/deliveries", headers=root).json()
    assert [(e["attempt"], e["response_code"]) for e in log["items"]] == [(2, 200), (1, 503)]
    assert len({r.headers["webhook-id"] for r in receiver.received}) == 1
    with transaction(url) as session:
        assert session.scalars(select(NotificationDelivery.status)).all() == ["sent"]


def test_only_the_owner_or_an_admin_sees_an_endpoint(rs, receiver):
    client, _, _ = rs
    root, olga, uma = login(client, "root"), login(client, "olga"), login(client, "uma")
    hook = client.post(
        HOOKS, json={"url": receiver.url(), "events": ["request.failed"]}, headers=uma
    ).json()
    path = f"{HOOKS}/{hook['id']}"
    assert_problem(client.get(path, headers=olga), 404)
    assert_problem(client.delete(path, headers=olga), 404)
    assert_problem(client.get(HOOKS, params={"all": "true"}, headers=olga), 403)
    assert client.get(HOOKS, headers=olga).json()["items"] == []
    assert client.get(path, headers=root).json()["user_id"] == hook["user_id"]
    assert client.get(HOOKS, params={"all": "true"}, headers=root).json()["total"] == 1
    for method in ("get", "post"):
        assert_problem(getattr(client, method)(HOOKS), 401)
    assert_problem(client.get(path), 401)
    assert client.delete(path, headers=uma).status_code == 204


def test_a_url_off_the_allow_list_names_the_field(rs):
    client, _, _ = rs
    reply = client.post(
        HOOKS,
        json={"url": "https://hooks.example.org/x", "events": ["component.down"]},
        headers=login(client, "root"),
    )
    problem = assert_problem(reply, 422)
    assert problem["errors"][0]["loc"] == "body.url"
    assert "webhook_allowed_hosts" in problem["errors"][0]["msg"]

"""Webhooks on the request network, real PostgreSQL and a real HTTP receiver on a local port:
endpoints through the API (allow-list, events a user hears of, RBAC, the cap), fan-out of
events to the endpoints that hear of them, and the sender: each delivery arrives once,
signed per Standard Webhooks (checked with the `standardwebhooks` reference library) with
the event id as `webhook-id`, retried after a receiver was down, refused at send time when
the host resolves outside the allowed networks, and the endpoint disabled (its owner told)
after repeated failure. Time moves by moving `next_attempt_at` in the database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer

import httpx
import pytest
from fastapi.testclient import TestClient
from request_api_helpers import PASSWORD, assert_problem, closed_port, make_settings
from sqlalchemy import create_engine, select, text, update
from standardwebhooks import Webhook

from request_network import jobs
from request_network.app import create_app
from request_network.models import (
    Notification,
    NotificationDelivery,
    User,
    WebhookAttempt,
    WebhookEndpoint,
)
from request_network.services import notifications
from shared.db import transaction, utcnow
from tests.webhook_support import Receiver, docs_receiver_example, tls_server_context

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
HOOKS = "/api/v1/webhooks"
LOCAL = ["127.0.0.0/8", "::1", "localhost"]


@pytest.fixture
def people(seed) -> dict[str, str]:
    seed.profile_type()
    return {
        "alice": seed.user("alice"),
        "bob": seed.user("bob"),
        "olga": seed.user("olga", role="operator"),
        "root": seed.user("root", role="admin"),
    }


def settings_for(api_db: str, **overrides):
    values = dict(
        webhook_allowed_hosts=LOCAL,
        webhook_backoff_base_s=30.0,
        webhook_backoff_jitter=0.0,
        webhook_timeout_s=5.0,
    )
    return make_settings(api_db, **(values | overrides))


@pytest.fixture
def hooks_settings(api_db):
    return settings_for(api_db)


@pytest.fixture
def api(hooks_settings, people) -> Iterator[TestClient]:
    with TestClient(create_app(hooks_settings)) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box = Receiver().start()
    yield box
    box.stop()


def login(client: TestClient, username: str) -> dict[str, str]:
    reply = client.post("/api/v1/auth/login", data={"username": username, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def add_endpoint(client, who, url, events=("request.failed",), **extra) -> dict:
    reply = client.post(HOOKS, json={"url": url, "events": list(events), **extra}, headers=who)
    assert reply.status_code == 201, reply.text
    assert reply.headers["cache-control"] == "no-store"
    return reply.json()


def failed_request(api_db: str, user_id: str, title: str = "Request 5b1e0c2d failed") -> None:
    """A cause's transaction writes its event; `notify` fans it out."""
    with transaction(api_db) as session:
        notifications.emit_for_users(
            session,
            "request.failed",
            [{"user_id": user_id, "title": title, "data": {"request_id": "5b1e0c2d"}}],
        )
    with transaction(api_db) as session:
        notifications.dispatch(session=session)


def deliveries(api_db: str) -> list[NotificationDelivery]:
    with transaction(api_db) as session:
        query = select(NotificationDelivery).where(NotificationDelivery.channel == "webhook")
        return list(session.scalars(query.order_by(NotificationDelivery.id)))


def last_attempt(api_db: str) -> WebhookAttempt:
    with transaction(api_db) as session:
        return session.scalars(select(WebhookAttempt).order_by(WebhookAttempt.id.desc())).first()


def make_due(api_db: str) -> None:
    """Time passes: every waiting delivery is due now."""
    with transaction(api_db) as session:
        session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.status.in_(("pending", "failed")))
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


# -- delivery ---------------------------------------------------------------------------------


def test_a_delivery_arrives_once_signed_with_the_event_id(
    api, api_db, hooks_settings, people, receiver
):
    alice = login(api, "alice")
    hook = add_endpoint(api, alice, receiver.url())
    secret = hook["secret"]
    assert secret.startswith("whsec_") and "secret" not in api.get(HOOKS, headers=alice).json()

    # While the receiver has the request, nothing of the sender's is locked in the database.
    locks: list[str] = []

    def no_lock_held(_):
        engine = create_engine(api_db)
        with engine.connect() as conn:
            for table in ("notification_deliveries", "webhook_endpoints"):
                conn.execute(text(f"SELECT 1 FROM {table} FOR UPDATE NOWAIT"))  # noqa: S608
                locks.append(table)
            conn.rollback()
        engine.dispose()

    receiver.on_request = no_lock_held
    failed_request(api_db, people["alice"])
    failed_request(api_db, people["bob"], "bob's, not alice's")
    (pending,) = deliveries(api_db)
    assert (pending.target, pending.status) == (hook["id"], "pending")

    assert jobs.send_webhooks(hooks_settings) | {"trimmed": 0} == {
        "claimed": 1,
        "sent": 1,
        "failed": 0,
        "dead": 0,
        "disabled": 0,
        "trimmed": 0,
    }
    assert locks == ["notification_deliveries", "webhook_endpoints"]
    (got,) = receiver.received
    event = Webhook(secret).verify(got.body, got.headers)  # an independent implementation
    assert got.headers["webhook-id"] == pending.event_id == event["data"]["id"]
    assert event["type"] == "request.failed"
    assert event["data"]["title"] == "Request 5b1e0c2d failed"
    assert event["data"]["data"] == {"request_id": "5b1e0c2d"}
    assert event["data"]["network"] == "request"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["host"] == f"127.0.0.1:{receiver.port}"

    # Sent is sent: another run (and another fan-out) sends nothing more.
    with transaction(api_db) as session:
        notifications.dispatch(session=session)
    assert jobs.send_webhooks(hooks_settings)["claimed"] == 0
    assert len(receiver.received) == 1
    (sent,) = deliveries(api_db)
    assert (sent.status, sent.attempts) == ("sent", 1) and sent.sent_at is not None

    log = api.get(f"{HOOKS}/{hook['id']}/deliveries", headers=alice).json()
    assert log["total"] == 1
    (entry,) = log["items"]
    assert entry["event_id"] == pending.event_id and entry["kind"] == "request.failed"
    assert (entry["attempt"], entry["status"], entry["response_code"]) == (1, "sent", 204)
    assert entry["latency_ms"] is not None and entry["error"] is None


def test_a_receiver_down_then_up_gets_it_after_retries(api, api_db, hooks_settings, people):
    down = Receiver(port=closed_port())  # nothing listens there: refused, really
    alice = login(api, "alice")
    hook = add_endpoint(api, alice, down.url())
    failed_request(api_db, people["alice"])

    assert jobs.send_webhooks(hooks_settings)["failed"] == 1
    (first,) = deliveries(api_db)
    assert (first.status, first.attempts) == ("failed", 1)
    assert "ConnectError" in first.last_error
    assert first.next_attempt_at - last_attempt(api_db).at == timedelta(seconds=30)  # base
    assert jobs.send_webhooks(hooks_settings)["claimed"] == 0  # not due yet

    make_due(api_db)
    assert jobs.send_webhooks(hooks_settings)["failed"] == 1
    (second,) = deliveries(api_db)
    assert second.attempts == 2
    assert second.next_attempt_at - last_attempt(api_db).at == timedelta(seconds=60)  # doubled

    up = Receiver(port=down.port).start()
    try:
        make_due(api_db)
        assert jobs.send_webhooks(hooks_settings)["sent"] == 1
        (got,) = up.received
    finally:
        up.stop()
    Webhook(hook["secret"]).verify(got.body, got.headers)
    assert got.headers["webhook-id"] == first.event_id  # the same id on every attempt
    log = api.get(f"{HOOKS}/{hook['id']}/deliveries", headers=alice).json()["items"]
    assert [(e["attempt"], e["status"], e["response_code"]) for e in log] == [
        (3, "sent", 204),
        (2, "failed", None),
        (1, "failed", None),
    ]
    endpoint = api.get(f"{HOOKS}/{hook['id']}", headers=alice).json()
    assert endpoint["consecutive_failures"] == 0 and endpoint["active"]


def test_repeated_failure_disables_the_endpoint_and_tells_its_owner(api, api_db, people, receiver):
    settings = settings_for(api_db, webhook_disable_after_failures=3, webhook_max_attempts=2)
    receiver.status = 500
    alice = login(api, "alice")
    hook = add_endpoint(api, alice, receiver.url())
    failed_request(api_db, people["alice"], "first")
    failed_request(api_db, people["alice"], "second")

    assert jobs.send_webhooks(settings)["failed"] == 2
    make_due(api_db)
    done = jobs.send_webhooks(settings)
    assert (done["dead"], done["disabled"]) == (2, 1)  # 2 attempts each: given up
    assert [d.status for d in deliveries(api_db)] == ["dead", "dead"]
    assert "HTTP 500" in deliveries(api_db)[0].last_error
    endpoint = api.get(f"{HOOKS}/{hook['id']}", headers=alice).json()
    assert endpoint["active"] is False and endpoint["consecutive_failures"] == 4
    assert "failed deliveries in a row" in endpoint["disabled_reason"]

    # Its owner hears of it in-app, through the ordinary fan-out.
    with transaction(api_db) as session:
        notifications.dispatch(session=session)
        notice = session.scalars(
            select(Notification).where(Notification.kind == "webhook.disabled")
        ).one()
    assert notice.user_id == people["alice"]
    assert notice.data["webhook_id"] == hook["id"] and "PATCH" in notice.body

    # A disabled endpoint gets nothing: no delivery is made for a new event.
    failed_request(api_db, people["alice"], "third")
    sent_before = len(receiver.received)
    assert len(deliveries(api_db)) == 2
    assert jobs.send_webhooks(settings)["claimed"] == 0
    assert len(receiver.received) == sent_before

    # Enabled again (the receiver fixed), it receives and its count starts over.
    receiver.status = 200
    reply = api.patch(f"{HOOKS}/{hook['id']}", json={"active": True}, headers=alice)
    assert reply.json()["active"] and reply.json()["disabled_reason"] is None
    failed_request(api_db, people["alice"], "fourth")
    assert jobs.send_webhooks(settings)["sent"] == 1


def test_410_gone_disables_at_once(api, api_db, hooks_settings, people, receiver):
    receiver.status = 410
    alice = login(api, "alice")
    hook = add_endpoint(api, alice, receiver.url())
    failed_request(api_db, people["alice"])
    assert jobs.send_webhooks(hooks_settings)["disabled"] == 1
    endpoint = api.get(f"{HOOKS}/{hook['id']}", headers=alice).json()
    assert endpoint["active"] is False and "410" in endpoint["disabled_reason"]


def test_a_name_resolving_outside_the_allowed_networks_is_refused_at_send_time(
    api, api_db, people, receiver
):
    """DNS rebinding: "localhost" is an allowed name, but it resolves to loopback addresses
    that no listed network holds; the POST is never made."""
    alice = login(api, "alice")
    add_endpoint(api, alice, receiver.url(host="localhost"))
    failed_request(api_db, people["alice"])
    only_the_name = settings_for(api_db, webhook_allowed_hosts=["localhost"])
    assert jobs.send_webhooks(only_the_name)["failed"] == 1
    (refused,) = deliveries(api_db)
    assert "outside the allowed networks" in refused.last_error
    assert receiver.received == []
    # The same host with its networks listed goes through.
    make_due(api_db)
    assert jobs.send_webhooks(settings_for(api_db))["sent"] == 1
    assert receiver.received[0].headers["host"] == f"localhost:{receiver.port}"


def test_https_receivers_are_checked_for_the_name_though_reached_by_address(
    api, api_db, people, tmp_path
):
    """The sender connects to the address it checked, and TLS verifies the certificate for
    the URL's host name (SNI): a receiver whose certificate names another host is refused."""
    alice = login(api, "alice")
    good, ca = tls_server_context(tmp_path, "localhost")
    wrong, wrong_ca = tls_server_context(tmp_path, "elsewhere.example")
    (tmp_path / "both.pem").write_text(ca.read_text() + wrong_ca.read_text())
    settings = settings_for(api_db, webhook_ca_file=tmp_path / "both.pem")
    right, impostor = Receiver().start(tls=good), Receiver().start(tls=wrong)
    try:
        hook = add_endpoint(api, alice, f"https://localhost:{right.port}/hook")
        add_endpoint(api, alice, f"https://localhost:{impostor.port}/hook")
        failed_request(api_db, people["alice"])
        assert jobs.send_webhooks(settings) | {"trimmed": 0} == {
            "claimed": 2,
            "sent": 1,
            "failed": 1,
            "dead": 0,
            "disabled": 0,
            "trimmed": 0,
        }
        (got,) = right.received
        assert impostor.received == []
    finally:
        right.stop()
        impostor.stop()
    Webhook(hook["secret"]).verify(got.body, got.headers)
    assert got.headers["host"] == f"localhost:{right.port}"
    refused = [d for d in deliveries(api_db) if d.status == "failed"]
    assert "CERTIFICATE_VERIFY_FAILED" in refused[0].last_error


def test_events_reach_the_endpoints_whose_owners_hear_of_them(api, api_db, seed, people, receiver):
    alice, olga, root = login(api, "alice"), login(api, "olga"), login(api, "root")
    mine = add_endpoint(api, alice, receiver.url("/alice"), ["request.failed", "api_key.rotated"])
    ops = add_endpoint(api, olga, receiver.url("/olga"), ["batch.quarantined", "request.failed"])
    adm = add_endpoint(api, root, receiver.url("/root"), ["batch.quarantined", "component.down"])
    other = add_endpoint(api, root, receiver.url("/other"), ["disk.low"])
    with transaction(api_db) as session:
        notifications.emit(session, "batch.quarantined", title="Batch quarantined: x.jsonl")
        notifications.emit(session, "component.down", title="redis is down")
        notifications.emit_for_users(
            session, "request.failed", [{"user_id": people["alice"], "title": "failed"}]
        )
    with transaction(api_db) as session:
        assert notifications.dispatch(session=session)["events"] == 3
    targets = sorted((d.target, d.user_id) for d in deliveries(api_db))
    assert targets == sorted(
        [
            (ops["id"], people["olga"]),  # batch.quarantined (not alice's request.failed)
            (adm["id"], people["root"]),  # batch.quarantined
            (adm["id"], people["root"]),  # component.down
            (mine["id"], people["alice"]),  # her request.failed
        ]
    )
    assert other["id"] not in {t for t, _ in targets}

    # An owner who is no longer active hears of nothing more.
    seed.set_active(people["root"], False)
    with transaction(api_db) as session:
        notifications.emit(session, "batch.quarantined", title="Batch quarantined: y.jsonl")
    with transaction(api_db) as session:
        notifications.dispatch(session=session)
    assert len(deliveries(api_db)) == 5  # olga's only
    done = jobs.send_webhooks(settings_for(api_db))
    assert (done["sent"], done["dead"]) == (3, 2)  # root's two are given up
    assert sorted(r.path for r in receiver.received) == ["/alice", "/olga", "/olga"]


def test_an_unreachable_receiver_does_not_touch_the_cause(api, api_db, hooks_settings, people):
    alice = login(api, "alice")
    add_endpoint(api, alice, f"http://127.0.0.1:{closed_port()}/down")
    failed_request(api_db, people["alice"])  # the cause commits, fan-out commits
    with transaction(api_db) as session:
        assert session.scalars(select(Notification)).one().user_id == people["alice"]
    assert jobs.send_webhooks(hooks_settings)["failed"] == 1  # the run itself succeeds


def test_the_secret_is_stored_sealed(api, api_db, people, receiver):
    hook = add_endpoint(api, login(api, "alice"), receiver.url())
    with transaction(api_db) as session:
        stored = session.get(WebhookEndpoint, hook["id"]).secret
    assert stored.startswith("v1.") and hook["secret"] not in stored
    assert hook["secret"].removeprefix("whsec_") not in stored


# -- the API ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "why"),
    [
        ({"url": "https://evil.example.org/x"}, "body.url", "webhook_allowed_hosts"),
        ({"url": "http://10.1.2.3/x"}, "body.url", "not in a network"),
        ({"url": "ftp://127.0.0.1/x"}, "body.url", "only http:// and https://"),
        ({"url": "javascript:alert(1)"}, "body.url", "only http:// and https://"),
        ({"url": "http://u:p@127.0.0.1/"}, "body.url", "no user name or password"),
        ({"url": "http://127.0.0.1/" + "a" * 2100}, "body.url", "at most 2048"),
        ({"events": ["no.such.kind"]}, "body.events.0", "Input should be"),
        ({"events": []}, "body.events", "at least 1"),
        ({"events": ["request.failed"] * 2}, "body.events", "at most once"),
        ({"events": ["request.failed"] * 17}, "body.events", "at most 15"),
        ({"events": ["batch.quarantined"]}, "body.events", "not a kind you hear of"),
        ({"events": "request.failed"}, "body.events", "valid list"),
        ({"description": "a\x00b"}, "body.description", "pattern"),
        ({"secret": "whsec_mine"}, "body.secret", "Extra inputs"),
    ],
)
def test_refusals_name_the_field(api, receiver, body, field, why):
    valid = {"url": receiver.url(), "events": ["request.failed"]}
    reply = api.post(HOOKS, json=valid | body, headers=login(api, "alice"))
    problem = assert_problem(reply, 422)
    (error,) = [e for e in problem["errors"] if e["loc"] == field]
    assert why in error["msg"], problem


def test_nothing_is_allowed_until_an_admin_lists_hosts(api_db, people, receiver):
    with TestClient(create_app(make_settings(api_db))) as client:
        reply = client.post(
            HOOKS,
            json={"url": receiver.url(), "events": ["request.failed"]},
            headers=login(client, "root"),
        )
    problem = assert_problem(reply, 422)
    assert problem["errors"][0]["loc"] == "body.url"
    assert "webhook_allowed_hosts" in problem["errors"][0]["msg"]


def test_users_see_only_their_own_endpoints(api, people, receiver):
    alice, bob, root = login(api, "alice"), login(api, "bob"), login(api, "root")
    hers = add_endpoint(api, alice, receiver.url())
    add_endpoint(api, bob, receiver.url())
    assert [h["id"] for h in api.get(HOOKS, headers=alice).json()["items"]] == [hers["id"]]
    for method in ("get", "delete"):
        assert_problem(getattr(api, method)(f"{HOOKS}/{hers['id']}", headers=bob), 404)
    assert_problem(api.get(f"{HOOKS}/{hers['id']}/deliveries", headers=bob), 404)
    assert_problem(api.patch(f"{HOOKS}/{hers['id']}", json={"active": False}, headers=bob), 404)
    assert_problem(api.get(HOOKS, params={"all": "true"}, headers=bob), 403)
    everyone = api.get(HOOKS, params={"all": "true"}, headers=root).json()
    assert everyone["total"] == 2
    assert api.get(f"{HOOKS}/{hers['id']}", headers=root).json()["user_id"] == people["alice"]
    for method, path in (("get", HOOKS), ("post", HOOKS), ("get", f"{HOOKS}/{hers['id']}")):
        assert_problem(getattr(api, method)(path), 401)


def test_change_delete_and_the_cap(api, api_db, people, receiver):
    alice = login(api, "alice")
    hook = add_endpoint(api, alice, receiver.url(), description="ci")
    path = f"{HOOKS}/{hook['id']}"
    changed = api.patch(
        path,
        json={"url": receiver.url("/v2"), "events": ["request.expired"], "active": False},
        headers=alice,
    ).json()
    assert changed["url"].endswith("/v2") and changed["events"] == ["request.expired"]
    assert changed["active"] is False and changed["disabled_reason"] == "disabled by alice"
    assert changed["description"] == "ci"
    refused = api.patch(path, json={"url": "https://evil.example.org/"}, headers=alice)
    assert assert_problem(refused, 422)["errors"][0]["loc"] == "body.url"
    assert api.get(path, headers=alice).json()["url"].endswith("/v2")

    api.patch(path, json={"active": True, "events": ["request.failed"]}, headers=alice)
    failed_request(api_db, people["alice"])
    assert api.delete(path, headers=alice).status_code == 204
    assert_problem(api.get(path, headers=alice), 404)
    (gone,) = deliveries(api_db)
    assert (gone.status, gone.last_error) == ("dead", "the endpoint was deleted")

    with TestClient(create_app(settings_for(api_db, webhook_max_endpoints_per_user=2))) as capped:
        for _ in range(2):
            add_endpoint(capped, alice, receiver.url())
        reply = capped.post(
            HOOKS, json={"url": receiver.url(), "events": ["request.failed"]}, headers=alice
        )
        assert "at most 2" in assert_problem(reply, 409)["detail"]
    with transaction(api_db) as session:
        owned = session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.user_id == people["alice"])
        ).all()
        assert len(owned) == 2
        assert session.scalars(select(WebhookAttempt)).all() == []
        assert session.get(User, people["alice"]) is not None


# -- rotation and replay ----------------------------------------------------------------------


def test_a_rotated_secret_signs_beside_the_old_one_until_the_overlap_ends(
    api, api_db, hooks_settings, people, receiver
):
    alice, bob = login(api, "alice"), login(api, "bob")
    hook = add_endpoint(api, alice, receiver.url())
    path = f"{HOOKS}/{hook['id']}/rotate-secret"
    assert_problem(api.post(path, headers=bob), 404)  # not bob's
    reply = api.post(path, json={"previous_valid_hours": 2}, headers=alice)
    assert reply.status_code == 200, reply.text
    assert reply.headers["cache-control"] == "no-store"
    new = reply.json()["secret"]
    assert new.startswith("whsec_") and new != hook["secret"]

    failed_request(api_db, people["alice"])
    assert jobs.send_webhooks(hooks_settings)["sent"] == 1
    (during,) = receiver.received
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    for secret in (new, hook["secret"]):  # a receiver with either key accepts it
        Webhook(secret).verify(during.body, during.headers)

    with transaction(api_db) as session:  # the overlap ends
        session.get(WebhookEndpoint, hook["id"]).previous_secret_until = utcnow()
    failed_request(api_db, people["alice"], "a second failure")
    assert jobs.send_webhooks(hooks_settings)["sent"] == 1
    after = receiver.received[-1]
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(hook["secret"]).verify(after.body, after.headers)

    at_once = api.post(path, json={"previous_valid_hours": 0}, headers=alice).json()["secret"]
    with transaction(api_db) as session:
        row = session.get(WebhookEndpoint, hook["id"])
        assert row.previous_secret is None and row.previous_secret_until is None
        assert at_once not in row.secret  # sealed
    refused = api.post(path, json={"previous_valid_hours": 169}, headers=alice)
    assert assert_problem(refused, 422)["errors"][0]["loc"] == "body.previous_valid_hours"


def test_a_delivery_is_sent_again_on_request_with_the_same_id(
    api, api_db, hooks_settings, people, receiver
):
    alice, bob = login(api, "alice"), login(api, "bob")
    hook = add_endpoint(api, alice, receiver.url())
    failed_request(api_db, people["alice"])
    (pending,) = deliveries(api_db)
    path = f"{HOOKS}/{hook['id']}/deliveries/{pending.id}/replay"
    assert "still to be sent" in assert_problem(api.post(path, headers=alice), 409)["detail"]

    assert jobs.send_webhooks(hooks_settings)["sent"] == 1
    assert_problem(api.post(path, headers=bob), 404)
    assert_problem(api.post(f"{HOOKS}/{hook['id']}/deliveries/999999/replay", headers=alice), 404)
    reply = api.post(path, headers=alice)
    assert reply.status_code == 202, reply.text
    assert reply.json()["status"] == "pending" and reply.json()["event_id"] == pending.event_id

    assert jobs.send_webhooks(hooks_settings)["sent"] == 1
    first, again = receiver.received
    assert again.headers["webhook-id"] == first.headers["webhook-id"] == pending.event_id
    Webhook(hook["secret"]).verify(again.body, again.headers)
    log = api.get(f"{HOOKS}/{hook['id']}/deliveries", headers=alice).json()["items"]
    assert [(e["attempt"], e["status"]) for e in log] == [(2, "sent"), (1, "sent")]

    api.patch(f"{HOOKS}/{hook['id']}", json={"active": False}, headers=alice)
    assert "disabled" in assert_problem(api.post(path, headers=alice), 409)["detail"]
    bad = api.post(f"{HOOKS}/{hook['id']}/deliveries/0/replay", headers=alice)
    assert assert_problem(bad, 422)["errors"][0]["loc"] == "path.delivery_id"


# -- the receiver example of docs/NOTIFICATIONS.md -------------------------------------------


@pytest.fixture
def docs_receiver() -> Iterator[tuple[dict, str]]:
    """The docs' receiver, run as written (its `handle` recording what it handles)."""
    example = docs_receiver_example()
    handled: list[dict] = []
    example["handle"] = handled.append
    example["handled"] = handled
    server = ThreadingHTTPServer(("127.0.0.1", 0), example["Receiver"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield example, f"http://127.0.0.1:{server.server_address[1]}/ferry"
    server.shutdown()
    server.server_close()


def test_the_docs_receiver_takes_deliveries_and_refuses_tampered_or_replayed_ones(
    api, api_db, hooks_settings, people, docs_receiver
):
    example, url = docs_receiver
    hook = add_endpoint(api, login(api, "alice"), url)
    secret = example["SECRET"] = hook["secret"]
    failed_request(api_db, people["alice"])
    assert jobs.send_webhooks(hooks_settings)["sent"] == 1  # it answered 204
    (event,) = example["handled"]
    assert event["type"] == "request.failed" and event["data"]["title"].startswith("Request")

    # Requests made with the reference library's signer, each altered one way.
    body = b'{"type":"request.failed","timestamp":"2026-12-05T14:31:02Z","data":{"id":"e9"}}'

    def post(msg_id="e9", at=None, data=body, key=secret, signature=None) -> int:
        """POST `data`, signed as `body` (an altered `data` keeps the original signature)."""
        at = at or datetime.now(UTC)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature or Webhook(key).sign(msg_id, at, body),
            "content-type": "application/json",
        }
        return httpx.post(url, content=data, headers=headers).status_code

    assert post() == 204
    assert post() == 204  # the same webhook-id again (a retry): accepted, handled once
    assert len(example["handled"]) == 2
    assert post(data=body.replace(b"e9", b"e8")) == 401  # the body altered
    assert post(msg_id="e10", signature=Webhook(secret).sign("e9", datetime.now(UTC), body)) == 401
    assert post(key="whsec_" + "A" * 43 + "=") == 401  # another key's signature
    assert post(at=datetime.now(UTC) - timedelta(minutes=10)) == 401  # replayed later
    assert post(at=datetime.now(UTC) + timedelta(minutes=10)) == 401  # from the future
    assert httpx.post(url, content=body).status_code == 401  # no webhook headers
    assert len(example["handled"]) == 2

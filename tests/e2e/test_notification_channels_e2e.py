"""Notification channels across the real gap (see `conftest.py`): what a request answered on
the response network, or a batch refused on arrival, tells people on the request network by
email, signed webhook, live stream and escalating alert, every part a real process.

The request network's worker and API were started with settings naming a mail server
(aiosmtpd) and a webhook receiver (an HTTP server) in this test process
(`e2e_deployment.Channels`); a test stops one to play a receiver that is down and starts it
again on the same port. Retries wait a backoff of 30 s and more, and escalation a governed
number of minutes: rather than wait them out, a test moves the time a delivery is next due,
or an alert's last step, back in the request network's database (time travel), and says so.

Each test makes its own requests, addresses, endpoints and files, and looks only at those.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from e2e_deployment import EMAIL_FROM, ONCALL_EMAIL, Channels, Deployment
from e2e_support import Abort, wait_until
from sqlalchemy import create_engine, text
from standardwebhooks import Webhook

from transfer.format.digest import file_digest, sidecar_text

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.redis]

QUERY = {"query": {"match": {"field": "title", "value": "ferry"}}, "size": 5}
COMPLETED = "request.completed"
HOOKS = "/api/v1/webhooks"
ALERTS = "/api/v1/admin/alerts"
STREAM = "/api/v1/notifications/stream"
STREAM_TIMEOUT_S = 30.0

Auth = dict[str, str]


# -- the deployment --------------------------------------------------------------------------------


def _channels(d: Deployment) -> Channels:
    assert d.channels is not None, "the deployment has no notification channels"
    return d.channels


def _beat(d: Deployment, *tasks: str) -> dict[str, Any]:
    """Run the request network's tasks in order (what beat does); their results by name."""
    return {task: d.run_task("request", f"request.{task}") for task in tasks}


def _caught_up(d: Deployment) -> None:
    """notify has run, as beat runs it every few seconds: what happened before (other tests'
    requests) is fanned out by the preferences and endpoints of then, not by a test's own."""
    d.run_task("request", "request.notify")


@contextmanager
def _database(d: Deployment) -> Iterator[Any]:
    """The request network's PostgreSQL database, to read it and to move time in it."""
    engine = create_engine(d.request.env["FERRY_REQUEST_DATABASE_URL"])
    try:
        with engine.begin() as db:
            yield db
    finally:
        engine.dispose()


def _make_due(d: Deployment, channel: str, target: str) -> None:
    """Time travel: the backoff of the one failed `channel` delivery to `target` is over."""
    with _database(d) as db:
        moved = db.execute(
            text(
                "UPDATE notification_deliveries SET next_attempt_at = now() - interval '1 second'"
                " WHERE channel = :channel AND target = :target AND status = 'failed'"
            ),
            {"channel": channel, "target": target},
        ).rowcount
    assert moved == 1, f"{moved} failed {channel} deliveries to {target}"


def _deliveries(d: Deployment, channel: str, target: str) -> list[tuple]:
    """(event id, status, attempts, last error) of each `channel` delivery to `target`."""
    with _database(d) as db:
        rows = db.execute(
            text(
                "SELECT event_id, status, attempts, last_error FROM notification_deliveries"
                " WHERE channel = :channel AND target = :target ORDER BY id"
            ),
            {"channel": channel, "target": target},
        ).all()
    return [tuple(r) for r in rows]


# -- users, requests and notifications over HTTP ---------------------------------------------------


def _ok(reply: httpx.Response, status: int = 200) -> Any:
    assert reply.status_code == status, (reply.request.url, reply.status_code, reply.text)
    return reply.json() if reply.content else None


def _submit(http: httpx.Client, auth: Auth) -> str:
    reply = http.post(
        "/api/v1/requests", json={"profile_type": "articles", "query": QUERY}, headers=auth
    )
    return _ok(reply, 202)["id"]


def _across(d: Deployment) -> dict[str, Any]:
    """The one pending request to the response network and its answer back (beat and the
    operator); the response network's report of the results batch it wrote."""
    rq, rs = d.request, d.response
    assert d.run_task("request", "request.export_requests")["requests"] == 1
    d.carry(rq.outbox, rs.inbox)
    there = d.run_task("response", "response.import_requests")["files"]
    assert there and {f["status"] for f in there} == {"imported"}, there
    ran = d.run_task("response", "response.query_executor")
    assert ran == {"done": 1, "failed": 0, "deferred": 0}, ran
    results = d.run_task("response", "response.export_results")
    assert results["results"] == 1, results
    d.carry(rs.outbox, rq.inbox)
    back = d.run_task("request", "request.import_results")["files"]
    assert back and {f["status"] for f in back} == {"imported"}, back
    return results


def _answered(d: Deployment, http: httpx.Client, auth: Auth) -> str:
    """A request of the caller's, taken across the gap and answered; its id."""
    rid = _submit(http, auth)
    _across(d)
    assert _ok(http.get(f"/api/v1/requests/{rid}", headers=auth))["status"] == "COMPLETED"
    return rid


def _notifications(http: httpx.Client, auth: Auth, keep: Callable[[dict], bool]) -> list[dict]:
    reply = http.get("/api/v1/notifications", params={"limit": 100}, headers=auth)
    return [n for n in _ok(reply)["items"] if keep(n)]


def _completed(http: httpx.Client, auth: Auth, rid: str) -> dict:
    """The one in-app notification that request `rid` was answered."""
    mine = _notifications(
        http, auth, lambda n: n["kind"] == COMPLETED and n["data"].get("request_id") == rid
    )
    assert len(mine) == 1, mine
    return mine[0]


def _use_email(http: httpx.Client, auth: Auth, address: str) -> None:
    """The caller's address, and answered requests by email as well as in-app."""
    change = {
        "email": address,
        "notification_preferences": {"channels": {COMPLETED: ["in_app", "email"]}},
    }
    me = _ok(http.patch("/api/v1/users/me", json=change, headers=auth))
    assert me["email"] == address, me
    assert me["notification_preferences"]["channels"][COMPLETED] == ["in_app", "email"], me


def _add_webhook(http: httpx.Client, auth: Auth, url: str) -> dict:
    hook = _ok(http.post(HOOKS, json={"url": url, "events": [COMPLETED]}, headers=auth), 201)
    assert hook["secret"].startswith("whsec_") and hook["active"], hook
    return hook


def _attempts(http: httpx.Client, auth: Auth, hook_id: str) -> list[dict]:
    """The endpoint's delivery log, newest attempt first."""
    return _ok(http.get(f"{HOOKS}/{hook_id}/deliveries", headers=auth))["items"]


def _verified(secret: str, post: Any) -> dict:
    """The event a POST carries, once `standardwebhooks` (the specification's reference
    library, not Ferry's code) has checked its signature over the exact bytes received."""
    return Webhook(secret).verify(post.body, post.headers)


# -- 1. one event, every channel, exactly once -----------------------------------------------------


def test_an_answered_request_reaches_every_channel_exactly_once(deployment: Deployment) -> None:
    """In-app, email (asked for in the user's preferences) and a signed webhook: one each,
    however often notify and the senders run."""
    d = deployment
    mail, hooks = _channels(d).mail, _channels(d).hooks
    tag = secrets.token_hex(4)
    address, path = f"alice+{tag}@e2e.example", f"/ferry/{tag}"
    with d.http() as http:
        alice = d.login(http, "alice")
        _caught_up(d)
        _use_email(http, alice, address)
        hook = _add_webhook(http, alice, hooks.url(path))
        try:
            rid = _answered(d, http, alice)
            for _ in range(2):  # a second round finds nothing more to send
                ran = _beat(d, "notify", "send_emails", "send_webhooks")
                assert ran["send_emails"]["configured"] is True, ran

            note = _completed(http, alice, rid)
            event_id = note["event_id"]
            assert note["title"].startswith(f"Request {rid[:8]} answered"), note

            (email,) = mail.to(address)
            msg = email.message
            assert msg.get_all("X-Ferry-Event-Id") == [event_id]
            assert msg["Message-ID"] == f"<{event_id}@e2e.example>"
            assert msg["Subject"] == f"[Ferry info] {note['title']}", msg["Subject"]
            assert email.mail_from == "ferry@e2e.example" and msg["From"] == EMAIL_FROM
            assert note["title"] in email.part("plain") and rid[:8] in email.part("html")
            assert _deliveries(d, "email", address) == [(event_id, "sent", 1, None)]

            (post,) = [p for p in hooks.received if p.path == path]
            assert post.headers["webhook-id"] == event_id
            event = _verified(hook["secret"], post)
            assert (event["type"], event["data"]["id"]) == (COMPLETED, event_id), event
            assert event["data"]["network"] == "request" and event["data"]["resolved"] is False
            assert event["data"]["title"] == note["title"]
            assert event["data"]["data"]["request_id"] == rid, event
            (attempt,) = _attempts(http, alice, hook["id"])
            assert (attempt["event_id"], attempt["attempt"]) == (event_id, 1), attempt
            assert (attempt["status"], attempt["response_code"]) == ("sent", 204), attempt
        finally:
            _ok(http.delete(f"{HOOKS}/{hook['id']}", headers=alice), 204)


# -- 2. a refused batch: an alert that escalates until acknowledged --------------------------------


def _tampered_copy(d: Deployment, genuine: Path) -> Path:
    """A copy of a results batch already imported with one answer changed (DONE made
    FAILED) and its sidecar made to match (what an attacker, or a faulty copy that rewrote
    the checksum, would bring), on media of its own: the importer must refuse it."""
    data = genuine.read_bytes()
    changed = data.replace(b'"status":"DONE"', b'"status":"FAILED"', 1)
    assert changed != data, data[:500]
    media = d.base / "media" / f"tampered-{secrets.token_hex(4)}"
    media.mkdir(parents=True)
    copy = media / genuine.name
    copy.write_bytes(changed)
    (media / f"{genuine.name}.sha256").write_bytes(sidecar_text(file_digest(copy), genuine.name))
    return copy


def _alert(http: httpx.Client, root: Auth, title: str) -> dict:
    (alert,) = [a for a in _ok(http.get(ALERTS, headers=root))["items"] if a["title"] == title]
    return alert


def _steps(alert: dict) -> list[tuple[str, str | None]]:
    return [(h["what"], h.get("level")) for h in alert["history"]]


def _escalation_minutes(http: httpx.Client, root: Auth) -> int:
    items = _ok(http.get("/api/v1/admin/settings", headers=root))["items"]
    (item,) = [i for i in items if i["key"] == "notifications.escalation_minutes"]
    return item["value"]


def _move_alert_back(d: Deployment, alert_id: int, minutes: int) -> None:
    """Time travel: the alert's last step (opened, escalated) was `minutes` minutes earlier."""
    with _database(d) as db:
        moved = db.execute(
            text(
                "UPDATE alerts SET escalated_at = escalated_at - make_interval(mins => :m)"
                " WHERE id = :id"
            ),
            {"m": minutes, "id": alert_id},
        ).rowcount
    assert moved == 1, alert_id


def test_a_quarantined_batch_alerts_and_escalates_until_acknowledged(
    deployment: Deployment,
) -> None:
    """A tampered copy of a results batch is quarantined on arrival; the admins' alert goes
    to the next level once the escalation interval has passed without acknowledgement, and
    no further once acknowledged (the next level would have emailed the on-call address)."""
    d = deployment
    rq = d.request
    with d.http() as http:
        bob, root = d.login(http, "bob"), d.login(http, "root")
        rid = _submit(http, bob)
        (batch,) = _across(d)["batches"]
        genuine = d.response.outbox / "carried" / Path(batch["file"]).name  # as carried
        assert genuine.is_file(), genuine
        name = genuine.name
        title = f"Batch quarantined: {name}"
        try:
            d.carry(_tampered_copy(d, genuine).parent, rq.inbox)
            refused = d.run_task("request", "request.import_results")["files"]
            assert [(f["file"], f["status"]) for f in refused] == [(name, "quarantined")], refused
            # what the genuine batch brought stands
            assert _ok(http.get(f"/api/v1/requests/{rid}", headers=bob))["status"] == "COMPLETED"

            _beat(d, "notify")  # opens the alert; the same run escalates nothing yet
            alert = _alert(http, root, title)
            assert (alert["state"], alert["level"], alert["kind"]) == (
                "open",
                0,
                "batch.quarantined",
            ), alert
            assert _steps(alert) == [("opened", "operators")], alert
            assert "record digest mismatch" in alert["body"], alert  # the reasons
            (told,) = _notifications(http, root, lambda n: n["title"] == title)
            assert told["severity"] == "error" and told["data"]["file"] == name, told

            # The interval (the governed notifications.escalation_minutes) passes: moved,
            # not waited for. notify escalates; its next run fans the new event out.
            minutes = _escalation_minutes(http, root)
            _move_alert_back(d, alert["id"], minutes + 1)
            _beat(d, "notify", "notify")
            alert = _alert(http, root, title)
            assert (alert["state"], alert["level"]) == ("open", 1), alert
            assert _steps(alert) == [("opened", "operators"), ("escalated", "admins")], alert
            (escalated,) = _notifications(
                http, root, lambda n: n["data"].get("alert_id") == alert["id"]
            )
            assert escalated["title"] == f"[escalated to admins] {title}", escalated
            assert escalated["data"]["escalation"] == 1, escalated

            me = _ok(http.get("/api/v1/users/me", headers=root))
            acked = _ok(http.post(f"{ALERTS}/{alert['id']}/ack", headers=root))
            assert (acked["state"], acked["acknowledged_by"]) == ("acknowledged", me["id"])

            # Another interval passes: acknowledged, it stays where it is.
            _move_alert_back(d, alert["id"], minutes + 1)
            _beat(d, "notify", "notify", "send_emails")
            alert = _alert(http, root, title)
            assert (alert["state"], alert["level"]) == ("acknowledged", 1), alert
            assert [what for what, _ in _steps(alert)] == ["opened", "escalated", "acknowledged"]
            about = _notifications(http, root, lambda n: n["data"].get("alert_id") == alert["id"])
            assert [n["title"] for n in about] == [escalated["title"]], about
            oncall = _channels(d).mail.to(ONCALL_EMAIL)
            assert not [m for m in oncall if name in m.message["Subject"]], oncall

            # The operator deals with the file: it leaves the quarantine.
            entries = _ok(http.get("/api/v1/operator/quarantine", headers=root))
            (entry,) = [e for e in entries if e["file"] == name]
            held = entry["quarantined_as"]
            _ok(http.delete(f"/api/v1/operator/quarantine/{held}", headers=root))
            assert not list(rq.quarantine.glob(f"{held}*"))
        finally:
            for left in rq.quarantine.glob(f"{name}*"):  # leave none for the other tests
                left.unlink()


# -- 3. the live stream ----------------------------------------------------------------------------


class EventStream:
    """A user's notification stream (Server-Sent Events), read in a thread until `wanted`
    holds for a notification it carried (or `close()`)."""

    def __init__(self, url: str, auth: Auth, wanted: Callable[[dict], bool]) -> None:
        self.url, self.auth, self.wanted = url, auth, wanted
        self.status: int | None = None
        self.content_type = ""
        self.events: list[tuple[int, dict]] = []  # (the `id:` field, the data)
        self.error: BaseException | None = None
        self.connected, self.finished = threading.Event(), threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="sse", daemon=True)

    def __enter__(self) -> EventStream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # seen at the next line at the latest (a keep-alive every 15 s)

    def _read(self) -> None:
        timeout = httpx.Timeout(10.0, read=STREAM_TIMEOUT_S)
        try:
            with (
                httpx.Client(base_url=self.url, timeout=timeout) as client,
                client.stream("GET", STREAM, headers=self.auth) as reply,
            ):
                self.status = reply.status_code
                self.content_type = reply.headers.get("content-type", "")
                fields: dict[str, str] = {}
                for line in reply.iter_lines():
                    if self._stop.is_set():
                        return
                    if line == ": connected":
                        self.connected.set()
                    elif line == "":  # the end of one event
                        if fields.get("event") == "notification":
                            data = orjson.loads(fields["data"])
                            self.events.append((int(fields["id"]), data))
                            if self.wanted(data):
                                return
                        fields = {}
                    elif not line.startswith(":"):
                        key, _, value = line.partition(":")
                        fields[key] = value.removeprefix(" ")
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.finished.set()

    def check(self) -> None:
        if self.finished.is_set() and not self.wanted_seen():
            raise Abort(f"the stream ended ({self.status}, {self.error!r}): {self.events}")

    def wanted_seen(self) -> list[tuple[int, dict]]:
        return [(i, n) for i, n in self.events if self.wanted(n)]


def test_a_connected_stream_receives_the_notification_as_it_is_made(
    deployment: Deployment,
) -> None:
    d = deployment
    with d.http() as http:
        bob = d.login(http, "bob")
        rid = _submit(http, bob)

        def about_it(n: dict) -> bool:
            return n["kind"] == COMPLETED and n["data"].get("request_id") == rid

        with EventStream(d.api_url, bob, about_it) as stream:

            def connected() -> bool:
                stream.check()
                return stream.connected.is_set()

            wait_until(connected, timeout=STREAM_TIMEOUT_S, what="the stream to connect")
            assert stream.status == 200, stream.status
            assert stream.content_type.startswith("text/event-stream"), stream.content_type

            # While it is connected: the answer crosses the gap, notify makes the notification.
            _across(d)
            _beat(d, "notify")

            def arrived() -> list:
                stream.check()
                return stream.wanted_seen()

            ((sse_id, got),) = wait_until(
                arrived,
                timeout=STREAM_TIMEOUT_S,
                what=f"the stream to bring the notification of request {rid}",
            )
        assert stream.error is None, stream.error
        listed = _completed(http, bob, rid)
        assert sse_id == got["id"] == listed["id"]
        assert got == listed, (got, listed)
        assert got["read_at"] is None and got["title"].startswith(f"Request {rid[:8]} answered")


# -- 4. a webhook receiver that is down ------------------------------------------------------------


def test_a_webhook_receiver_down_for_a_while_gets_the_delivery_on_a_retry(
    deployment: Deployment,
) -> None:
    d = deployment
    hooks = _channels(d).hooks
    path = f"/ferry/{secrets.token_hex(4)}"
    with d.http() as http:
        carol = d.login(http, "carol")
        _caught_up(d)
        hook = _add_webhook(http, carol, hooks.url(path))
        try:
            hooks.stop()  # its port is closed: connections are refused
            try:
                rid = _answered(d, http, carol)
                _beat(d, "notify")
                failed = _beat(d, "send_webhooks")["send_webhooks"]
                assert failed["failed"] >= 1, failed
                event_id = _completed(http, carol, rid)["event_id"]
                (first,) = _attempts(http, carol, hook["id"])
                assert (first["event_id"], first["attempt"]) == (event_id, 1), first
                assert (first["status"], first["response_code"]) == ("failed", None), first
                assert first["error"].startswith("ConnectError"), first
                endpoint = _ok(http.get(f"{HOOKS}/{hook['id']}", headers=carol))
                assert (endpoint["active"], endpoint["consecutive_failures"]) == (True, 1)
            finally:
                hooks.start()  # the same port again

            _make_due(d, "webhook", hook["id"])  # the backoff has passed (moved, not waited)
            for _ in range(2):  # the second run finds nothing more to send
                _beat(d, "send_webhooks")

            (post,) = [p for p in hooks.received if p.path == path]
            assert post.headers["webhook-id"] == event_id
            event = _verified(hook["secret"], post)
            assert event["data"]["id"] == event_id and event["data"]["data"]["request_id"] == rid
            log = _attempts(http, carol, hook["id"])
            assert [(a["attempt"], a["status"], a["response_code"]) for a in log] == [
                (2, "sent", 204),
                (1, "failed", None),
            ], log
            assert {a["event_id"] for a in log} == {event_id}
            assert _deliveries(d, "webhook", hook["id"]) == [(event_id, "sent", 2, None)]
            endpoint = _ok(http.get(f"{HOOKS}/{hook['id']}", headers=carol))
            assert (endpoint["active"], endpoint["consecutive_failures"]) == (True, 0)
        finally:
            _ok(http.delete(f"{HOOKS}/{hook['id']}", headers=carol), 204)


# -- 5. a mail server that is down -----------------------------------------------------------------


def test_with_the_mail_server_down_requests_complete_and_the_email_follows(
    deployment: Deployment,
) -> None:
    d = deployment
    mail = _channels(d).mail
    address = f"alice+{secrets.token_hex(4)}@e2e.example"
    with d.http() as http:
        alice = d.login(http, "alice")
        _caught_up(d)
        _use_email(http, alice, address)
        mail.stop()  # its port is closed: connections are refused
        try:
            rid = _answered(d, http, alice)
            body = _ok(http.get(f"/api/v1/requests/{rid}/response", headers=alice))
            assert body["status"] == "DONE" and body["hits"], body
            ran = _beat(d, "notify", "send_emails")["send_emails"]
            assert ran["configured"] is True and ran["failed"] >= 1, ran
            assert any("Connection refused" in e for e in ran["errors"]), ran
            event_id = _completed(http, alice, rid)["event_id"]
            ((event, status, attempts, error),) = _deliveries(d, "email", address)
            assert (event, status, attempts) == (event_id, "failed", 1), error
            assert f"127.0.0.1:{mail.port}" in error, error
            assert not mail.to(address)
            # the answer is as readable as before
            assert _ok(http.get(f"/api/v1/requests/{rid}/response", headers=alice)) == body
        finally:
            mail.start()  # the same port again

        _make_due(d, "email", address)  # the backoff has passed (moved, not waited)
        for _ in range(2):  # the second run finds nothing more to send
            _beat(d, "send_emails")
        (email,) = mail.to(address)
        assert email.message.get_all("X-Ferry-Event-Id") == [event_id]
        assert rid[:8] in email.message["Subject"], email.message["Subject"]
        assert _deliveries(d, "email", address) == [(event_id, "sent", 2, None)]

"""The email channel on the request network, for real: PostgreSQL, the import that writes the
events, the fan-out, and an SMTP server (aiosmtpd) in the test process whose inbox is read.

An email reaches its recipient once (text and HTML, a Message-ID of its event that a resend
keeps); preferences and addresses decide who gets one; many at once make a digest; a server
that is down (a closed port) fails the delivery, never its cause, and it goes out once the
server is back; retries end ("dead") after the maximum or at a permanent refusal; concurrent
runs never send one delivery twice; STARTTLS / TLS with a login work, and the password
appears in no error and no log line."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from request_api_helpers import closed_port, make_settings
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from request_network import jobs
from request_network import models as rq
from request_network.models import NotificationDelivery, NotificationEvent, User
from request_network.services import notifications
from request_network.services.health import probes
from response_network import models as rs
from shared import email_channel
from shared.db import get_engine, reading, transaction, utcnow
from tests.conftest import network_settings
from tests.e2e.e2e_support import free_port, wait_until
from tests.smtp_support import SmtpServer, self_signed
from tests.transfer.protocol.test_bulk_exchange import Gap

pytestmark = [pytest.mark.postgres]
SENDER = "Ferry <ferry@example.org>"
PASSWORD = "s3cret-smtp-pass-Zq9"  # noqa: S105 - the test's own server


def email_settings(api_db: str, port: int, **overrides):
    values = dict(
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        smtp_timeout_s=5.0,
        email_from=SENDER,
    )
    return make_settings(api_db, **(values | overrides))


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port()).start()
    yield server
    server.stop()


def deliveries(api_db: str) -> list[NotificationDelivery]:
    with transaction(api_db) as session:
        rows = session.scalars(select(NotificationDelivery).order_by(NotificationDelivery.id))
        return list(rows)


def dispatch(api_db: str) -> dict[str, int]:
    with transaction(api_db) as session:
        return notifications.dispatch(session=session)


def make_due(api_db: str) -> None:
    """Time passes: every email delivery not finished is due now (what the backoff waits)."""
    with transaction(api_db) as session:
        session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.status.in_(("pending", "failed")))
            .values(next_attempt_at=utcnow() - timedelta(seconds=1))
        )


def set_email(api_db: str, user_id: str, address: str | None, prefs: dict | None = None) -> None:
    with transaction(api_db) as session:
        values: dict = {"email": address}
        if prefs is not None:
            values["notification_preferences"] = prefs
        session.execute(update(User).where(User.id == user_id).values(**values))


# -- the cause: an import that answers a request FAILED ---------------------------------------


def _empty_response_db(url: str) -> None:
    with get_engine(url).begin() as conn:
        for table in reversed(rs.Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def gap(api_db, pg_urls, tmp_path, keys) -> Iterator[Gap]:
    """Both networks on their PostgreSQL databases with committing sessions (the sender reads
    in transactions of its own); both emptied before and after."""
    _empty_response_db(pg_urls["response"])
    settings = {
        net: network_settings(net, tmp_path, keys, database_url=pg_urls[net])
        for net in ("request", "response")
    }
    sessions = [Session(get_engine(pg_urls[net]), expire_on_commit=False) for net in settings]
    yield Gap(settings, *sessions)
    for session in sessions:
        session.close()
    _empty_response_db(pg_urls["response"])


def a_request_fails(gap: Gap, api_db: str) -> str:
    """alice (with an address) has one request answered FAILED and one DONE, through the
    real export and import; the failed one's id."""
    done, bad = gap.seed(2)
    set_email(api_db, "u-alice", "alice@example.org")
    gap.export_requests()
    gap.import_requests()
    gap.add_results([done], hits=2)
    gap.add_results([bad], failed=frozenset([bad]))
    gap.export_results()
    outcomes = gap.import_results()
    assert {o.status for o in outcomes} == {"imported"}
    return bad


def failed_event(api_db: str) -> str:
    with transaction(api_db) as session:
        return session.scalars(
            select(NotificationEvent.id).where(NotificationEvent.kind == "request.failed")
        ).one()


def request_status(api_db: str, request_id: str) -> str:
    with transaction(api_db) as session:
        return session.get(rq.Request, request_id).status


def test_a_failed_request_reaches_its_owner_once(gap, api_db, smtp):
    bad = a_request_fails(gap, api_db)
    event_id = failed_event(api_db)
    assert dispatch(api_db)["deliveries"] == 1  # request.completed is in-app only by default
    settings = email_settings(api_db, smtp.port)

    report = jobs.send_emails(settings)
    assert (report["sent"], report["messages"], report["failed"]) == (1, 1, 0)
    assert jobs.send_emails(settings)["claimed"] == 0  # sent: never again
    (arrived,) = smtp.received
    assert arrived.rcpt_tos == ["alice@example.org"]
    assert arrived.mail_from == "ferry@example.org"
    msg = arrived.message
    assert msg["Message-ID"] == f"<{event_id}@example.org>"
    assert msg.get_all("X-Ferry-Event-Id") == [event_id]
    assert msg["Subject"] == f"[Ferry warning] Request {bad[:8]} failed"
    assert msg["To"] == "alice@example.org" and msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    text, html = arrived.part("plain"), arrived.part("html")
    for part in (text, html):
        assert f"Request {bad[:8]} failed" in part and "request.failed" in part
        assert "boom" in part  # the body: the error the response network gave
        assert "warning" in part and event_id in part
    assert "<h2" in html and "http" not in text  # no links
    (row,) = deliveries(api_db)
    assert (row.status, row.attempts, row.last_error) == ("sent", 1, None)
    assert row.sent_at is not None and row.latency_ms >= 0

    # At least once: a delivery sent again (a crash before its outcome was recorded) carries
    # the same Message-ID, so the recipient's client shows it once.
    with transaction(api_db) as session:
        session.execute(update(NotificationDelivery).values(status="pending"))
    make_due(api_db)
    assert jobs.send_emails(settings)["sent"] == 1
    first, again = smtp.received
    assert again.message["Message-ID"] == first.message["Message-ID"]


def test_smtp_down_fails_the_delivery_never_the_cause_and_it_goes_out_later(gap, api_db):
    port = closed_port()
    settings = email_settings(api_db, port)
    bad = a_request_fails(gap, api_db)
    dispatch(api_db)
    before = utcnow()

    report = jobs.send_emails(settings)  # no server on the port: refused, not raised
    assert (report["sent"], report["failed"], report["dead"]) == (0, 1, 0)
    (row,) = deliveries(api_db)
    assert (row.status, row.attempts) == ("failed", 1)
    assert row.next_attempt_at > before
    assert "ConnectionRefusedError" in row.last_error and f"127.0.0.1:{port}" in row.last_error
    # The cause stands: the import committed, the request is answered, the event is there.
    assert request_status(api_db, bad) == rq.FAILED
    assert failed_event(api_db)

    server = SmtpServer(port).start()
    try:
        assert jobs.send_emails(settings)["claimed"] == 0  # waits out its backoff
        assert server.received == []
        make_due(api_db)
        assert jobs.send_emails(settings)["sent"] == 1
        (arrived,) = server.received
        assert arrived.message.get_all("X-Ferry-Event-Id") == [row.event_id]
    finally:
        server.stop()
    (row,) = deliveries(api_db)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)


# -- who gets an email ------------------------------------------------------------------------


@pytest.fixture
def people(seed) -> dict[str, str]:
    seed.profile_type()
    return {name: seed.user(name) for name in ("alice", "bob", "carol", "dave")}


def emit(api_db: str, kind: str, user_ids, title: str = "t") -> None:
    with transaction(api_db) as session:
        items = [{"user_id": u, "title": f"{title} {n}"} for n, u in enumerate(user_ids)]
        notifications.emit_for_users(session, kind, items)


def test_preferences_and_addresses_choose_who_gets_an_email(api_db, people, smtp):
    set_email(api_db, people["alice"], "alice@example.org")  # the defaults: failed by email
    # bob has no address
    set_email(api_db, people["carol"], "carol@example.org", {"channels": {"request.failed": []}})
    dave = {"channels": {"request.completed": ["email"], "request.failed": []}}
    set_email(api_db, people["dave"], "dave@example.org", dave)
    everyone = list(people.values())
    emit(api_db, "request.failed", everyone, "failed")
    emit(api_db, "request.completed", everyone, "completed")
    assert dispatch(api_db)["notifications"] == 8  # in-app: everyone, both

    assert jobs.send_emails(email_settings(api_db, smtp.port))["sent"] == 2
    got = sorted((a.rcpt_tos[0], a.message["Subject"]) for a in smtp.received)
    assert got == [
        ("alice@example.org", "[Ferry warning] failed 0"),
        ("dave@example.org", "[Ferry info] completed 3"),
    ]


def test_many_due_for_one_address_go_as_one_digest(api_db, people, smtp):
    set_email(api_db, people["alice"], "alice@example.org")
    set_email(api_db, people["bob"], "bob@example.org")
    emit(api_db, "request.failed", [people["alice"]] * 7, "<b>failed</b> & gone")
    emit(api_db, "request.failed", [people["bob"]] * 5, "bob's")
    dispatch(api_db)

    report = jobs.send_emails(email_settings(api_db, smtp.port, email_digest_threshold=5))
    assert (report["sent"], report["messages"], report["digests"]) == (12, 6, 1)
    to_alice = [a for a in smtp.received if a.rcpt_tos == ["alice@example.org"]]
    to_bob = [a for a in smtp.received if a.rcpt_tos == ["bob@example.org"]]
    assert len(to_bob) == 5  # at the threshold: one email each
    (digest,) = to_alice
    with transaction(api_db) as session:
        alices = session.scalars(
            select(NotificationEvent.id).where(NotificationEvent.user_id == people["alice"])
        ).all()
    assert sorted(digest.message.get_all("X-Ferry-Event-Id")) == sorted(alices)
    assert digest.message["Subject"] == "[Ferry] 7 notifications (request network)"
    assert digest.message["Message-ID"].startswith("<digest.")
    text, html = digest.part("plain"), digest.part("html")
    assert all(f"<b>failed</b> & gone {n}" in text for n in range(7))  # text is text
    assert "&lt;b&gt;failed&lt;/b&gt; &amp; gone 6" in html and "<b>failed" not in html
    assert {d.status for d in deliveries(api_db)} == {"sent"}


# -- failures that end --------------------------------------------------------------------------


def test_retries_end_dead_after_the_maximum(api_db, people):
    set_email(api_db, people["alice"], "alice@example.org")
    emit(api_db, "request.failed", [people["alice"]])
    dispatch(api_db)
    settings = email_settings(api_db, closed_port(), email_max_attempts=3)
    for attempt in (1, 2, 3):
        report = jobs.send_emails(settings)
        (row,) = deliveries(api_db)
        assert row.attempts == attempt
        assert row.status == ("dead" if attempt == 3 else "failed")
        assert (report["failed"], report["dead"]) == ((0, 1) if attempt == 3 else (1, 0))
        make_due(api_db)
    assert jobs.send_emails(settings)["claimed"] == 0  # dead: never tried again


def test_an_address_refused_for_good_is_dead_at_once_and_others_still_go(api_db, people, smtp):
    set_email(api_db, people["alice"], "alice@example.org")
    set_email(api_db, people["bob"], "nobody@example.org")
    smtp.handler.refuse.add("nobody@example.org")
    emit(api_db, "request.failed", [people["alice"], people["bob"]])
    dispatch(api_db)
    report = jobs.send_emails(email_settings(api_db, smtp.port))
    assert (report["sent"], report["dead"]) == (1, 1)
    rows = {r.target: r for r in deliveries(api_db)}
    assert rows["nobody@example.org"].status == "dead"
    assert rows["nobody@example.org"].attempts == 1
    assert "550 5.1.1 no such mailbox here" in rows["nobody@example.org"].last_error
    assert rows["alice@example.org"].status == "sent"
    assert [a.rcpt_tos for a in smtp.received] == [["alice@example.org"]]


# -- concurrency, configuration, security -------------------------------------------------------


def test_a_second_run_meanwhile_takes_nothing_the_first_has_claimed(api_db, people, smtp):
    """The first run holds its deliveries (leased) while it talks to the server, with no
    transaction open; a second run at that moment finds nothing due."""
    set_email(api_db, people["alice"], "alice@example.org")
    emit(api_db, "request.failed", [people["alice"]])
    dispatch(api_db)
    settings = email_settings(api_db, smtp.port)
    smtp.handler.hold = threading.Event()
    first: dict = {}
    runner = threading.Thread(target=lambda: first.update(jobs.send_emails(settings)))
    runner.start()
    try:
        wait_until(smtp.handler.in_data.is_set, timeout=30, what="the first run's DATA")
        with reading(api_db) as session:  # no transaction of the first run is open
            busy = session.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%'"
                )
            ).scalar_one()
        assert busy == 0
        assert jobs.send_emails(settings)["claimed"] == 0
    finally:
        smtp.handler.hold.set()
        runner.join(timeout=60)
    assert first["sent"] == 1 and len(smtp.received) == 1


def test_without_an_smtp_server_configured_emails_wait_and_say_so(api_db, people, caplog):
    set_email(api_db, people["alice"], "alice@example.org")
    emit(api_db, "request.failed", [people["alice"]])
    dispatch(api_db)
    settings = make_settings(api_db)
    assert not settings.email_configured
    email_channel._unconfigured_said.discard(settings.network_id)
    with caplog.at_level(logging.WARNING, logger="ferry.email"):
        report = jobs.send_emails(settings)
    assert (report["configured"], report["waiting"], report["claimed"]) == (False, 1, 0)
    assert "email is not configured" in caplog.text
    (row,) = deliveries(api_db)
    assert (row.status, row.attempts) == ("pending", 0)
    (probe,) = [p for p in probes(settings) if p.name == "email"]
    finding = probe.check()
    assert finding.status == "ok" and finding.reason == "not configured (smtp_host): 1 emails wait"
    assert finding.details["configured"] is False and finding.details["pending"] == 1


@pytest.mark.parametrize("security", ["starttls", "tls"])
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # it is TLS
def test_tls_with_a_login_and_the_password_appears_nowhere(
    api_db, people, tmp_path, caplog, security
):
    set_email(api_db, people["alice"], "alice@example.org")
    emit(api_db, "request.failed", [people["alice"]] * 2)
    dispatch(api_db)
    tls = self_signed(tmp_path / "tls")
    server = SmtpServer(free_port(), security=security, tls=tls, login=("ferry", PASSWORD))
    server.start()
    common = dict(smtp_security=security, smtp_ca_file=tls.cert, smtp_username="ferry")
    try:
        wrong = email_settings(api_db, server.port, smtp_password="not-" + PASSWORD, **common)
        with caplog.at_level(logging.DEBUG, logger="ferry"):
            report = jobs.send_emails(wrong)
        assert (report["failed"], report["messages"]) == (2, 2)
        rows = deliveries(api_db)
        assert {r.status for r in rows} == {"failed"}
        assert all("SMTPAuthenticationError: 535" in r.last_error for r in rows)
        for said in (caplog.text, str(report), *(r.last_error for r in rows)):
            assert PASSWORD not in said and "not-" + PASSWORD not in said
        assert "SMTPAuthenticationError" in caplog.text  # the failure is logged, masked
        assert server.received == []

        make_due(api_db)
        right = email_settings(api_db, server.port, smtp_password=PASSWORD, **common)
        assert jobs.send_emails(right)["sent"] == 2
        assert [(a.tls, a.login) for a in server.received] == [(True, "ferry")] * 2
    finally:
        server.stop()


def test_an_untrusted_certificate_is_a_failure_not_a_plain_fallback(api_db, people, tmp_path):
    set_email(api_db, people["alice"], "alice@example.org")
    emit(api_db, "request.failed", [people["alice"]])
    dispatch(api_db)
    server = SmtpServer(free_port(), security="starttls", tls=self_signed(tmp_path / "tls"))
    server.start()
    try:
        report = jobs.send_emails(email_settings(api_db, server.port, smtp_security="starttls"))
    finally:
        server.stop()
    assert report["failed"] == 1 and server.received == []
    (row,) = deliveries(api_db)
    assert "CERTIFICATE_VERIFY_FAILED" in row.last_error

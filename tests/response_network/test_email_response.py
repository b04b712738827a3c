"""The email channel on the response network (real PostgreSQL, a real SMTP server in the
test process): a quarantined batch reaches the operators who have an address, by email, once;
the `email` health component says what waits and what fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from response_api_helpers import add_user, empty_response_db, make_settings
from sqlalchemy import select, update

from response_network import jobs
from response_network.models import NotificationDelivery, NotificationEvent, User
from response_network.services import notifications
from response_network.services.health import probes
from shared.db import transaction, utcnow
from tests.e2e.e2e_support import free_port
from tests.request_network.request_api_helpers import closed_port
from tests.smtp_support import SmtpServer

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def url(pg_urls) -> Iterator[str]:
    url = pg_urls["response"]
    empty_response_db(url)
    yield url
    empty_response_db(url)


def settings_for(url: str, port: int, **more):
    return make_settings(
        url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        email_from="ferry@response.example",
        **more,
    )


def email_probe(settings):
    (probe,) = [p for p in probes(settings) if p.name == "email"]
    return probe.check()


def test_a_quarantined_batch_reaches_the_operators_by_email(url):
    roles = {"olga": "operator", "root": "admin", "uma": "user"}
    ids = {name: add_user(url, name, role=role) for name, role in roles.items()}
    with transaction(url) as session:
        for name in ("olga", "uma"):
            session.execute(
                update(User).where(User.id == ids[name]).values(email=f"{name}@example.org")
            )
        notifications.emit(session, "batch.quarantined", title="Batch quarantined: x.jsonl")
    with transaction(url) as session:
        assert notifications.dispatch(session=session)["deliveries"] == 1  # olga; root: none
        event_id = session.scalars(select(NotificationEvent.id)).one()

    # The server is down first: the delivery fails, health says so.
    down = settings_for(url, closed_port())
    assert jobs.send_emails(down)["failed"] == 1
    finding = email_probe(down)
    assert finding.status == "degraded" and finding.details["failing"] == 1
    assert "ConnectionRefusedError" in finding.reason

    server = SmtpServer(free_port()).start()
    try:
        with transaction(url) as session:
            session.execute(update(NotificationDelivery).values(next_attempt_at=utcnow()))
        up = settings_for(url, server.port)
        assert jobs.send_emails(up)["sent"] == 1
    finally:
        server.stop()
    (arrived,) = server.received
    assert arrived.rcpt_tos == ["olga@example.org"]
    assert arrived.message["Message-ID"] == f"<{event_id}@response.example>"
    assert arrived.message["Subject"] == "[Ferry error] Batch quarantined: x.jsonl"
    assert "response network" in arrived.part("plain")
    assert email_probe(up).status == "ok"

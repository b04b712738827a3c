"""The email channel's pure parts: messages (Message-ID from the event, headers that cannot
be injected, HTML escaped), the retry schedule, the password never in an error, and the
settings that refuse what cannot work safely."""

from __future__ import annotations

import base64
import smtplib
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr, ValidationError

from request_network.settings import RequestSettings
from shared.email_channel import backoff_seconds
from shared.email_messages import (
    EventView,
    digest_email,
    digest_message_id,
    domain_of,
    event_email,
    message_id,
)
from shared.email_smtp import describe, scrub

AT = datetime(2026, 12, 5, 14, 31, 2, tzinfo=UTC)


def settings(**values) -> RequestSettings:
    return RequestSettings(mode="demo", **values)


def event(**more) -> EventView:
    values = dict(
        id="0c1f6c36-2a4e-4d8e-9a51-7f0c1f6c362a",
        at=AT,
        kind="request.failed",
        severity="warning",
        title="Request 5b1e0c2d failed",
        body="boom",
        resolved=False,
    )
    return EventView(**(values | more))


def test_the_message_id_is_the_events_and_stays_the_same():
    one = event_email(
        event(), to="a@example.org", sender="Ferry <f@ex.org>", network="request", now=AT
    )
    two = event_email(
        event(), to="a@example.org", sender="Ferry <f@ex.org>", network="request", now=AT
    )
    assert one["Message-ID"] == two["Message-ID"] == f"<{event().id}@ex.org>"
    assert message_id("x", "no address") == "<x@ferry.invalid>"
    assert domain_of("f@bad_domain!") == "ferry.invalid"
    ids = ["b", "a", "c"]
    assert digest_message_id(ids, "A@x.org", "f@ex.org") == digest_message_id(
        sorted(ids), "a@x.org", "f@ex.org"
    )
    assert digest_message_id(ids, "a@x.org", "f@ex.org") != digest_message_id(
        ids[:2], "a@x.org", "f@ex.org"
    )


def test_a_title_cannot_add_headers_and_html_is_escaped():
    sly = event(title="hi\r\nBcc: everyone@example.org", body="<script>alert(1)</script>")
    msg = event_email(sly, to="a@example.org", sender="f@ex.org", network="request", now=AT)
    assert msg["Bcc"] is None and msg["Subject"] == "[Ferry warning] hi Bcc: everyone@example.org"
    html = msg.get_body(preferencelist=("html",)).get_content()
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert "&lt;script&gt;" in html and "<script>" not in html
    assert "<script>alert(1)</script>" in text
    assert "2026-12-05 14:31:02 UTC" in text


def test_a_digest_lists_its_events_oldest_first():
    later = event(id="e2", at=AT.replace(hour=15), title="second")
    first = event(id="e1", title="first", resolved=True)
    msg = digest_email(
        [later, first], to="a@x.org", sender="f@ex.org", network="response", threshold=5, now=AT
    )
    assert msg.get_all("X-Ferry-Event-Id") == ["e1", "e2"]
    text = msg.get_body(preferencelist=("plain",)).get_content()
    assert text.index("1. first") < text.index("2. second") and "resolved" in text


def test_the_wait_doubles_up_to_the_cap_jittered_below_it():
    s = settings(email_backoff_base_s=30, email_backoff_cap_s=600)
    for attempts, ceiling in [(1, 30), (2, 60), (3, 120), (5, 480), (6, 600), (20, 600)]:
        waits = [backoff_seconds(s, attempts) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits), (attempts, waits)


def test_no_form_of_the_password_survives_in_an_error():
    s = settings(
        smtp_host="mail.example.org",
        smtp_username="ferry",
        smtp_password=SecretStr("pa55-word"),
        smtp_security="starttls",
    )
    plain = base64.b64encode(b"\0ferry\0pa55-word").decode()
    login = base64.b64encode(b"pa55-word").decode()
    said = scrub(f"server echoed {plain} and {login} and pa55-word", s)
    assert "pa55" not in said and plain not in said and login not in said
    error = describe(smtplib.SMTPAuthenticationError(535, b"bad pa55-word"), s)
    assert error == "SMTPAuthenticationError: 535 bad *** (SMTP mail.example.org:587)"


def test_the_settings_refuse_what_cannot_work_safely():
    with pytest.raises(ValidationError, match="in clear"):
        RequestSettings(
            mode="production",
            jwt_secret="x" * 40,
            api_key_pepper="p" * 40,
            smtp_host="mail",
            smtp_security="none",
            smtp_username="u",
            smtp_password="p",
        )
    with pytest.raises(ValidationError, match="needs smtp_password"):
        settings(smtp_username="u")
    with pytest.raises(ValidationError, match="email_from"):
        settings(email_from="not an address")
    assert not settings().email_configured and not settings(smtp_host=" ").email_configured
    assert settings(smtp_host="mail").email_configured
    assert "pa55" not in repr(settings(smtp_username="u", smtp_password="pa55"))

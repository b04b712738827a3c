"""The emails of the email channel (`shared.email_channel` sends them): one per event, or one
digest of many, each in plain text and HTML from the Jinja2 templates in
`shared/templates/email/` (HTML autoescaped: an event's title or body is text, never markup).

Every message names its events (`X-Ferry-Event-Id`, one header per event) and has a
`Message-ID` derived from them: the same event sent again (delivery is at least once) has the
same Message-ID, so mail clients show it once. No links: a message says what happened, where
and when, and the recipient reads the rest in Ferry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).parent / "templates" / "email"
FALLBACK_DOMAIN = "ferry.invalid"


@dataclass(frozen=True)
class EventView:
    """What an email tells of one event (read from `notification_events`)."""

    id: str
    at: datetime
    kind: str
    severity: str
    title: str
    body: str
    resolved: bool

    @classmethod
    def of(cls, event: Any) -> EventView:
        return cls(
            id=event.id,
            at=event.at,
            kind=event.kind,
            severity=event.severity,
            title=event.title,
            body=event.body or "",
            resolved=bool(event.resolved),
        )

    def context(self) -> dict[str, Any]:
        return {
            "event_id": self.id,
            "at": self.at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "body": self.body,
            "resolved": self.resolved,
        }


@cache
def _templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def _render(name: str, context: dict[str, Any]) -> tuple[str, str]:
    env = _templates()
    return (
        env.get_template(f"{name}.txt").render(context),
        env.get_template(f"{name}.html").render(context),
    )


def _one_line(text: str, limit: int = 200) -> str:
    """A header value: no line breaks (a header injection), at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def domain_of(address: str) -> str:
    """The domain Message-IDs are made in: the sender's."""
    _, addr = parseaddr(address)
    domain = addr.rpartition("@")[2].strip().strip(".") if "@" in addr else ""
    return domain if domain and all(c.isalnum() or c in ".-" for c in domain) else FALLBACK_DOMAIN


def message_id(event_id: str, sender: str) -> str:
    """The Message-ID of `event_id`'s email: the same whenever it is sent."""
    return f"<{event_id}@{domain_of(sender)}>"


def digest_message_id(event_ids: Sequence[str], to: str, sender: str) -> str:
    """The Message-ID of a digest: the same for the same events to the same address."""
    key = "\n".join([to.lower(), *sorted(event_ids)]).encode()
    return f"<digest.{hashlib.sha256(key).hexdigest()[:32]}@{domain_of(sender)}>"


def _message(
    *, subject: str, sender: str, to: str, msgid: str, event_ids: Sequence[str], now: datetime
) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = _one_line(subject)
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = msgid
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    for event_id in event_ids:
        msg["X-Ferry-Event-Id"] = event_id  # each assignment adds a header
    return msg


def event_email(
    event: EventView, *, to: str, sender: str, network: str, now: datetime
) -> EmailMessage:
    """The email of one event to `to`."""
    text, html = _render("event", {**event.context(), "network": network})
    tag = "resolved" if event.resolved else event.severity
    msg = _message(
        subject=f"[Ferry {tag}] {event.title}",
        sender=sender,
        to=to,
        msgid=message_id(event.id, sender),
        event_ids=[event.id],
        now=now,
    )
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


def digest_email(
    events: Sequence[EventView],
    *,
    to: str,
    sender: str,
    network: str,
    threshold: int,
    now: datetime,
) -> EmailMessage:
    """One email telling of many events to `to` (oldest first)."""
    ordered = sorted(events, key=lambda e: (e.at, e.id))
    context = {
        "events": [e.context() for e in ordered],
        "network": network,
        "threshold": threshold,
    }
    text, html = _render("digest", context)
    ids = [e.id for e in ordered]
    msg = _message(
        subject=f"[Ferry] {len(ordered)} notifications ({network} network)",
        sender=sender,
        to=to,
        msgid=digest_message_id(ids, to, sender),
        event_ids=ids,
        now=now,
    )
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


__all__ = [
    "EventView",
    "digest_email",
    "digest_message_id",
    "domain_of",
    "event_email",
    "message_id",
]

"""The email channel: the `send_emails` task sends the email deliveries that are due.

`shared.notifications.dispatch` writes a `notification_deliveries` row (channel "email",
target an address) for each event a recipient's preferences send by email. `send_due_emails`
delivers them, in three steps, so that no database transaction stays open while it talks to
the SMTP server:

1. **Claim** (one short transaction): the due rows (status pending or failed,
   `next_attempt_at` reached; `FOR UPDATE SKIP LOCKED` on PostgreSQL, so concurrent runs
   take different rows) are leased: their `next_attempt_at` moves past the end of this run,
   so no other run takes them meanwhile; their events are read. Commit.
2. **Send** (no transaction): per address, one email per event, or one digest when more than
   `email_digest_threshold` are due for it at once; one SMTP connection for the run
   (`shared.email_smtp`), each socket operation bounded by `smtp_timeout_s`. Nothing raises
   out of this step: a server that is down or refuses becomes each message's outcome. A run
   that has used half its lease starts no more messages; the rest are released (due again,
   no attempt counted).
3. **Record** (one short transaction): a sent delivery is `sent` (`sent_at`, `latency_ms`
   from its event's time, `attempts` + 1); a failed one counts the attempt, keeps the error
   (never a secret) and is retried after min(cap, base * 2**attempts) seconds (jittered), or
   is `dead` after `email_max_attempts` (at once when the server refuses the address for
   good, a 5xx to RCPT).

At least once: a crash after sending and before recording leaves the rows leased; once the
lease ends they are sent again. The same event always has the same `Message-ID` (and an
`X-Ferry-Event-Id` header), so mail clients show a resent email once.

With no `smtp_host` configured nothing is claimed: email deliveries wait, pending, the run
says `configured: false` and logs it (once per process), and the `email` health component
says so (`email_probe`).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from shared.db import is_postgres, utcnow
from shared.email_messages import EventView, digest_email, event_email
from shared.email_smtp import MAX_ERROR, Relay, Unreachable, describe, refused_for_good
from shared.health import Finding, Probe, degraded, ok
from shared.settings import FerrySettings

log = logging.getLogger("ferry.email")

Transactions = Callable[[], AbstractContextManager[Session]]
DUE_STATUSES = ("pending", "failed")
GONE = "the event no longer exists (trimmed)"
_unconfigured_said: set[str] = set()


@dataclass(frozen=True)
class Claimed:
    """A delivery this run has leased."""

    id: int
    event_id: str
    target: str
    created_at: datetime


@dataclass
class Outcome:
    """What became of one message (one delivery, or the deliveries of a digest)."""

    deliveries: list[Claimed]
    at: datetime
    error: str | None = None
    permanent: bool = False  # no retry: dead at once
    released: bool = False  # not tried: due again, no attempt counted


@dataclass
class Report:
    configured: bool = True
    waiting: int = 0  # due but not sent for want of an SMTP server
    claimed: int = 0
    messages: int = 0
    digests: int = 0
    sent: int = 0
    failed: int = 0
    dead: int = 0
    released: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {**vars(self), "errors": self.errors[:5]}


def lease_seconds(settings: FerrySettings) -> float:
    """How long a run holds what it claimed: it starts no message after half of it."""
    return max(300.0, 20 * settings.smtp_timeout_s)


def backoff_seconds(settings: FerrySettings, attempts: int) -> float:
    """The wait before the next try after `attempts` failed ones (1 for the first failure):
    min(cap, base * 2**(attempts-1)), jittered down by up to a half."""
    ceiling = min(settings.email_backoff_cap_s, settings.email_backoff_base_s * 2 ** (attempts - 1))
    return ceiling / 2 + secrets.SystemRandom().uniform(0, ceiling / 2)


def send_due_emails(
    transactions: Transactions,
    tables: Any,
    settings: FerrySettings,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Send the email deliveries due at `now` (default: the current time); a report of the
    run. `transactions()` opens one unit of work (the caller's, e.g. `shared.db.transaction`
    on the network's database); `tables` is the network's `shared.notifications.Tables`.
    Raises only if the database fails, never because of the SMTP server."""
    start = now or utcnow()
    began = time.monotonic()
    report = Report()

    def clock() -> datetime:
        return start + timedelta(seconds=time.monotonic() - began)

    if not settings.email_configured:
        with transactions() as session:
            report.waiting = _count_due(session, tables.delivery, start)
        report.configured = False
        _say_unconfigured(settings, report.waiting)
        return report.as_dict()
    lease = lease_seconds(settings)
    until = start + timedelta(seconds=lease)
    with transactions() as session:
        claimed, events = _claim(session, tables, start, limit=settings.email_batch, until=until)
    report.claimed = len(claimed)
    if not claimed:
        return report.as_dict()
    outcomes = _send(claimed, events, settings, report, clock=clock, deadline=began + lease / 2)
    with transactions() as session:
        _record(session, tables.delivery, settings, outcomes, events, report)
    if report.failed or report.dead:
        log.warning(
            "email: %d sent, %d failed (retried later), %d dead: %s",
            report.sent,
            report.failed,
            report.dead,
            "; ".join(report.errors[:3]),
        )
    elif report.sent:
        log.info("email: %d sent in %d messages", report.sent, report.messages)
    return report.as_dict()


# -- 1. claim ---------------------------------------------------------------------------------


def _due(delivery: Any, now: datetime) -> list[Any]:
    return [
        delivery.channel == "email",
        delivery.status.in_(DUE_STATUSES),
        delivery.next_attempt_at <= now,
    ]


def _count_due(session: Session, delivery: Any, now: datetime) -> int:
    query = select(func.count()).select_from(delivery).where(*_due(delivery, now))
    return session.execute(query).scalar_one()


def _claim(
    session: Session, tables: Any, now: datetime, *, limit: int, until: datetime
) -> tuple[list[Claimed], dict[str, EventView]]:
    d = tables.delivery
    query = (
        select(d.id, d.event_id, d.target, d.created_at)
        .where(*_due(d, now))
        .order_by(d.next_attempt_at, d.id)
        .limit(limit)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    claimed = [Claimed(*row) for row in session.execute(query)]
    if not claimed:
        return [], {}
    session.execute(
        update(d).where(d.id.in_([c.id for c in claimed])).values(next_attempt_at=until)
    )
    e = tables.event
    wanted = sorted({c.event_id for c in claimed})
    events = {ev.id: EventView.of(ev) for ev in session.scalars(select(e).where(e.id.in_(wanted)))}
    return claimed, events


# -- 2. send ----------------------------------------------------------------------------------


def _messages(
    claimed: Sequence[Claimed],
    events: dict[str, EventView],
    settings: FerrySettings,
    clock: Callable[[], datetime],
) -> Iterator[tuple[list[Claimed], str, EmailMessage | None, str | None]]:
    """(deliveries, address, message, why there is none) in the order to send them."""
    by_address: dict[str, list[Claimed]] = {}
    for c in claimed:
        by_address.setdefault(c.target, []).append(c)
    common = {"sender": settings.email_from, "network": settings.network_id}
    for to, items in by_address.items():
        gone = [c for c in items if c.event_id not in events]
        if gone:
            yield gone, to, None, GONE
        items = [c for c in items if c.event_id in events]
        if len(items) > settings.email_digest_threshold:
            views = [events[c.event_id] for c in items]
            threshold = settings.email_digest_threshold
            yield items, to, *_build(digest_email, views, to, common, clock, threshold=threshold)
            continue
        for c in items:
            yield [c], to, *_build(event_email, events[c.event_id], to, common, clock)


def _build(make: Callable[..., EmailMessage], what: Any, to: str, common: dict, clock, **more):
    try:
        return make(what, to=to, now=clock(), **common, **more), None
    except Exception as exc:  # a template or header that cannot be made: this message fails
        return None, f"the message could not be made: {type(exc).__name__}: {exc}"[:MAX_ERROR]


def _send(
    claimed: Sequence[Claimed],
    events: dict[str, EventView],
    settings: FerrySettings,
    report: Report,
    *,
    clock: Callable[[], datetime],
    deadline: float,
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    relay = Relay(settings)
    unreachable: str | None = None
    try:
        for deliveries, to, msg, problem in _messages(claimed, events, settings, clock):
            if msg is None:  # its event is gone (for good), or it could not be made (retried)
                gone = problem == GONE
                outcomes.append(Outcome(deliveries, clock(), error=problem, permanent=gone))
                continue
            if unreachable is None and time.monotonic() > deadline:
                outcomes.append(Outcome(deliveries, clock(), released=True))
                continue
            report.messages += 1
            report.digests += 1 if len(deliveries) > 1 else 0
            if unreachable is not None:  # no second wait on a server that is not there
                outcomes.append(Outcome(deliveries, clock(), error=unreachable))
                continue
            try:
                relay.send(msg, to)
            except Unreachable as exc:
                unreachable = str(exc)
                outcomes.append(Outcome(deliveries, clock(), error=unreachable))
            except Exception as exc:
                outcomes.append(
                    Outcome(
                        deliveries,
                        clock(),
                        error=describe(exc, settings),
                        permanent=refused_for_good(exc),
                    )
                )
            else:
                outcomes.append(Outcome(deliveries, clock()))
    finally:
        relay.close()
    return outcomes


# -- 3. record --------------------------------------------------------------------------------


def _record(
    session: Session,
    delivery: Any,
    settings: FerrySettings,
    outcomes: Sequence[Outcome],
    events: dict[str, EventView],
    report: Report,
) -> None:
    ids = [c.id for o in outcomes for c in o.deliveries]
    rows = {r.id: r for r in session.scalars(select(delivery).where(delivery.id.in_(ids)))}
    for outcome in outcomes:
        if outcome.error is not None and outcome.error not in report.errors:
            report.errors.append(outcome.error)
        for claimed in outcome.deliveries:
            row = rows.get(claimed.id)
            if row is None or row.status in ("sent", "dead"):
                continue  # removed, or finished by someone else meanwhile
            _apply(row, outcome, settings, events.get(claimed.event_id), report)
    session.flush()


def _apply(
    row: Any, outcome: Outcome, settings: FerrySettings, event: EventView | None, report: Report
) -> None:
    if outcome.released:
        row.next_attempt_at = outcome.at
        report.released += 1
        return
    row.attempts = (row.attempts or 0) + 1
    if outcome.error is None:
        since = event.at if event is not None else row.created_at
        row.status, row.sent_at, row.last_error = "sent", outcome.at, None
        row.latency_ms = max(0, round((outcome.at - since).total_seconds() * 1000))
        report.sent += 1
        return
    row.last_error = outcome.error
    if outcome.permanent or row.attempts >= settings.email_max_attempts:
        row.status = "dead"
        report.dead += 1
        log.warning(
            "email delivery %s (event %s) given up after %d attempts: %s",
            row.id,
            row.event_id,
            row.attempts,
            outcome.error,
        )
        return
    row.status = "failed"
    row.next_attempt_at = outcome.at + timedelta(seconds=backoff_seconds(settings, row.attempts))
    report.failed += 1


# -- not configured, and health ---------------------------------------------------------------


def _say_unconfigured(settings: FerrySettings, waiting: int) -> None:
    network = settings.network_id
    if waiting and network not in _unconfigured_said:
        _unconfigured_said.add(network)
        log.warning(
            "email is not configured (no smtp_host): %d email deliveries wait, pending, "
            "until it is (docs/NOTIFICATIONS.md, Email)",
            waiting,
        )


def email_probe(
    settings: FerrySettings,
    delivery: type,
    reads: Callable[[], AbstractContextManager[Session]],
    *,
    timeout_s: float,
) -> Probe:
    """The `email` health component: `ok` (also when not configured, which it says, with
    what waits); `degraded` while emails fail and are retried; never `down`."""

    def check() -> Finding:
        with reads() as session:
            counts = dict(
                session.execute(
                    select(delivery.status, func.count())
                    .where(delivery.status.in_(("pending", "failed", "dead")))
                    .where(delivery.channel == "email")
                    .group_by(delivery.status)
                ).all()
            )
            last_error = None
            if counts.get("failed"):
                last_error = session.execute(
                    select(delivery.last_error)
                    .where(delivery.channel == "email", delivery.status == "failed")
                    .order_by(delivery.next_attempt_at.desc())
                    .limit(1)
                ).scalar()
        details = {
            "configured": settings.email_configured,
            "pending": counts.get("pending", 0),
            "failing": counts.get("failed", 0),
            "dead": counts.get("dead", 0),
        }
        if not settings.email_configured:
            waiting = details["pending"] + details["failing"]
            return ok(f"not configured (smtp_host): {waiting} emails wait", **details)
        if details["failing"]:
            return degraded(
                f"{details['failing']} emails failing, retried with backoff: {last_error}",
                **details,
            )
        return ok(**details)

    return Probe("email", check, timeout_s)


__all__ = [
    "Claimed",
    "Outcome",
    "backoff_seconds",
    "email_probe",
    "lease_seconds",
    "send_due_emails",
]

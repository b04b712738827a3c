"""Sending webhook deliveries (the `send_webhooks` task on each network), per the Standard
Webhooks specification (docs/NOTIFICATIONS.md, "Webhooks").

One run, in three steps, never holding a transaction open while it waits on a receiver:

1. claim (one short transaction): the due deliveries (pending or failed, `next_attempt_at`
   passed; `FOR UPDATE SKIP LOCKED`, so concurrent runs take different ones) are leased by
   moving `next_attempt_at` past the run (`LEASE`); a delivery whose endpoint is gone or
   disabled, whose event is gone, or whose owner no longer hears of it is given up ("dead");
2. send (no database): each one a POST of the event's JSON, signed with the endpoint's
   secret, its headers `webhook-id` (the event id: the same on every retry, the receiver's
   idempotency key), `webhook-timestamp` (this attempt) and `webhook-signature`; the host is
   resolved and every address checked against the allow-list first, and the connection made
   to the address checked (no second lookup to rebind); no redirect is followed, no proxy
   from the environment used, no response body read;
3. record (one short transaction): a 2xx is sent; anything else is failed, retried after an
   exponential backoff with jitter, and dead after `webhook_max_attempts`; every attempt is
   logged (`webhook_attempts`). The endpoint counts failed attempts in a row; after
   `webhook_disable_after_failures` (or at once on 410 Gone) it is disabled and its owner
   told in-app (`webhook.disabled`).

A worker that dies after the claim loses nothing: the lease runs out and a later run sends
again (at least once). A receiver that is down never touches what caused the event.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import notifications
from shared.db import is_postgres, utcnow
from shared.security.clock import as_utc
from shared.webhook_rules import (
    AllowList,
    address_refusal,
    backoff,
    destination,
    may_receive,
    payload,
    retry_after,
    sign,
)
from shared.webhooks import WAITING, sealer

log = logging.getLogger("ferry.webhooks")
LEASE = timedelta(minutes=10)  # a claimed delivery is not taken again for this long
BATCH = 100  # deliveries one run claims at most
THREADS = 8  # POSTs under way at once
MAX_ERROR = 500  # characters of an error kept
USER_AGENT = "Ferry-Webhooks/1"


@dataclass(frozen=True)
class Job:
    delivery_id: int
    lease: datetime  # the claim: recorded only while the delivery still carries it
    endpoint_id: str
    url: str
    event_id: str
    kind: str
    attempt: int
    body: bytes
    secret: str | None  # None: it could not be unsealed
    problem: str | None = None  # refused before sending
    previous: str | None = None  # the secret before a rotation, while it still signs


@dataclass(frozen=True)
class Outcome:
    at: datetime
    code: int | None = None
    latency_ms: int | None = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.code is not None and 200 <= self.code < 300


def send_due_webhooks(
    transaction: Callable[[], AbstractContextManager[Session]],
    tables: Any,
    settings: Any,
    *,
    now: datetime | None = None,
    limit: int = BATCH,
) -> dict[str, int]:
    """One run: claim, send, record (see the module). `transaction()` opens one unit of
    work (the entry point's); the times are `now` plus the time the run has taken."""
    start, began = now or utcnow(), time.monotonic()

    def clock() -> datetime:
        return start + timedelta(seconds=time.monotonic() - began)

    with transaction() as session:
        jobs, given_up = _claim(session, tables, settings, start, limit)
    done = {"claimed": len(jobs) + given_up, "sent": 0, "failed": 0, "dead": given_up}
    done["disabled"] = 0
    if not jobs:
        return done
    allow = AllowList.of(settings.webhook_allowed_hosts)
    with (
        httpx.Client(
            timeout=settings.webhook_timeout_s,
            follow_redirects=False,
            trust_env=False,  # no proxy, no CA bundle from the environment
            verify=_tls(settings),
            # A new connection for every POST: one made for one host name (its certificate
            # checked for it) is never reused for another name at the same address.
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as client,
        ThreadPoolExecutor(min(THREADS, len(jobs)), thread_name_prefix="webhook") as pool,
    ):
        outcomes = list(pool.map(lambda job: _send(client, allow, job, clock), jobs))
    with transaction() as session:
        for job, outcome in zip(jobs, outcomes, strict=True):
            status, disabled = _record(session, tables, settings, job, outcome)
            done[status] = done.get(status, 0) + 1
            done["disabled"] += disabled
    return done


def _tls(settings: Any) -> ssl.SSLContext | bool:
    """The certificates a receiver's must chain to: `webhook_ca_file`'s, else the system's."""
    ca_file = getattr(settings, "webhook_ca_file", None)
    return ssl.create_default_context(cafile=str(ca_file)) if ca_file else True


# -- 1. claim ---------------------------------------------------------------------------------


def _claim(
    session: Session, tables: Any, settings: Any, now: datetime, limit: int
) -> tuple[list[Job], int]:
    d = tables.delivery
    query = (
        select(d)
        .where(d.channel == "webhook", d.status.in_(WAITING), d.next_attempt_at <= now)
        .order_by(d.next_attempt_at, d.id)
        .limit(limit)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    due = list(session.scalars(query))
    if not due:
        return [], 0
    endpoints = _by_id(session, tables.webhook_endpoint, {r.target for r in due})
    events = _by_id(session, tables.event, {r.event_id for r in due})
    owners = _by_id(session, tables.user, {e.user_id for e in endpoints.values()})
    keys, jobs, given_up, lease = sealer(settings), [], 0, now + LEASE
    for row in due:
        endpoint, event = endpoints.get(row.target), events.get(row.event_id)
        owner = owners.get(endpoint.user_id) if endpoint is not None else None
        why = _why_not(endpoint, event, owner)
        if why is not None:
            row.status, row.last_error = "dead", why
            given_up += 1
            continue
        try:
            secret, problem = keys.open(endpoint.secret, endpoint.id), None
            previous = _previous(keys, endpoint, now)
        except ValueError:
            secret = previous = None
            problem = "the endpoint's secret does not open (was webhook_secret_key changed?)"
        row.next_attempt_at = lease
        jobs.append(
            Job(
                delivery_id=row.id,
                lease=lease,
                endpoint_id=endpoint.id,
                url=endpoint.url,
                event_id=event.id,
                kind=event.kind,
                attempt=row.attempts + 1,
                body=payload(event, network=settings.network_id),
                secret=secret,
                problem=problem,
                previous=previous,
            )
        )
    session.flush()
    return jobs, given_up


def _previous(keys: Any, endpoint: Any, now: datetime) -> str | None:
    """The secret before the last rotation, while it still signs."""
    until = endpoint.previous_secret_until
    if endpoint.previous_secret is None or until is None or as_utc(until) <= now:
        return None
    return keys.open(endpoint.previous_secret, endpoint.id)


def _by_id(session: Session, model: type, ids: Iterable[str]) -> dict[str, Any]:
    ids = list(ids)
    return {r.id: r for r in session.scalars(select(model).where(model.id.in_(ids)))} if ids else {}


def _why_not(endpoint: Any, event: Any, owner: Any) -> str | None:
    if endpoint is None:
        return "the endpoint was deleted"
    if not endpoint.active:
        return f"the endpoint is disabled: {endpoint.disabled_reason or 'by its owner'}"
    if event is None:
        return "the event is no longer kept"
    if owner is None or not owner.active or not may_receive(event, owner.id, owner.role):
        return "the endpoint's owner no longer hears of this event"
    return None


# -- 2. send ----------------------------------------------------------------------------------


def _send(client: httpx.Client, allow: AllowList, job: Job, clock: Callable[[], datetime]):
    if job.secret is None:
        return Outcome(clock(), error=job.problem)
    try:
        dest = destination(job.url)
        addresses = _resolve(dest.host, dest.port) if dest.address is None else [dest.address]
    except (ValueError, OSError) as exc:
        return Outcome(clock(), error=f"cannot resolve {job.url[:200]}: {exc}"[:MAX_ERROR])
    why = address_refusal(dest, addresses, allow)
    if why is not None:
        return Outcome(clock(), error=f"refused: {why}"[:MAX_ERROR])
    at = clock()
    timestamp = int(at.timestamp())
    headers = {
        "host": dest.netloc,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": job.event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            sign(key, job.event_id, timestamp, job.body)
            for key in (job.secret, job.previous)
            if key
        ),
    }
    # Connect to an address just checked (the next one if it refuses the connection), never
    # to a second lookup's answer; TLS still verifies the certificate for the name.
    extensions = {"sni_hostname": dest.host} if dest.scheme == "https" else {}
    began = time.monotonic()
    for i, address in enumerate(addresses):
        url = httpx.URL(job.url).copy_with(host=str(address))
        try:
            with client.stream(
                "POST", url, content=job.body, headers=headers, extensions=extensions
            ) as reply:
                code, wait = reply.status_code, retry_after(reply.headers)
            break
        except httpx.ConnectError as exc:
            if i + 1 < len(addresses):
                continue
            return Outcome(at, latency_ms=_ms(began), error=_error(exc))
        except httpx.HTTPError as exc:
            return Outcome(at, latency_ms=_ms(began), error=_error(exc))
    error = None if 200 <= code < 300 else f"HTTP {code}"
    return Outcome(at, code=code, latency_ms=_ms(began), error=error, retry_after=wait)


def _error(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR]


def _resolve(host: str, port: int) -> list[Any]:
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(ipaddress.ip_address(f[4][0].split("%")[0]) for f in found))
    if not addresses:
        raise OSError("no address")
    return addresses


def _ms(began: float) -> int:
    return int((time.monotonic() - began) * 1000)


# -- 3. record --------------------------------------------------------------------------------


def _record(
    session: Session, tables: Any, settings: Any, job: Job, outcome: Outcome
) -> tuple[str, int]:
    """Store what one attempt came to; (the delivery's status now, or "lost" when another
    run has taken it over since; 1 if the endpoint was disabled by it)."""
    row = session.get(tables.delivery, job.delivery_id, with_for_update=True)
    endpoint = session.get(tables.webhook_endpoint, job.endpoint_id, with_for_update=True)
    held = row is not None and row.status in WAITING and as_utc(row.next_attempt_at) == job.lease
    if not held:  # another run took it over after the lease ran out; it records its own
        log.warning("webhook delivery %s: lease lost, attempt not recorded", job.delivery_id)
        return "lost", 0
    row.attempts = job.attempt
    row.latency_ms = outcome.latency_ms
    disabled = 0
    if outcome.ok:
        row.status, row.sent_at, row.last_error = "sent", outcome.at, None
        if endpoint is not None:
            endpoint.consecutive_failures = 0
    else:
        row.last_error = outcome.error
        row.status = "dead" if row.attempts >= settings.webhook_max_attempts else "failed"
        delay = backoff(
            row.attempts,
            base=settings.webhook_backoff_base_s,
            cap=settings.webhook_backoff_cap_s,
            jitter=settings.webhook_backoff_jitter,
            retry_after=outcome.retry_after,
        )
        row.next_attempt_at = outcome.at + timedelta(seconds=delay)
        if endpoint is not None:
            disabled = _failed(session, tables, settings, endpoint, outcome)
    if endpoint is not None:
        session.add(
            tables.webhook_attempt(
                endpoint_id=endpoint.id,
                delivery_id=row.id,
                event_id=job.event_id,
                kind=job.kind,
                attempt=job.attempt,
                at=outcome.at,
                status=row.status,
                response_code=outcome.code,
                latency_ms=outcome.latency_ms,
                error=outcome.error,
            )
        )
    session.flush()
    return row.status, disabled


def _failed(session: Session, tables: Any, settings: Any, endpoint: Any, outcome: Outcome) -> int:
    """Count a failed attempt against the endpoint; disable it (and tell its owner) after
    too many in a row, or at once when the receiver says 410 Gone. 1 if it was disabled."""
    endpoint.consecutive_failures += 1
    failures, limit = endpoint.consecutive_failures, settings.webhook_disable_after_failures
    if not endpoint.active or (outcome.code != 410 and failures < limit):
        return 0
    if outcome.code == 410:
        reason = "the receiver answered 410 Gone"
    else:
        reason = f"{failures} failed deliveries in a row; the last: {outcome.error}"
    endpoint.active, endpoint.disabled_reason = False, reason[:MAX_ERROR]
    endpoint.updated_at = outcome.at
    notifications.emit(
        session,
        tables,
        "webhook.disabled",
        title=f"Webhook disabled: {endpoint.url}",
        body=f"{reason}. Fix the receiver, then enable the endpoint again "
        f"(PATCH /api/v1/webhooks/{endpoint.id} with active: true).",
        data={"webhook_id": endpoint.id, "url": endpoint.url, "failures": failures},
        user_id=endpoint.user_id,
    )
    log.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)
    return 1


__all__ = ["send_due_webhooks"]

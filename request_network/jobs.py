"""Entry points that own a transaction: the CLI and the Celery tasks both call these."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import partial

from sqlalchemy.orm import Session

from request_network.models import Batch, TaskRun
from request_network.schedule import beat
from request_network.services import (
    governed,
    health,
    lifecycle,
    notifications,
    rate_limit_notices,
    response_cache,
    response_cache_upkeep,
    webhooks,
)
from request_network.services.exchange import (
    export_requests,
    export_user_changes,
    import_batches,
)
from request_network.services.exchange import requeue_unacked as requeue_unacked_requests
from request_network.settings import RequestSettings, get_settings
from shared import email_channel, monitoring
from shared.cache import get_redis
from shared.db import transaction
from shared.history import DatabaseRunRecorder
from transfer.operator.status import TransferStatus, network_status
from transfer.protocol import upkeep
from transfer.protocol.config import inbound_from, outbound_from
from transfer.protocol.config import make_transfer_dirs as make_transfer_dirs  # processes starting
from transfer.protocol.exchange import export_acks_if_due


def export(settings: RequestSettings) -> dict:
    """Pending requests to the outbox; an `acks` batch if nothing else carries due acks."""
    out = outbound_from(settings)
    with transaction(settings.database_url) as session:
        changes = export_user_changes(out, session=session)
        report = export_requests(out, session=session, keep_ids=False)
        acks = export_acks_if_due(session, Batch, out)
    return {
        "requests": report.requests,
        "user_changes": sum(b.carried for b in changes),
        "batches": [
            {
                "file": str(b.path),
                "stream": b.stream,
                "seq": b.seq,
                "sha256": b.digest,
                "records": b.count,
            }
            for b in [*changes, *report.batches, *acks]
        ],
    }


@contextmanager
def _import_unit(settings: RequestSettings) -> Iterator[Session]:
    """One batch's transaction; the responses it replaces leave the cache around its commit
    (`response_cache.watch_commits`), and governed settings it applies are announced to
    every process after it (`governed.watch_commits`)."""
    with transaction(settings.database_url) as session:
        response_cache.watch_commits(session, get_redis(settings.redis_url))
        governed.watch_commits(session, settings)
        yield session


# What each importer takes from the inbox: identity and settings have their own tasks
# (`users_importer`, `settings_importer`); `import_results` takes the rest (results, acks,
# and anything unexpected, which it quarantines).
IDENTITY_STREAMS = ("users", "profile_types")
SETTINGS_STREAMS = ("settings",)


def import_inbox(
    settings: RequestSettings,
    *,
    streams: Collection[str] | None = None,
    other_streams: Collection[str] = (),
) -> dict:
    """Import the inbox (every batch, or those of `streams`, or all but `other_streams`),
    then retire the kept batches the peer has now acknowledged."""
    outcomes = import_batches(
        inbound_from(settings),
        partial(_import_unit, settings),
        streams=streams,
        other_streams=other_streams,
    )
    retired = upkeep.retire_acked(settings, Batch)
    return {"files": [asdict(o) for o in outcomes], "retired": retired}


def import_results(settings: RequestSettings) -> dict:
    """Results, acks and anything unexpected (quarantined); not identity or settings."""
    return import_inbox(settings, other_streams=(*IDENTITY_STREAMS, *SETTINGS_STREAMS))


def import_identity(settings: RequestSettings) -> dict:
    """Users and profile types from the authority."""
    return import_inbox(settings, streams=IDENTITY_STREAMS)


def import_settings(settings: RequestSettings) -> dict:
    """Governed settings from the authority."""
    return import_inbox(settings, streams=SETTINGS_STREAMS)


def transfer_status(settings: RequestSettings) -> TransferStatus:
    return network_status(settings, Batch)


def resend(
    settings: RequestSettings,
    *,
    stream: str | None = None,
    seq: int | None = None,
    batch_id: str | None = None,
) -> dict:
    return upkeep.resend(settings, Batch, stream=stream, seq=seq, batch_id=batch_id)


def flag_unacked(settings: RequestSettings) -> dict:
    flagged = upkeep.flag_unacked(settings, Batch)
    with transaction(settings.database_url) as session:
        flagged["alerts"] = notifications.unacked_batches(flagged["unacked"], session=session)
    return flagged


@dataclass(frozen=True)
class StaleReport:
    requeued: int


def requeue_unacked(settings: RequestSettings, *, older_than: timedelta) -> dict:
    """Requests in transit whose batch was never acknowledged are exported again.

    The response network imports a request id once, so a second copy is harmless.
    """
    with transaction(settings.database_url) as session:
        requeued = requeue_unacked_requests(
            session=session, source=settings.network_id, older_than=older_than
        )
    return asdict(StaleReport(requeued))


def expire_requests(settings: RequestSettings) -> dict:
    """Requests unanswered for `requests.expiry_hours` (governed, else the deployment's
    `request_expiry_hours`) since they were last sent expire (`lifecycle.expire_unanswered`)."""
    with transaction(settings.database_url) as session:
        hours = governed.in_force(settings, session=session)["requests.expiry_hours"]
        expired = lifecycle.expire_unanswered(session=session, older_than=timedelta(hours=hours))
    return {"expired": expired, "older_than_hours": hours}


def cache_maintenance(settings: RequestSettings) -> dict:
    """The hourly upkeep of the response cache (`response_cache_upkeep.optimize`); its report
    is kept in Redis for the cache statistics and returned (the task run records it)."""
    with transaction(settings.database_url) as session:
        return response_cache_upkeep.optimize(
            get_redis(settings.redis_url),
            session=session,
            policy=response_cache.Policy.of(settings, session=session),
            prewarm_seconds=settings.response_cache_prewarm_seconds,
            prewarm_max=settings.response_cache_prewarm_max,
        )


def notify(settings: RequestSettings) -> dict:
    """Tell the rate-limit thresholds users crossed (`services.rate_limit_notices`), fan new
    notification events out to in-app notifications and channel deliveries
    (`shared.notifications.dispatch`), escalate unacknowledged alerts, drop read
    notifications past the retention."""
    with transaction(settings.database_url) as session:
        crossed, forget = rate_limit_notices.tell(settings, session=session)
        minutes = governed.in_force(settings, session=session)["notifications.escalation_minutes"]
        done = monitoring.notify(
            settings, session, notifications=notifications, escalation_minutes=minutes
        )
        done["rate_limit"] = crossed
    forget()
    return done


def send_emails(settings: RequestSettings) -> dict:
    """Send the email deliveries that are due, at least once (`shared.email_channel`): one
    short transaction to claim them, none while talking to SMTP, one to record the outcomes.
    With no SMTP server configured they wait (`configured: false`)."""
    return email_channel.send_due_emails(
        partial(transaction, settings.database_url), notifications.TABLES, settings
    )


def send_webhooks(settings: RequestSettings) -> dict:
    """Send the webhook deliveries that are due (`shared.webhook_sender`: each step its own
    short transaction, none open during a POST); drop attempts past the retention."""
    return webhooks.SERVICE.send_due(partial(transaction, settings.database_url), settings)


def task_run_recorder() -> DatabaseRunRecorder:
    """Where this network's tasks record their runs: its `task_runs` table (the database of
    the settings at each run)."""
    return DatabaseRunRecorder(lambda: get_settings().database_url, TaskRun)


def system_monitoring(settings: RequestSettings) -> dict:
    """Sample the detailed health, keep the sample, log what went down or recovered since the
    last one, alert admins of what is down (once while it lasts; resolved when it
    recovers), and bound the task-run and health-sample histories (`shared.monitoring`)."""
    return monitoring.system_monitoring(
        settings,
        health=health,
        notifications=notifications,
        task_names=[e["task"] for e in beat(settings.beat_seconds).values()],
        more_alerts=lambda session: {
            "api_key.expiring": notifications.expiring_keys(
                session=session, within=timedelta(days=7)
            )
        },
    )

"""Entry points that own a transaction: the CLI and the Celery tasks both call these."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from functools import partial

from response_network.models import Batch, TaskRun
from response_network.schedule import beat
from response_network.services import governed, health, notifications, webhooks
from response_network.services.exchange import export_results, import_requests, reexport_unacked
from response_network.services.executor import prune_executions, requeue_stale, run_queued
from response_network.services.identity import (
    export_identity,
    export_profile_types,
    export_users,
    send_all_again,
)
from response_network.services.search import SearchBackend, make_client
from response_network.services.snapshot import take_snapshot
from response_network.settings import ResponseSettings, get_settings
from shared import email_channel, monitoring
from shared.db import transaction
from shared.history import DatabaseRunRecorder
from transfer.operator.status import TransferStatus, network_status
from transfer.protocol import upkeep
from transfer.protocol.config import inbound_from, outbound_from
from transfer.protocol.config import make_transfer_dirs as make_transfer_dirs  # processes starting
from transfer.protocol.exchange import export_acks_if_due


def _batches(batches) -> list[dict]:
    return [
        {
            "file": str(b.path),
            "stream": b.stream,
            "seq": b.seq,
            "sha256": b.digest,
            "records": b.count,
        }
        for b in batches
    ]


def import_inbox(settings: ResponseSettings) -> dict:
    """Import the inbox, then retire the kept batches the peer has now acknowledged."""
    outcomes = import_requests(inbound_from(settings), partial(transaction, settings.database_url))
    retired = upkeep.retire_acked(settings, Batch)
    return {"files": [asdict(o) for o in outcomes], "retired": retired}


def backend_for(settings: ResponseSettings) -> SearchBackend:
    return SearchBackend(
        make_client(
            settings.elasticsearch_url,
            compat_headers=settings.compat_headers,
            timeout=settings.search_timeout_s,
        )
    )


def execute(settings: ResponseSettings, backend: SearchBackend | None = None) -> dict:
    backend = backend or backend_for(settings)
    report = run_queued(
        backend,
        partial(transaction, settings.database_url),
        limit=settings.execute_batch,
        chunk_size=settings.msearch_chunk,
        timeout_s=settings.search_timeout_s,
    )
    return {"done": report.done, "failed": report.failed, "deferred": report.deferred}


def results_exporter(settings: ResponseSettings) -> dict:
    """Unexported results to the outbox; an `acks` batch if nothing else carries due acks."""
    out = outbound_from(settings)
    with transaction(settings.database_url) as session:
        results = export_results(out, session=session, keep_ids=False)
        acks = export_acks_if_due(session, Batch, out)
    return {"results": results.results, "batches": _batches([*results.batches, *acks])}


def users_exporter(settings: ResponseSettings) -> dict:
    """Users changed since the last export to the outbox (the `users` stream)."""
    with transaction(settings.database_url) as session:
        batches = export_users(outbound_from(settings), session=session)
    return {"batches": _batches(batches)}


def password_sync(settings: ResponseSettings) -> dict:
    """Users whose password changed (a user's own change applied or refused, an admin's
    reset) to the outbox, so that both networks agree on it."""
    with transaction(settings.database_url) as session:
        batches = export_users(outbound_from(settings), session=session, passwords_only=True)
    return {"batches": _batches(batches)}


def profile_types_exporter(settings: ResponseSettings) -> dict:
    """Profile types changed since the last export to the outbox."""
    with transaction(settings.database_url) as session:
        batches = export_profile_types(outbound_from(settings), session=session)
    return {"batches": _batches(batches)}


def cache_maintenance(settings: ResponseSettings) -> dict:
    """The hourly upkeep of what the response network keeps: executions older than
    `execution_history_days` go, except each request's latest."""
    older_than = timedelta(days=settings.execution_history_days)
    with transaction(settings.database_url) as session:
        pruned = prune_executions(session=session, older_than=older_than)
    return {"executions_pruned": pruned, "older_than_days": settings.execution_history_days}


def export_settings(settings: ResponseSettings, *, full: bool = False) -> dict:
    """Governed settings changed since the last export to the outbox (the `settings`
    stream); with `full`, a snapshot of every governed key."""
    with transaction(settings.database_url) as session:
        batches = governed.export_settings(outbound_from(settings), session=session, full=full)
    return {"batches": _batches(batches)}


def snapshot(settings: ResponseSettings, *, actor: str = "cli") -> dict:
    """A full snapshot for a fresh request network (`services.snapshot`)."""
    with transaction(settings.database_url) as session:
        return take_snapshot(outbound_from(settings), session=session, actor=actor)


def export(settings: ResponseSettings, *, full: bool = False) -> dict:
    """Identity, settings and results to the outbox; an `acks` batch if nothing else carries
    due acks (what `users_exporter`, `profile_types_exporter`, `settings_exporter` and
    `export_results` do, at once). `full`: every user, profile type and setting, changed or
    not (a snapshot for a fresh request network)."""
    out = outbound_from(settings)
    with transaction(settings.database_url) as session:
        if full:
            send_all_again(session=session)
        identity = export_identity(out, session=session)
        changed = governed.export_settings(out, session=session, full=full)
        results = export_results(out, session=session, keep_ids=False)
        acks = export_acks_if_due(session, Batch, out)
    return {
        "results": results.results,
        "batches": _batches([*identity, *changed, *results.batches, *acks]),
    }


def export_identity_only(settings: ResponseSettings) -> dict:
    with transaction(settings.database_url) as session:
        batches = export_identity(outbound_from(settings), session=session)
    return {"batches": _batches(batches)}


def transfer_status(settings: ResponseSettings) -> TransferStatus:
    return network_status(settings, Batch)


def resend(
    settings: ResponseSettings,
    *,
    stream: str | None = None,
    seq: int | None = None,
    batch_id: str | None = None,
) -> dict:
    return upkeep.resend(settings, Batch, stream=stream, seq=seq, batch_id=batch_id)


def flag_unacked(settings: ResponseSettings) -> dict:
    flagged = upkeep.flag_unacked(settings, Batch)
    with transaction(settings.database_url) as session:
        flagged["alerts"] = notifications.unacked_batches(flagged["unacked"], session=session)
    return flagged


def reexport(settings: ResponseSettings, *, older_than: timedelta) -> dict:
    """Results and identity of batches unacknowledged past `older_than` go out again."""
    with transaction(settings.database_url) as session:
        batches = reexport_unacked(
            session=session,
            source=settings.network_id,
            outbox=settings.outbox,
            older_than=older_than,
        )
    return {"batches": batches}


def requeue(settings: ResponseSettings, *, older_than: timedelta) -> dict:
    with transaction(settings.database_url) as session:
        return {"requeued": requeue_stale(session=session, older_than=older_than)}


def notify(settings: ResponseSettings) -> dict:
    """Fan new notification events out to in-app notifications and channel deliveries
    (`shared.notifications.dispatch`), escalate unacknowledged alerts, drop read
    notifications past the retention."""
    with transaction(settings.database_url) as session:
        minutes = governed.in_force(settings, session=session)["notifications.escalation_minutes"]
        done = monitoring.notify(
            settings, session, notifications=notifications, escalation_minutes=minutes
        )
    return done


def send_emails(settings: ResponseSettings) -> dict:
    """Send the email deliveries that are due, at least once (`shared.email_channel`): one
    short transaction to claim them, none while talking to SMTP, one to record the outcomes.
    With no SMTP server configured they wait (`configured: false`)."""
    return email_channel.send_due_emails(
        partial(transaction, settings.database_url), notifications.TABLES, settings
    )


def send_webhooks(settings: ResponseSettings) -> dict:
    """Send the webhook deliveries that are due (`shared.webhook_sender`: each step its own
    short transaction, none open during a POST); drop attempts past the retention."""
    return webhooks.SERVICE.send_due(partial(transaction, settings.database_url), settings)


def task_run_recorder() -> DatabaseRunRecorder:
    """Where this network's tasks record their runs: its `task_runs` table (the database of
    the settings at each run)."""
    return DatabaseRunRecorder(lambda: get_settings().database_url, TaskRun)


def system_monitoring(settings: ResponseSettings) -> dict:
    """Sample the detailed health, keep the sample, log what went down or recovered since the
    last one, alert admins of what is down (once while it lasts; resolved when it
    recovers), and bound the task-run and health-sample histories (`shared.monitoring`)."""
    return monitoring.system_monitoring(
        settings,
        health=health,
        notifications=notifications,
        task_names=[e["task"] for e in beat(settings.beat_seconds).values()],
    )

"""The request network's detailed health: its probes, and its health-sample history.

`detailed_health` runs every probe at once, each within its own timeout (`shared.health`);
each probe opens what it needs itself (a read unit, a client) in its own thread.
`system_monitoring` keeps a sample per run (`record_sample`) and bounds the histories
(`trim_history`); `components_down_since` is the flag for alerting: what is down now, and
since when.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from sqlalchemy.orm import Session

from request_network.models import Batch, HealthSample, NotificationDelivery, TaskRun
from request_network.schedule import beat
from request_network.services import governed
from request_network.settings import RequestSettings
from shared import email_channel, health_probes, history
from shared.db import reading
from shared.health import HealthReport, Probe, run_probes
from transfer.operator import health as transfer_health


def probes(settings: RequestSettings) -> list[Probe]:
    timeout = settings.health_probe_timeout_s
    reads = partial(reading, settings.database_url)
    broker, eager = settings.celery_broker, settings.celery_eager
    return [
        health_probes.database_probe("request", settings.database_url, timeout),
        health_probes.redis_probe(settings.redis_url, timeout),
        health_probes.breakers_probe(timeout),
        health_probes.broker_probe(broker, eager=eager, timeout_s=timeout),
        health_probes.workers_probe(
            broker, eager=eager, timeout_s=settings.health_worker_timeout_s
        ),
        health_probes.beat_probe(
            beat(settings.beat_seconds),
            TaskRun,
            reads,
            eager=eager,
            grace_s=settings.health_beat_grace_s,
            timeout_s=timeout,
        ),
        transfer_health.directories_probe(
            settings, min_free_mb=settings.health_min_free_mb, timeout_s=timeout
        ),
        transfer_health.transfer_probe(settings, Batch, reads, timeout_s=timeout),
        transfer_health.quarantine_probe(settings, timeout_s=timeout),
        email_channel.email_probe(settings, NotificationDelivery, reads, timeout_s=timeout),
    ]


def detailed_health(settings: RequestSettings) -> HealthReport:
    return run_probes(probes(settings))


def record_sample(report: HealthReport, *, session: Session) -> history.Transition:
    return history.record_sample(session, HealthSample, report)


def components_down_since(*, session: Session) -> dict[str, datetime]:
    """Each component down in the latest sample, with when its current outage began."""
    return history.components_down_since(session, HealthSample)


def trim_history(settings: RequestSettings, *, session: Session) -> dict[str, int]:
    """Bound the histories by the retention in force (`retention.*`: governed, else the
    deployment's `task_history_days` / `health_history_days`)."""
    now = governed.in_force(settings, session=session)
    return history.trim(
        session,
        task_model=TaskRun,
        sample_model=HealthSample,
        task_days=now["retention.task_history_days"],
        task_runs_per_name=settings.task_history_per_task,
        sample_days=now["retention.health_history_days"],
    )

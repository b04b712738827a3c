"""The response network's detailed health: its probes (those of the request network plus the
search cluster and the index of every profile type), and its health-sample history.

`detailed_health` runs every probe at once, each within its own timeout (`shared.health`);
each probe opens what it needs itself (a read unit, a client) in its own thread.
`system_monitoring` keeps a sample per run (`record_sample`) and bounds the histories
(`trim_history`); `components_down_since` is the flag for alerting: what is down now, and
since when.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from response_network.models import (
    Batch,
    HealthSample,
    NotificationDelivery,
    ProfileType,
    TaskRun,
)
from response_network.schedule import beat
from response_network.services import governed
from response_network.services.search import make_client
from response_network.settings import ResponseSettings
from shared import email_channel, health_probes, history
from shared.db import reading
from shared.health import Finding, HealthReport, Probe, degraded, down, ok, run_probes
from transfer.operator import health as transfer_health

Reads = Callable[[], AbstractContextManager[Session]]
CLUSTER_STATUS = {"green": ok, "yellow": degraded, "red": down}


def _client(settings: ResponseSettings, timeout_s: float):
    """A client that gives up a second after the probe's deadline (which is what decides):
    a probe that does not answer in time is reported as timed out, and its thread ends."""
    return make_client(
        settings.elasticsearch_url, compat_headers=settings.compat_headers, timeout=timeout_s + 1
    )


def search_probe(settings: ResponseSettings, timeout_s: float) -> Probe:
    """The cluster's own health: green is ok, yellow degraded, red down."""

    def check() -> Finding:
        started = time.perf_counter()
        with _client(settings, timeout_s) as client:
            body = client.cluster.health(timeout=f"{max(1, int(timeout_s))}s").body
        latency = round((time.perf_counter() - started) * 1000, 1)
        color = str(body.get("status", "red"))
        details = {
            "cluster": body.get("cluster_name"),
            "cluster_status": color,
            "nodes": body.get("number_of_nodes"),
            "latency_ms": latency,
        }
        verdict = CLUSTER_STATUS.get(color, down)
        return verdict("" if color == "green" else f"cluster status {color}", **details)

    return Probe("search", check, timeout_s)


def indices_probe(settings: ResponseSettings, reads: Reads, timeout_s: float) -> Probe:
    """The index of every profile type exists; a missing one is down (its queries fail)."""

    def check() -> Finding:
        with reads() as session:
            wanted = session.execute(select(ProfileType.name, ProfileType.index)).all()
        with _client(settings, timeout_s) as client:
            present = {index: bool(client.indices.exists(index=index)) for _, index in wanted}
        missing = [f"{index} (profile type {name})" for name, index in wanted if not present[index]]
        details = {"indices": present}
        if missing:
            return down(f"missing index: {', '.join(missing)}", **details)
        if not wanted:
            return ok("no profile type yet", **details)
        return ok(**details)

    return Probe("indices", check, timeout_s)


def probes(settings: ResponseSettings) -> list[Probe]:
    timeout = settings.health_probe_timeout_s
    reads = partial(reading, settings.database_url)
    broker, eager = settings.celery_broker, settings.celery_eager
    return [
        health_probes.database_probe("response", settings.database_url, timeout),
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
        search_probe(settings, timeout),
        indices_probe(settings, reads, timeout),
        email_channel.email_probe(settings, NotificationDelivery, reads, timeout_s=timeout),
    ]


def detailed_health(settings: ResponseSettings) -> HealthReport:
    return run_probes(probes(settings))


def record_sample(report: HealthReport, *, session: Session) -> history.Transition:
    return history.record_sample(session, HealthSample, report)


def components_down_since(*, session: Session) -> dict[str, datetime]:
    """Each component down in the latest sample, with when its current outage began."""
    return history.components_down_since(session, HealthSample)


def trim_history(settings: ResponseSettings, *, session: Session) -> dict[str, int]:
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

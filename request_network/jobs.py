"""Entry points that own a transaction: the CLI and the Celery tasks both call these."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import timedelta
from functools import partial

from sqlalchemy.orm import Session

from request_network.models import Batch, TaskRun
from request_network.services import health, response_cache, response_cache_upkeep
from request_network.services.exchange import export_requests, import_batches
from request_network.services.exchange import requeue_unacked as requeue_unacked_requests
from request_network.settings import RequestSettings, get_settings
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
        report = export_requests(out, session=session, keep_ids=False)
        acks = export_acks_if_due(session, Batch, out)
    return {
        "requests": report.requests,
        "batches": [
            {
                "file": str(b.path),
                "stream": b.stream,
                "seq": b.seq,
                "sha256": b.digest,
                "records": b.count,
            }
            for b in [*report.batches, *acks]
        ],
    }


@contextmanager
def _import_unit(settings: RequestSettings) -> Iterator[Session]:
    """One batch's transaction; the responses it replaces leave the cache around its commit
    (`response_cache.watch_commits`)."""
    with transaction(settings.database_url) as session:
        response_cache.watch_commits(session, get_redis(settings.redis_url))
        yield session


def import_inbox(settings: RequestSettings) -> dict:
    """Import the inbox, then retire the kept batches the peer has now acknowledged."""
    outcomes = import_batches(inbound_from(settings), partial(_import_unit, settings))
    retired = upkeep.retire_acked(settings, Batch)
    return {"files": [asdict(o) for o in outcomes], "retired": retired}


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
    return upkeep.flag_unacked(settings, Batch)


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


def cache_maintenance(settings: RequestSettings) -> dict:
    """The hourly upkeep of the response cache (`response_cache_upkeep.optimize`); its report
    is kept in Redis for the cache statistics and returned (the task run records it)."""
    with transaction(settings.database_url) as session:
        return response_cache_upkeep.optimize(
            get_redis(settings.redis_url),
            session=session,
            policy=response_cache.Policy.of(settings),
            prewarm_seconds=settings.response_cache_prewarm_seconds,
            prewarm_max=settings.response_cache_prewarm_max,
        )


def task_run_recorder() -> DatabaseRunRecorder:
    """Where this network's tasks record their runs: its `task_runs` table (the database of
    the settings at each run)."""
    return DatabaseRunRecorder(lambda: get_settings().database_url, TaskRun)


def system_monitoring(settings: RequestSettings) -> dict:
    """Sample the detailed health, keep the sample, log what went down or recovered since the
    last one, and bound the task-run and health-sample histories."""
    report = health.detailed_health(settings)
    with transaction(settings.database_url) as session:
        change = health.record_sample(report, session=session)
        trimmed = health.trim_history(settings, session=session)
    monitoring_log = logging.getLogger("ferry.health")
    for name in change.newly_down:
        monitoring_log.error("%s is down: %s", name, report.component(name).reason)
    for name in change.recovered:
        monitoring_log.warning("%s has recovered", name)
    return {
        "status": report.status,
        "down": change.down,
        "newly_down": change.newly_down,
        "recovered": change.recovered,
        **trimmed,
    }

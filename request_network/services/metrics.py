"""What the request network's `/metrics` serves: every process's counters and histograms
(`shared.metrics.exposition`) and gauges read at scrape time: requests by the status their
users see, and the depth of each Celery queue. A gauge that cannot be read in time (the
database or the broker is down) is left out of that scrape; the rest is still served."""

from __future__ import annotations

import logging

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import case, exists, func, select

from request_network.models import (
    EXPORTED,
    PENDING,
    PUBLIC_STATES,
    PUBLIC_STATUS,
    Request,
    RequestExport,
)
from request_network.services import queues
from request_network.settings import RequestSettings
from shared.db import reading
from shared.health import describe_error, run_concurrently
from shared.metrics import declare_breakers, exposition

log = logging.getLogger("ferry.api")
STATUSES = PUBLIC_STATES


def requests_by_status(settings: RequestSettings) -> list[GaugeMetricFamily]:
    """One COUNT, grouped by the status a user sees (a PENDING request a batch has carried
    out is IN_TRANSIT)."""
    in_transit = exists().where(RequestExport.request_id == Request.id)
    status = case(
        ((Request.status == PENDING) & in_transit, PUBLIC_STATUS[EXPORTED]),
        else_=Request.status,
    ).label("status")
    with reading(settings.database_url) as session:
        counts = dict(session.execute(select(status, func.count()).group_by(status)).all())
    family = GaugeMetricFamily(
        "ferry_requests",
        "Requests by the status their users see (counted at scrape).",
        labels=["status"],
    )
    for name in dict.fromkeys([*STATUSES, *counts]):
        family.add_metric([name], counts.get(name, 0))
    return [family]


def scrape(settings: RequestSettings) -> bytes:
    outcomes = run_concurrently(
        {
            "requests": lambda: requests_by_status(settings),
            "queues": lambda: queues.SERVICE.depth_metric(settings),
        },
        settings.health_probe_timeout_s,
    )
    live = []
    for name, outcome in outcomes.items():
        if outcome.ok:
            live += outcome.value
        else:
            why = "no answer in time" if outcome.timed_out else describe_error(outcome.error)
            log.warning("metrics: %s left out of this scrape: %s", name, why)
    declare_breakers("redis")  # closed until a breaker says otherwise
    return exposition(live)

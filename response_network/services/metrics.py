"""What the response network's `/metrics` serves: every process's counters and histograms
(`shared.metrics.exposition`: batches, task runs, search latency …) and the depth of each
Celery queue, read at scrape time (left out of a scrape when the broker cannot be read)."""

from __future__ import annotations

import logging

from response_network.services import queues
from response_network.settings import ResponseSettings
from shared.health import describe_error, run_concurrently
from shared.metrics import declare_breakers, exposition

log = logging.getLogger("ferry.api")


def scrape(settings: ResponseSettings) -> bytes:
    outcome = run_concurrently(
        {"queues": lambda: queues.SERVICE.depth_metric(settings)},
        settings.health_probe_timeout_s,
    )["queues"]
    if not outcome.ok:
        why = "no answer in time" if outcome.timed_out else describe_error(outcome.error)
        log.warning("metrics: queue depths left out of this scrape: %s", why)
    declare_breakers("search", "redis")  # closed until a breaker says otherwise
    return exposition(outcome.value if outcome.ok else [])

"""Prometheus metrics (prometheus-client's default registry).

With several processes (API workers, Celery pool processes) set `PROMETHEUS_MULTIPROC_DIR`
to a directory all of them share, before they start: each process then writes its values
there and a scrape (`exposition`) adds them up (prometheus-client's multiprocess mode).

Each process's file is named by its host name and process id, not the id alone: containers
sharing the directory (the compose files' API and worker) each number their processes from
1, and two processes writing one file lose each other's counts. The directory must be empty
when the first process starts; the compose files keep it on a tmpfs volume, which is gone
once no container of the deployment holds it (docs/OPERATIONS.md, "Metrics").
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.core import Metric
from prometheus_client.multiprocess import MultiProcessCollector

from shared import breaker

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_HOST = socket.gethostname().replace("_", "-")  # `_` splits the file name's parts


def process_id() -> str:
    """This process among all that share the directory: host name (a container's own) and
    process id."""
    return f"{_HOST}-{os.getpid()}"


if os.environ.get(MULTIPROC_ENV):  # every process writes its values there from the start
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)
    values.ValueClass = values.MultiProcessValue(process_id)  # before any metric is made

RATELIMIT_DECISIONS = Counter(
    "ferry_ratelimit_decisions",
    "Rate-limit decisions taken with Redis, by the most severe window state.",
    ["state"],
)
RATELIMIT_REDIS_UNAVAILABLE = Counter(
    "ferry_ratelimit_redis_unavailable",
    "Rate-limit decisions taken without Redis (it could not be reached), by outcome.",
    ["decision"],  # "allowed" (fail open) or "refused" (fail closed)
)
RESPONSE_CACHE_LOOKUPS = Counter(
    "ferry_response_cache_lookups",
    "Response reads looked up in the Redis cache, by outcome (hit or miss).",
    ["outcome"],
)
RESPONSE_CACHE_SERVED_BYTES = Counter(
    "ferry_response_cache_served_bytes",
    "Bytes of response bodies served from the Redis cache.",
)
RESPONSE_CACHE_REDIS_UNAVAILABLE = Counter(
    "ferry_response_cache_redis_unavailable",
    "Response-cache steps skipped because Redis could not be reached, by step.",
    ["step"],  # "read" (served from the database), "fill", "invalidate"
)

# Batches, tasks and searches (operations; docs/OPERATIONS.md) ------------------------------
BATCHES = Counter(
    "ferry_batches",
    "Batch files by what happened to them and stream.",
    ["event", "stream"],  # "written", "imported", "duplicate", "quarantined"
)
TASK_RUNS = Counter("ferry_task_runs", "Celery task runs by task and outcome.", ["task", "outcome"])
TASK_SECONDS = Histogram(
    "ferry_task_duration_seconds",
    "How long Celery task runs took, by task and outcome.",
    ["task", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
SEARCH_SECONDS = Histogram(
    "ferry_search_duration_seconds",
    "msearch round trips to the search cluster, by outcome.",
    ["outcome"],  # "ok" or "failed"
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# HTTP (shared.http_metrics, on both APIs) ---------------------------------------------------
HTTP_SECONDS = Histogram(
    "ferry_http_request_duration_seconds",
    "HTTP requests from arrival to the end of the reply, by route template, method and "
    "status class; the wait for admission included.",
    ["route", "method", "status"],  # "/api/v1/requests/{request_id}", "GET", "2xx"
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
HTTP_IN_FLIGHT = Gauge(
    "ferry_http_requests_in_flight",
    "HTTP requests inside the API now (waiting for admission or being served).",
    multiprocess_mode="livesum",  # the sum over the processes that are running
)

# Circuit breakers (DESIGN.md §11) -----------------------------------------------------------
#: A breaker's states as the gauge reads them.
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
BREAKER_STATE = Gauge(
    "ferry_circuit_breaker_state",
    "Circuit breaker state by dependency: 0 closed, 1 half-open, 2 open (with several "
    "processes, the most open of them).",
    ["dependency"],  # "search", "redis"
    multiprocess_mode="livemax",
)


def set_breaker_state(dependency: str, state: str) -> None:
    """Show `dependency`'s breaker as `state` (`closed`, `half_open` or `open`) in this
    process."""
    if state not in BREAKER_STATES:
        raise ValueError(f"unknown breaker state {state!r}: one of {', '.join(BREAKER_STATES)}")
    BREAKER_STATE.labels(dependency).set(BREAKER_STATES[state])


breaker.on_change(set_breaker_state)  # every breaker of this process, as it moves


def declare_breakers(*dependencies: str) -> None:
    """Give each dependency's breaker a series (closed) unless this process has set one, so
    a scrape shows every breaker of the network before any of them has moved."""
    for dependency in dependencies:
        BREAKER_STATE.labels(dependency)


class _Live:
    """A collector of values read at scrape time (gauges from a COUNT, queue depths)."""

    def __init__(self, metrics: Iterable[Metric]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterable[Metric]:
        return self.metrics


def exposition(live: Iterable[Metric] = ()) -> bytes:
    """The scrape: every process's values in multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`),
    else this process's registry; then the `live` metrics read for this scrape."""
    path = os.environ.get(MULTIPROC_ENV)
    if path:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=path)
    else:
        registry = REGISTRY
    scraped = CollectorRegistry(auto_describe=False)
    scraped.register(_Live(live))
    return generate_latest(registry) + generate_latest(scraped)


__all__ = [
    "BATCHES",
    "BREAKER_STATE",
    "BREAKER_STATES",
    "HTTP_IN_FLIGHT",
    "HTTP_SECONDS",
    "RATELIMIT_DECISIONS",
    "RATELIMIT_REDIS_UNAVAILABLE",
    "SEARCH_SECONDS",
    "TASK_RUNS",
    "TASK_SECONDS",
    "declare_breakers",
    "exposition",
    "set_breaker_state",
]

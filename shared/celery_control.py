"""What the admin views ask of Celery and its broker, each with a short timeout.

The API builds no network's Celery app (that needs the worker's settings): it talks to the
broker through a small client app per broker URL, configured to give up quickly
(`control_app`). Services call the functions here, never Celery itself:

- `ping_workers` / `inspect_workers`: which workers answer, and their active, reserved and
  scheduled tasks (Celery's remote control, waiting at most `timeout_s`; no worker is an
  answer, `{}`, not an error);
- `queue_depths`: with a Redis broker the `LLEN` of the queue's list plus its priority
  lists (`<queue>\\x06\\x16<n>`, n = 3, 6, 9); with RabbitMQ a passive `queue_declare`;
- `broker_reachable`, `purge_queue`, `send_task`, `task_state`;
- `next_run`, `describe_schedule`: when a beat entry runs next, in words.

A broker that accepts connections but never answers can keep a call's thread busy past
its timeout (kombu retries a publish): at most `MAX_IN_FLIGHT` broker calls run at once per
process, and a call that finds none free within its timeout fails with `BrokerBusy`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import redis
from celery import Celery
from celery.result import AsyncResult
from celery.schedules import crontab
from celery.schedules import schedule as interval
from kombu import Connection
from redis.backoff import NoBackoff
from redis.retry import Retry

from shared.health import describe_error, run_concurrently

T = TypeVar("T")

#: kombu's separator and priority steps for Redis queues (kombu.transport.redis).
PRIORITY_SEP = "\x06\x16"
PRIORITY_STEPS = (3, 6, 9)
MAX_IN_FLIGHT = 8  # below the client app's connection pool, so a call never waits for one
INSPECTIONS = ("active", "reserved", "scheduled")

_slots = threading.BoundedSemaphore(MAX_IN_FLIGHT)


class BrokerBusy(RuntimeError):
    """Earlier broker calls of this process have not returned yet."""


def _bounded(call: Callable[[], T], timeout_s: float) -> T:
    """Run `call` once one of the `MAX_IN_FLIGHT` slots is free (waiting `timeout_s` at most)."""
    if not _slots.acquire(timeout=timeout_s):
        raise BrokerBusy(f"{MAX_IN_FLIGHT} earlier broker calls have not returned yet")
    try:
        return call()
    finally:
        _slots.release()


def is_redis(url: str) -> bool:
    return url.split("://", 1)[0] in {"redis", "rediss"}


def is_memory(url: str) -> bool:
    return url.startswith("memory://")


def masked(url: str) -> str:
    """The URL without its password (for replies and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _transport_options(timeout_s: float) -> dict[str, Any]:
    return {
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.2,
        "interval_max": 0.2,
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
    }


@cache
def control_app(broker: str, timeout_s: float) -> Celery:
    """A client app for `broker`: remote control, sending tasks, reading results."""
    backend = "cache+memory://" if is_memory(broker) else broker if is_redis(broker) else None
    app = Celery("ferry-control", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        broker_connection_timeout=timeout_s,
        broker_connection_retry=False,
        broker_connection_max_retries=1,
        broker_transport_options=_transport_options(timeout_s),
        redis_socket_timeout=timeout_s,
        redis_socket_connect_timeout=timeout_s,
        broker_pool_limit=MAX_IN_FLIGHT + 2,
        task_publish_retry_policy={
            "max_retries": 1,
            "interval_start": 0,
            "interval_step": 0.2,
            "interval_max": 0.2,
        },
    )
    return app


def _connection(broker: str, timeout_s: float) -> Connection:
    return Connection(
        broker, connect_timeout=timeout_s, transport_options=_transport_options(timeout_s)
    )


def broker_reachable(broker: str, timeout_s: float) -> None:
    """Connect to the broker once; raises if it cannot be reached within `timeout_s`."""

    def connect() -> None:
        with _connection(broker, timeout_s) as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout_s)
            if is_redis(broker):  # a connection alone proves little: ask it something
                conn.default_channel.client.ping()

    _bounded(connect, timeout_s)


def ping_workers(broker: str, timeout_s: float) -> dict[str, Any]:
    """{worker: reply} of every worker that answered a ping within `timeout_s`."""
    app = control_app(broker, timeout_s)
    replies = _bounded(lambda: app.control.ping(timeout=timeout_s), timeout_s) or []
    return {name: reply for item in replies for name, reply in item.items()}


def _task_brief(item: dict[str, Any]) -> dict[str, Any]:
    """What a view shows of one task an inspect reply lists (never its arguments)."""
    request = item.get("request", item)  # scheduled tasks wrap theirs with eta and priority
    started = request.get("time_start")
    return {
        "id": request.get("id"),
        "name": request.get("name") or request.get("type"),
        "started_at": (
            datetime.fromtimestamp(started, tz=UTC).isoformat()
            if isinstance(started, int | float)
            else None
        ),
        "eta": item.get("eta"),
        "worker_pid": request.get("worker_pid"),
    }


def inspect_workers(broker: str, timeout_s: float) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Every answering worker with its active, reserved and scheduled tasks, and what could
    not be asked. The four questions go out at once: the wait is `timeout_s`, not four."""
    app = control_app(broker, timeout_s)

    def asker(what: str) -> Callable[[], Any]:
        def ask() -> Any:
            if what == "ping":
                return ping_workers(broker, timeout_s)
            inspect = app.control.inspect(timeout=timeout_s)
            return _bounded(getattr(inspect, what), timeout_s) or {}

        return ask

    outcomes = run_concurrently(
        {what: asker(what) for what in ("ping", *INSPECTIONS)}, timeout_s + 1.0
    )
    errors = []
    workers: dict[str, dict[str, Any]] = {}
    for what, outcome in outcomes.items():
        if not outcome.ok:
            problem = "no answer in time" if outcome.timed_out else describe_error(outcome.error)
            errors.append(f"{what}: {problem}")
            continue
        for name, value in (outcome.value or {}).items():
            entry = workers.setdefault(name, {k: [] for k in INSPECTIONS})
            if what != "ping":
                entry[what] = [_task_brief(t) for t in value or []]
    return workers, errors


def queue_depth(broker: str, queue: str, timeout_s: float) -> int:
    """Messages waiting in `queue` (see the module's docstring for how)."""
    if is_redis(broker):
        client = redis.Redis.from_url(
            broker,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        try:
            with client.pipeline(transaction=False) as pipe:
                pipe.llen(queue)
                for step in PRIORITY_STEPS:
                    pipe.llen(f"{queue}{PRIORITY_SEP}{step}")
                return sum(_bounded(pipe.execute, timeout_s))
        finally:
            client.close()

    def declare() -> int:
        with _connection(broker, timeout_s) as conn:
            try:
                return conn.default_channel.queue_declare(queue=queue, passive=True).message_count
            except conn.channel_errors:  # not declared yet: nothing waits in it
                return 0

    return _bounded(declare, timeout_s)


def queue_depths(broker: str, queues: Iterable[str], timeout_s: float) -> dict[str, Any]:
    """{queue: depth} for each queue, or {queue: "error text"} where it could not be read."""
    outcomes = run_concurrently(
        {q: (lambda q=q: queue_depth(broker, q, timeout_s)) for q in queues}, timeout_s + 1.0
    )
    return {
        q: o.value if o.ok else ("no answer in time" if o.timed_out else describe_error(o.error))
        for q, o in outcomes.items()
    }


def purge_queue(broker: str, queue: str, timeout_s: float) -> int:
    """Delete every message waiting in `queue`; how many there were."""

    def purge() -> int:
        with _connection(broker, timeout_s) as conn:
            try:
                return conn.default_channel.queue_purge(queue) or 0
            except conn.channel_errors:  # never declared: nothing to purge
                return 0

    return _bounded(purge, timeout_s)


def send_task(broker: str, name: str, queue: str, timeout_s: float) -> str:
    """Enqueue task `name` (no arguments) on `queue`; its task id."""
    app = control_app(broker, timeout_s)
    return _bounded(lambda: app.send_task(name, queue=queue).id, timeout_s)


def task_state(broker: str, task_id: str, timeout_s: float) -> tuple[str, Any]:
    """(state, result) from the result backend: PENDING for an id it does not know."""
    result = AsyncResult(task_id, app=control_app(broker, timeout_s))

    def read() -> tuple[str, Any]:
        meta = result.backend.get_task_meta(task_id)
        return meta.get("status", "PENDING"), meta.get("result")

    return _bounded(read, timeout_s)


def next_run(entry_schedule: Any, last_run_at: datetime | None, now: datetime) -> datetime:
    """When beat runs an entry next: the first due time after its last run (in the past if
    it is late), or after `now` for an entry that never ran."""
    if isinstance(entry_schedule, timedelta | int | float):
        entry_schedule = interval(entry_schedule)
    remaining = entry_schedule.remaining_estimate(last_run_at or now)
    due = _now_of(entry_schedule, now) + remaining
    return (due + timedelta(microseconds=500_000)).replace(microsecond=0)


def _now_of(entry_schedule: Any, now: datetime) -> datetime:
    """The schedule's own clock (what `remaining_estimate` measured from), as aware UTC."""
    moment = entry_schedule.now()
    if moment.tzinfo is None:
        return moment.replace(tzinfo=now.tzinfo)
    return moment.astimezone(now.tzinfo)


def describe_schedule(entry_schedule: Any) -> str:
    """`cron */2 * * * *` or `every 120 s`."""
    if isinstance(entry_schedule, crontab):
        return "cron " + " ".join(
            str(getattr(entry_schedule, f"_orig_{f}"))
            for f in ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
        )
    if isinstance(entry_schedule, timedelta | int | float):
        entry_schedule = interval(entry_schedule)
    if isinstance(entry_schedule, interval):
        return f"every {entry_schedule.run_every.total_seconds():g} s"
    return str(entry_schedule)


__all__ = [
    "BrokerBusy",
    "broker_reachable",
    "control_app",
    "describe_schedule",
    "inspect_workers",
    "is_memory",
    "is_redis",
    "masked",
    "next_run",
    "ping_workers",
    "purge_queue",
    "queue_depth",
    "queue_depths",
    "send_task",
    "task_state",
]

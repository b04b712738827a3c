"""The probe framework (`shared.health`), what a task run keeps of its result, and when a
beat entry runs next. No services needed."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from celery.schedules import crontab

from shared.celery_control import describe_schedule, masked, next_run
from shared.health import (
    DEGRADED,
    DOWN,
    OK,
    Probe,
    degraded,
    ok,
    run_concurrently,
    run_probes,
    worst,
)
from shared.history import trim_counts


def test_worst_of_statuses():
    assert worst([]) == OK
    assert worst([OK, DEGRADED, OK]) == DEGRADED
    assert worst([DEGRADED, DOWN, OK]) == DOWN


def test_a_probe_that_does_not_answer_is_down_without_holding_the_others():
    release = threading.Event()

    def stuck():
        release.wait(30)
        return ok()

    def broken():
        raise ConnectionRefusedError("connection refused by 127.0.0.1:1")

    report = run_probes(
        [
            Probe("fast", lambda: ok(latency_ms=1), 5),
            Probe("full", lambda: degraded("disk nearly full", free_mb=3), 5),
            Probe("stuck", stuck, 0.2),
            Probe("broken", broken, 5),
        ]
    )
    # The report came back while the stuck probe was still waiting: it did not hold it.
    assert not release.is_set()
    release.set()
    by_name = {c.name: c for c in report.components}
    assert by_name["stuck"].status == DOWN and by_name["stuck"].timed_out
    assert by_name["stuck"].reason == "no answer within 0.2 s"
    assert by_name["stuck"].latency_ms is None
    assert by_name["broken"].status == DOWN and not by_name["broken"].timed_out
    assert by_name["broken"].reason.startswith("ConnectionRefusedError: connection refused")
    assert by_name["fast"].status == OK and by_name["fast"].details == {"latency_ms": 1}
    assert by_name["full"].status == DEGRADED and by_name["full"].reason == "disk nearly full"
    assert report.status == DOWN
    assert report.down == ["stuck", "broken"]
    assert [c.name for c in report.components] == ["fast", "full", "stuck", "broken"]
    assert report.states()["full"] == {"status": DEGRADED, "reason": "disk nearly full"}


def test_a_probe_that_returns_no_finding_is_down():
    report = run_probes([Probe("odd", lambda: "fine", 1)])
    assert report.status == DOWN
    assert "gave no finding" in report.components[0].reason


def test_run_concurrently_runs_the_calls_at_the_same_time():
    """Two calls that each wait for the other can only both finish if they run at once."""
    a, b = threading.Event(), threading.Event()

    def first():
        a.set()
        return b.wait(10)

    def second():
        b.set()
        return a.wait(10)

    outcomes = run_concurrently({"first": first, "second": second}, 10)
    assert outcomes["first"].value is True and outcomes["second"].value is True


def test_trim_counts_keeps_figures_not_payloads():
    result = {
        "requests": 3,
        "batches": [{"file": "x"}, {"file": "y"}],
        "status": "ok",
        "down": ["workers", "beat"],
        "files": [f"requests-{i}.jsonl" for i in range(20)],
        "nested": {"done": 2, "ids": ["a", "b", "c"]},
        "note": "n" * 500,
    }
    assert trim_counts(result) == {
        "requests": 3,
        "batches": 2,
        "status": "ok",
        "down": ["workers", "beat"],
        "files": 20,
        "nested": {"done": 2, "ids": 3},
        "note": "n" * 200,
    }
    assert trim_counts(None) is None
    assert trim_counts(7) == {"result": 7}
    huge = {"count": 5} | {f"text{i}": "v" * 200 for i in range(30)}
    assert trim_counts(huge) == {"count": 5}  # past 4 KiB only the numbers stay
    assert len(trim_counts({f"k{i}": i for i in range(100)})) == 32


def test_next_run_of_a_crontab_entry():
    now = datetime.now(UTC)
    every_two = crontab(minute="*/2")
    upcoming = next_run(every_two, None, now)
    assert now < upcoming <= now + timedelta(minutes=2)
    assert upcoming.minute % 2 == 0 and upcoming.second == 0
    # Last run five hours ago at an hourly entry: it was due long ago (it is late).
    hourly = crontab(minute=7)
    due = next_run(hourly, now - timedelta(hours=5), now)
    assert due < now and due.minute == 7
    assert describe_schedule(every_two) == "cron */2 * * * *"
    assert describe_schedule(hourly) == "cron 7 * * * *"


def test_next_run_of_an_interval_entry():
    now = datetime.now(UTC)
    assert next_run(timedelta(seconds=30), now - timedelta(seconds=10), now) > now
    assert describe_schedule(timedelta(seconds=90)) == "every 90 s"


def test_broker_urls_lose_their_password():
    assert masked("amqp://ferry:s3cret@rabbit:5672//") == "amqp://ferry:***@rabbit:5672//"
    assert masked("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"

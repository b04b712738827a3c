"""Task-run and health-sample history on real PostgreSQL (`shared.history`): house tasks
record their runs (and never fail because the database cannot take the record), samples say
what went down and since when, and trimming bounds both histories."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete, select

from request_network.models import HealthSample, TaskRun
from shared import history
from shared.celery_app import house_task, make_celery, record_runs_with
from shared.db import get_engine
from shared.health import Component, HealthReport, worst
from tests.request_network.request_api_helpers import closed_port

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def url(pg_urls):
    """The request database with no task runs before or after the test."""
    url = pg_urls["request"]
    with get_engine(url).begin() as conn:
        conn.execute(delete(TaskRun))
    yield url
    with get_engine(url).begin() as conn:
        conn.execute(delete(TaskRun))


def _app(database_url: str):
    app = make_celery("ferry-test", broker="memory://", eager=True, queue="test", beat={})
    record_runs_with(app, history.DatabaseRunRecorder(lambda: database_url, TaskRun))

    @house_task(app, "test.export", queue="test")
    def export() -> dict:
        return {"batches": [{"file": "a"}, {"file": "b"}], "requests": 7}

    @house_task(app, "test.broken", queue="test")
    def broken() -> dict:
        raise ValueError("the inbox is not a directory")

    return export, broken


def _runs(name: str) -> float:
    return REGISTRY.get_sample_value("ferry_task_runs_total", {"task": name, "outcome": "success"})


def test_house_tasks_record_their_runs(url):
    export, broken = _app(url)
    before = _runs("test.export") or 0.0
    sent = export.delay()
    assert sent.get() == {"batches": [{"file": "a"}, {"file": "b"}], "requests": 7}
    with pytest.raises(ValueError):
        broken.delay().get()

    with get_engine(url).connect() as conn:
        rows = {r.name: r for r in conn.execute(select(TaskRun)).all()}
    ok = rows["test.export"]
    assert ok.outcome == "success" and ok.task_id == sent.id
    assert ok.counts == {"batches": 2, "requests": 7}
    assert ok.finished_at >= ok.started_at and ok.duration_ms >= 0 and ok.error is None
    failed = rows["test.broken"]
    assert failed.outcome == "failure"
    assert failed.error == "ValueError: the inbox is not a directory"
    assert _runs("test.export") == before + 1


def test_a_database_that_cannot_be_reached_never_breaks_the_task(caplog):
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/none"
    export, _ = _app(unreachable)
    with caplog.at_level(logging.WARNING, logger="ferry.tasks"):
        assert export.delay().get()["requests"] == 7
    assert "its start was not recorded" in caplog.text
    assert "its success was not recorded" in caplog.text


def _report(at: datetime, **statuses: str) -> HealthReport:
    components = [Component(n, s, f"{n} is {s}", 1.0, False, {}) for n, s in statuses.items()]
    return HealthReport(worst(statuses.values()), "test", at, components)


def test_samples_say_what_went_down_and_since_when(rq_session):
    t0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    step = timedelta(minutes=2)
    first = history.record_sample(
        rq_session, HealthSample, _report(t0, database="down", workers="ok", redis="ok")
    )
    assert first.newly_down == ["database"] and first.recovered == []
    second = history.record_sample(
        rq_session, HealthSample, _report(t0 + step, database="ok", workers="down", redis="ok")
    )
    assert second.newly_down == ["workers"] and second.recovered == ["database"]
    history.record_sample(
        rq_session, HealthSample, _report(t0 + 2 * step, database="ok", workers="down", redis="ok")
    )
    last = history.record_sample(
        rq_session,
        HealthSample,
        _report(t0 + 3 * step, database="ok", workers="down", redis="down"),
    )
    assert last.down == ["redis", "workers"] and last.newly_down == ["redis"]

    since = history.components_down_since(rq_session, HealthSample, page=2)
    assert since == {"workers": t0 + step, "redis": t0 + 3 * step}


def test_nothing_is_down_without_samples(rq_session):
    assert history.components_down_since(rq_session, HealthSample) == {}


def test_trim_bounds_both_histories(rq_session):
    now = datetime.now(UTC)

    def run(name: str, age: timedelta, outcome: str = "success") -> None:
        rq_session.add(TaskRun(name=name, started_at=now - age, outcome=outcome))

    for i in range(15):
        run("request.export_requests", timedelta(minutes=i))
    run("request.export_requests", timedelta(days=20))
    run("request.flag_unacked", timedelta(days=20))
    run("request.import_batches", timedelta(hours=3), outcome="started")
    run("request.import_batches", timedelta(minutes=1), outcome="started")
    rq_session.add(HealthSample(at=now - timedelta(days=8), status="ok", components={}))
    rq_session.add(HealthSample(at=now - timedelta(days=1), status="ok", components={}))
    rq_session.flush()

    counts = history.trim(
        rq_session,
        task_model=TaskRun,
        sample_model=HealthSample,
        task_days=14,
        task_runs_per_name=10,
        sample_days=7,
        now=now,
    )
    assert counts == {"task_runs_lost": 1, "task_runs_trimmed": 7, "health_samples_trimmed": 1}
    kept = rq_session.execute(select(TaskRun.name, TaskRun.outcome)).all()
    assert sum(1 for name, _ in kept if name == "request.export_requests") == 10
    assert not any(name == "request.flag_unacked" for name, _ in kept)
    assert sorted(o for n, o in kept if n == "request.import_batches") == ["lost", "started"]
    assert len(rq_session.execute(select(HealthSample.id)).all()) == 1

"""Celery's side of the house logging (shared/task_logging.py): a task's lines carry its name
and id, and only while it runs; a worker's or beat's logging set-up keeps the house handler
instead of installing Celery's own."""

from __future__ import annotations

import logging

import pytest
from celery.app.log import Logging

from shared.celery_app import house_task, make_celery
from shared.logs import HANDLER, get_logger
from tests.shared.logging_support import captured_logs

std = logging.getLogger("ferry.test.tasks")
QUEUE = "logging-test"


@pytest.fixture
def app():
    return make_celery("ferry-logging-test", broker="memory://", eager=True, queue=QUEUE, beat={})


def test_a_task_run_binds_its_name_and_id_to_its_lines(app) -> None:
    @house_task(app, "test.noted", queue=QUEUE)
    def noted(n: int) -> dict[str, int]:
        std.info("working on %d", n)
        get_logger("ferry.test.tasks").info("structlog too", n=n)
        return {"n": n}

    with captured_logs() as logs:
        result = noted.apply(args=(3,))
        std.info("after the task")
    assert result.get() == {"n": 3}
    lines = [line for line in logs.lines() if line["logger"].startswith("ferry.")]
    during = [line for line in lines if line["event"] != "after the task"]
    events = [line["event"] for line in during]
    assert "working on 3" in events and "structlog too" in events
    assert "task test.noted started" in events  # the house decorator's own lines too
    assert "task test.noted done: {'n': 3}" in events
    for line in during:
        assert (line["task_name"], line["task_id"]) == ("test.noted", result.id), line
    after = next(line for line in lines if line["event"] == "after the task")
    assert "task_id" not in after and "task_name" not in after


def test_a_task_run_inside_another_gives_the_outer_one_its_id_back(app) -> None:
    @house_task(app, "test.inner", queue=QUEUE)
    def inner() -> None:
        std.info("inner work")

    @house_task(app, "test.outer", queue=QUEUE)
    def outer() -> str:
        inner_id = inner.apply().id
        std.info("outer again")
        return inner_id

    with captured_logs() as logs:
        result = outer.apply()
    by_event = {line["event"]: line for line in logs.lines()}
    assert by_event["inner work"]["task_id"] == result.get()
    assert by_event["outer again"]["task_id"] == result.id
    assert by_event["outer again"]["task_name"] == "test.outer"


def test_a_worker_keeps_the_house_handler_and_takes_its_level(app, monkeypatch) -> None:
    for name in ("_MP_FORK_LOGLEVEL_", "_MP_FORK_LOGFILE_", "_MP_FORK_LOGFORMAT_"):
        monkeypatch.setenv(name, "")  # Celery writes these; they are put back afterwards
    root = logging.getLogger()
    with captured_logs(level="INFO") as logs:
        handlers = list(root.handlers)
        try:
            app.log.setup_logging_subsystem(loglevel="DEBUG")  # what a worker and beat do
        finally:
            Logging._setup = False
        assert root.handlers == handlers
        assert [h.get_name() for h in root.handlers].count(HANDLER) == 1
        assert root.level == logging.DEBUG
        logging.getLogger("celery.worker.consumer").debug("celery@host ready.")
    assert [line["event"] for line in logs.lines()] == ["celery@host ready."]

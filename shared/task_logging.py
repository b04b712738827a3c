"""Celery's side of the house logging (docs/OPERATIONS.md, "Logs").

Workers and beat keep the house handler and format (`shared.logs`) instead of Celery's own
(its `setup_logging` signal, answered here, tells it so), and every line a task writes while
it runs carries `task_name` and `task_id`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextvars import Token
from typing import Any

from celery import signals
from structlog.contextvars import bind_contextvars, reset_contextvars, unbind_contextvars

from shared.logs import HANDLER, configure_logging, set_level

_bound: dict[str, Mapping[str, Token[Any]]] = {}


def _setup_logging(loglevel: int | str | None = None, **_: Any) -> None:
    """Celery's logging set-up of a worker or beat: the house handler at `--loglevel`."""
    level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else loglevel
    level = str(level).upper() if level and level != "NOTSET" else None
    if any(h.get_name() == HANDLER for h in logging.getLogger().handlers):
        if level:
            set_level(level)  # the format chosen already (FERRY_<NET>_LOG_FORMAT) stays
    else:
        configure_logging(level)


def _task_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    _bound[str(task_id)] = bind_contextvars(task_name=getattr(task, "name", None), task_id=task_id)


def _task_done(task_id: str | None = None, **_: Any) -> None:
    tokens = _bound.pop(str(task_id), None)
    if tokens is None:
        return
    try:
        reset_contextvars(**tokens)
    except ValueError:  # ended in another context than it started in
        unbind_contextvars(*tokens)


def install() -> None:
    """Connect the handlers above (once per process, whatever the number of Celery apps)."""
    signals.setup_logging.connect(_setup_logging, weak=False, dispatch_uid="ferry.logs")
    signals.task_prerun.connect(_task_started, weak=False, dispatch_uid="ferry.logs.started")
    signals.task_postrun.connect(_task_done, weak=False, dispatch_uid="ferry.logs.done")

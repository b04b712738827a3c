"""Reloading a process's local settings on SIGHUP (docs/OPERATIONS.md, "Reloading local
settings (SIGHUP)").

Local settings come from the environment and from the env file FERRY_<NET>_ENV_FILE names,
if any (`shared.settings.FerrySettings`). A running process's environment cannot change
from outside, so the env file is how an operator changes a value without a restart.

`reread` reads both again and compares with the settings in force. The keys the settings
class lists in `LIVE` (log level, timeouts, limits, thresholds, page sizes) take their new
values at once, the log level included (`shared.logs.set_level`). Any other key that changed
(secrets, URLs, directories, values fixed at start) keeps its old value, and one WARNING
names them: they need a restart. Settings that do not validate are refused whole: one ERROR
names the keys and the settings in force stay. Logs name keys, never values, except at
DEBUG the new values of live keys (never a secret: tests/shared/test_reload.py).

Where SIGHUP arrives:

* an API process (`serve`, one process): `reloading_on_sighup`, in the app's lifespan,
  swaps `app.state.settings` and the process's `get_settings()` in one step on the event
  loop. Requests in flight finish with the settings they started with; the next ones get
  the new. Nothing is dropped: no connection, worker or pool is touched.
* `serve --workers N`: uvicorn's supervisor takes SIGHUP and replaces its workers one at a
  time, each replacement serving before the worker it replaces stops (uvicorn >= 0.51). The
  new workers read every setting afresh; a replacement whose settings do not validate never
  starts, and the old workers keep serving.
* a Celery worker: Celery answers SIGHUP with a warm restart (running tasks finish, then the
  same command runs again and reads every setting afresh). `check_before_restart` lets that
  happen only when the new settings validate, so a bad value cannot stop the worker.
* Celery beat has no SIGHUP handling of its own (the signal would end it):
  `restart_on_sighup` gives it the same checked restart, through its SIGTERM (which saves
  its schedule state) and the same command again.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import ValidationError

from shared.logs import set_level

log = logging.getLogger("ferry.reload")

S = TypeVar("S")
_FIELD = re.compile(r'field "(?P<key>[^"]+)"')  # pydantic-settings' SettingsError names one


@dataclass(frozen=True)
class Reload:
    """What one re-read did."""

    settings: Any  # the settings in force now (the old object when nothing applied)
    applied: tuple[str, ...] = ()  # live keys whose new values are in force
    held: tuple[str, ...] = ()  # changed keys that need a restart: their old values stay
    refused: tuple[str, ...] = ()  # keys whose new values did not validate: nothing applied


class Refused(ValueError):
    """New settings that do not validate; `problems` holds (key, reason) pairs, no values."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{key}: {why}" for key, why in problems))

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(key for key, _ in self.problems))


def _problems(exc: Exception) -> list[tuple[str, str]]:
    if isinstance(exc, ValidationError):
        return [
            (".".join(str(part) for part in error["loc"]) or "settings", error["msg"])
            for error in exc.errors(include_url=False, include_input=False)
        ]
    found = _FIELD.search(str(exc))
    return [(found["key"] if found else "settings", str(exc))]


def read_fresh(cls: type[S]) -> S:
    """`cls` read again from the environment and its env file; `Refused` when invalid."""
    try:
        return cls()
    except (ValueError, OSError) as exc:  # ValidationError and SettingsError are ValueErrors
        raise Refused(_problems(exc)) from None


def changed_keys(current: Any, fresh: Any) -> list[str]:
    return [k for k in type(current).model_fields if getattr(current, k) != getattr(fresh, k)]


def merge(current: S, fresh: S) -> Reload:
    """The settings in force after taking `fresh`'s live keys into `current` (validated
    together, so a rule across keys still holds); the other changed keys are held."""
    cls = type(current)
    changed = changed_keys(current, fresh)
    applied = tuple(k for k in changed if k in cls.LIVE)  # type: ignore[attr-defined]
    held = tuple(k for k in changed if k not in applied)
    if not applied:
        return Reload(current, held=held)
    values = {k: getattr(current, k) for k in cls.model_fields}  # type: ignore[attr-defined]
    values |= {k: getattr(fresh, k) for k in applied}
    try:
        merged = cls.model_validate(values)  # type: ignore[attr-defined]
    except ValidationError as exc:
        raise Refused(_problems(exc)) from None
    return Reload(merged, applied=applied, held=held)


def reread(current: S) -> Reload:
    """Read the settings again, apply the live keys and the log level, log the outcome."""
    try:
        result = merge(current, read_fresh(type(current)))
    except Refused as refused:
        log.error(
            "settings reload refused, the settings in force stay: %s (nothing applied)",
            refused,
        )
        return Reload(current, refused=refused.keys)
    settings = result.settings
    set_level(settings.log_level)  # type: ignore[attr-defined]
    if result.applied:
        log.info("settings reloaded: %s now in force", ", ".join(result.applied))
        for key in result.applied:
            log.debug("settings reload: %s = %r", key, getattr(settings, key))
    elif not result.held:
        log.info("settings reloaded: nothing changed")
    if result.held:
        log.warning(
            "settings reload: %s changed but apply only after a restart; "
            "the values in force stay until then",
            ", ".join(result.held),
        )
    return result


@asynccontextmanager
async def reloading_on_sighup(
    app: Any, publish: Callable[[Any], None] = lambda settings: None
) -> AsyncIterator[None]:
    """For an app's lifespan: while it runs, SIGHUP re-reads its settings (`reread`) and
    puts the result in `app.state.settings` and, through `publish`, in the process's
    `get_settings()`. A process that installs the handler also takes its settings' log
    level at start (a worker of `serve --workers N` reads its own settings, perhaps newer
    than its supervisor's). Where no handler can be installed (not the main thread, as under
    a test client; no SIGHUP on the platform) the app runs without one, levels untouched."""
    loop = asyncio.get_running_loop()

    def on_sighup() -> None:
        result = reread(app.state.settings)
        if result.settings is not app.state.settings:
            app.state.settings = result.settings
            publish(result.settings)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_sighup)
        installed = True
    except (AttributeError, NotImplementedError, RuntimeError, ValueError):
        installed = False
    if installed:
        set_level(app.state.settings.log_level)
        log.debug("process %d reloads its local settings on SIGHUP", os.getpid())
    try:
        yield
    finally:
        if installed:
            loop.remove_signal_handler(signal.SIGHUP)


def restart_if_valid(current: Any, restart: Callable[[], None]) -> bool:
    """Call `restart` if the settings read again validate; else log an ERROR naming the
    keys and keep running. Logs which keys the restart applies (names, never values)."""
    try:
        fresh = read_fresh(type(current))
    except Refused as refused:
        log.error("SIGHUP: settings refused, no restart; the settings in force stay: %s", refused)
        return False
    changed = changed_keys(current, fresh)
    log.info("SIGHUP: restarting to apply %s", ", ".join(changed) or "the settings (none changed)")
    restart()
    return True


def _in_a_thread(check: Callable[[], Any]) -> Callable[[int, Any], None]:
    """A signal handler that runs `check` in a thread of its own, not in the handler, so
    that logging never re-enters a stream the interrupted code was writing."""

    def on_signal(signum: int, frame: Any) -> None:
        threading.Thread(target=check, name="ferry-sighup", daemon=True).start()

    return on_signal


def check_before_restart(current: Any) -> None:
    """In a Celery worker: once it is ready, its SIGHUP re-reads the settings first and lets
    Celery's own warm restart go ahead only if they validate (`restart_if_valid`).

    Celery installs its restart handler only when the worker is not attached to a terminal
    (closing a terminal must not restart a worker into the background); when it has not,
    SIGHUP is left as it is.
    """
    from celery import platforms, signals

    def wrap(**_: Any) -> None:
        celery_restart = platforms.signals["SIGHUP"]
        if not callable(celery_restart):
            return

        def restart() -> None:
            celery_restart(signal.SIGHUP, None)

        platforms.signals["SIGHUP"] = _in_a_thread(lambda: restart_if_valid(current, restart))

    signals.worker_ready.connect(wrap, weak=False)


def restart_on_sighup(current: Any) -> None:
    """For Celery beat: SIGHUP re-reads the settings and, if they validate, ends the process
    as SIGTERM does (beat saves its schedule state) and runs the same command again in its
    place, with the same process id, as Celery restarts a worker."""

    def again() -> None:
        os.execv(sys.executable, [sys.executable, *sys.argv])  # noqa: S606 - our own command

    def restart() -> None:
        atexit.register(again)
        os.kill(os.getpid(), signal.SIGTERM)

    signal.signal(signal.SIGHUP, _in_a_thread(lambda: restart_if_valid(current, restart)))

"""Governed settings on the request network: what the authority sent, and the value in force.

The response network is their authority (DESIGN.md §9): its `setting` records arrive on the
`settings` stream (`arrivals.apply_settings`) into `governed_settings`, and here they cannot
be changed (`refuse_change`: 409). The value in force of each key is the governed value when
the authority has set one, else this deployment's own setting, else the default
(`shared.governed.resolve`).

Every process keeps a view of the table (`in_force`) and checks, at most once a second, a
stamp in Redis that the import sets after each commit that applied settings (`watch_commits`,
`note_change`); when the stamp changed the view reloads from the database. Without Redis it
reloads from the database at most once a second. So a change applies everywhere within about
a second of its import's commit, without a restart. A stamp the import could not set (Redis
unreachable at that moment) is set by the next import unit of that process.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from redis import Redis, RedisError
from sqlalchemy import event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session

from request_network.models import GovernedSetting
from shared.cache import get_redis
from shared.db import reading
from shared.governed import REGISTRY, InForce, governed_values, resolve, safe_text
from shared.problems import Problem

__all__ = [
    "CHECK_EVERY",
    "View",
    "forget",
    "in_force",
    "list_settings",
    "note_change",
    "refuse_change",
    "stamp_key",
    "view_for",
    "warm",
    "watch_commits",
]

log = logging.getLogger("ferry.governed")

#: Seconds between two looks at the stamp (or, without Redis, at the database).
CHECK_EVERY = 1.0
STAMP_PREFIX = "ferry:governed:stamp:"

_CHANGED = "ferry_governed_changed"  # session.info: this transaction applied settings
_ANNOUNCE = "ferry_governed_announce"  # session.info: (Redis, stamp key) to set after commit
_UNKNOWN = object()  # the stamp when Redis could not be asked


def stamp_key(database_url: str) -> str:
    """The Redis key of one request database's stamp (by database name: one Redis may serve
    more than one database, e.g. test runs side by side)."""
    try:
        name = make_url(database_url).database or database_url
    except ArgumentError:
        name = database_url
    return STAMP_PREFIX + hashlib.sha256(name.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Received:
    """One stored row: the value the authority sent (None: not governed) and its arrival."""

    value: Any
    version: int
    received_at: datetime
    batch_id: str


@dataclass(frozen=True)
class Snapshot:
    rows: dict[str, Received]
    values: dict[str, Any]  # the governed values that apply (`shared.governed.governed_values`)


_EMPTY = Snapshot({}, {})


def _read(session: Session) -> Snapshot:
    rows = {
        r.key: Received(r.value, r.version, r.received_at, r.batch_id)
        for r in session.execute(
            select(
                GovernedSetting.key,
                GovernedSetting.value,
                GovernedSetting.version,
                GovernedSetting.received_at,
                GovernedSetting.batch_id,
            )
        )
    }
    return Snapshot(rows, governed_values({k: r.value for k, r in rows.items()}))


class View:
    """One process's view of one request database's governed settings (see the module)."""

    def __init__(
        self, database_url: str, redis_url: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.database_url, self.redis_url = database_url, redis_url
        self.key = stamp_key(database_url)
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None
        self._stamp: object = _UNKNOWN
        self._checked = float("-inf")
        self.loads = 0  # how many times it read the table (for tests and metrics)

    def _due(self) -> bool:
        return self._snapshot is None or self._clock() - self._checked >= CHECK_EVERY

    def snapshot(self, *, session: Session | None = None) -> Snapshot:
        """The rows in force, checked at most once a second. A reload reads through
        `session` when given (the caller's unit: no second connection), else its own."""
        held = self._snapshot
        if held is not None and not self._due():
            return held
        # One thread checks; the others read what is held meanwhile (if anything is).
        if not self._lock.acquire(blocking=held is None):
            return held  # type: ignore[return-value]
        try:
            if self._due():
                self._refresh(session)
            return self._snapshot or _EMPTY
        finally:
            self._lock.release()

    def _refresh(self, session: Session | None) -> None:
        stamp = self._read_stamp()
        if self._snapshot is None or stamp is _UNKNOWN or stamp != self._stamp:
            loaded = self._load(session)
            if loaded is None:
                stamp = _UNKNOWN  # try the database again at the next check
            else:
                self._snapshot = loaded
        self._stamp = stamp
        self._checked = self._clock()

    def _read_stamp(self) -> object:
        try:
            return get_redis(self.redis_url).get(self.key)
        except RedisError:
            return _UNKNOWN

    def _load(self, session: Session | None) -> Snapshot | None:
        self.loads += 1
        if session is not None:
            return _read(session)
        try:
            with reading(self.database_url) as own:
                return _read(own)
        except SQLAlchemyError as exc:
            log.warning("governed settings could not be read (%s); keeping what is held", exc)
            if self._snapshot is None:
                self._snapshot = _EMPTY  # the deployment's own settings, until it can read
            return None

    def stale(self) -> None:
        """Check again at the next read (this process applied a change)."""
        self._checked = float("-inf")


_VIEWS: dict[tuple[str, str], View] = {}
_VIEWS_LOCK = threading.Lock()


def view_for(settings: Any) -> View:
    key = (settings.database_url, settings.redis_url)
    view = _VIEWS.get(key)
    if view is None:
        with _VIEWS_LOCK:
            view = _VIEWS.setdefault(key, View(*key))
    return view


def forget() -> None:
    """Drop every view of this process (tests start from what the database holds)."""
    with _VIEWS_LOCK:
        _VIEWS.clear()


def in_force(settings: Any, *, session: Session | None = None) -> InForce:
    """The value in force of every key, and its source (governed, environment, default)."""
    return resolve(view_for(settings).snapshot(session=session).values, settings)


def warm(settings: Any) -> None:
    """Load the view before the first request needs it (an API process starting)."""
    try:
        view_for(settings).snapshot()
    except Exception as exc:  # noqa: BLE001 - a process starts whatever the database says
        log.warning("governed settings not loaded at start (%s); the next read tries", exc)


# -- after an import's commit ---------------------------------------------------------------

_PENDING: dict[str, Redis] = {}  # stamps this process could not set yet, by key


def watch_commits(session: Session, settings: Any) -> None:
    """Let `note_change` announce this session's commits: the stamp of the database is set
    after each commit that applied settings. The import unit calls this."""
    session.info[_ANNOUNCE] = (get_redis(settings.redis_url), stamp_key(settings.database_url))
    for key, cache in list(_PENDING.items()):
        _announce(cache, key)


def note_change(session: Session) -> None:
    """This transaction applies governed settings: announce them once it commits."""
    session.info[_CHANGED] = True


def _announce(cache: Redis, key: str) -> None:
    try:
        cache.set(key, uuid.uuid4().hex)
    except RedisError as exc:
        _PENDING[key] = cache
        log.warning("governed settings: stamp not set (%s); the next import sets it", exc)
    else:
        _PENDING.pop(key, None)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if not session.info.pop(_CHANGED, False):
        return
    for view in list(_VIEWS.values()):
        view.stale()
    target = session.info.get(_ANNOUNCE)
    if target is not None:
        _announce(*target)


@event.listens_for(Session, "after_soft_rollback")
def _after_rollback(session: Session, _previous) -> None:
    session.info.pop(_CHANGED, None)


# -- what admins see and may not do ---------------------------------------------------------


def list_settings(settings: Any, *, session: Session) -> list[dict[str, Any]]:
    """Every key: the value in force and its source, the version and arrival of what the
    authority sent, default, type, bounds and description. Read from the table (what
    every process applies within a second)."""
    snap = _read(session)
    now = resolve(snap.values, settings)
    items = []
    for key, entry in REGISTRY.items():
        row = snap.rows.get(key)
        items.append(
            {
                "key": key,
                "value": now.values[key],
                "source": now.sources[key],
                "governed_value": row.value if row is not None else None,
                "version": row.version if row is not None else None,
                "received_at": row.received_at if row is not None else None,
                "batch_id": row.batch_id if row is not None else None,
                "default": entry.default,
                "type": entry.type,
                **entry.bounds(),
                "description": entry.description,
            }
        )
    return items


def refuse_change(keys: list[str]) -> NoReturn:
    """Governed settings change on the response network only: always a 409."""
    shown = [safe_text(k, 128) for k in keys[:20]]
    raise Problem(
        409,
        "Conflict",
        "governed by the response network: settings change only there (PUT "
        "/api/v1/admin/settings or `ferry response settings set`), and its next settings "
        "export brings the change here",
        errors=[
            {"loc": f"body.values.{key}", "msg": "governed by the response network"}
            for key in shown
        ],
    )

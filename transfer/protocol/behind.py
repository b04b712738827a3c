"""Write-behind: PostgreSQL works on one bulk statement while Python prepares the next.

An export or import alternates Python work (encoding or verifying records) with database
work (one bulk statement per chunk); done one after the other, each waits for the other.
Inside ``write_behind(session)`` a statement sent with ``defer=True`` (see
`transfer.protocol.bulk.pg_execute`) runs in one helper thread on the session's own connection, in
the same transaction, while the caller goes on. psycopg serialises every use of a
connection, so anything else the caller sends waits its turn; deferred statements run in
the order they were sent, one at a time, and a non-deferred bulk statement waits for them
first. Leaving the block waits for the last one, so the caller commits (or rolls back) only
once the connection is idle; an error in a deferred statement is raised there (or at the
next deferred send).

The helper thread touches only the psycopg connection, never the SQLAlchemy session. SQLite
gets no helper: statements run at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

__all__ = ["WriteBehind", "current", "write_behind"]

_KEY = "ferry_write_behind"


class WriteBehind:
    """At most one deferred statement in flight, run by one helper thread."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ferry-write-behind")
        self._pending: Future | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` once the previous deferred work is done; do not wait for it."""
        self.wait()
        self._pending = self._pool.submit(fn, *args)

    def wait(self) -> None:
        """Block until the deferred work is done; raise its error, if any."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)


def current(session: Session) -> WriteBehind | None:
    return session.info.get(_KEY)


@contextmanager
def write_behind(session: Session) -> Iterator[None]:
    """Let bulk statements of this block run behind the caller (PostgreSQL only)."""
    if session.get_bind().dialect.name != "postgresql" or current(session) is not None:
        yield
        return
    behind = session.info[_KEY] = WriteBehind()
    try:
        yield
    except BaseException as exc:
        session.info.pop(_KEY, None)
        try:
            behind.close()  # the connection must be idle before the caller rolls back
        except Exception as deferred:
            if isinstance(exc, psycopg.Error | DBAPIError):
                raise deferred from exc  # the caller's statement failed because this one did
        raise
    session.info.pop(_KEY, None)
    behind.close()

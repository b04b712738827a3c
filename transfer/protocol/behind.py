"""Write-behind: PostgreSQL works on the bulk statements while Python prepares the next.

An export or import alternates Python work (encoding or verifying records) with database
work (a few bulk statements per chunk); done one after the other, each waits for the
other. Inside ``write_behind(session)`` a statement sent with ``defer=True`` (see
`transfer.protocol.bulk.pg_execute`) runs in one helper thread on the session's own
connection, in the same transaction, while the caller goes on: a chunk's writes queue up
(`DEPTH` at most) while the caller reads the next chunk. psycopg serialises every use of a
connection, so anything else the caller sends waits its turn; deferred statements run in
the order they were sent, one at a time, and a non-deferred bulk statement waits for them
first. Once one fails, those queued after it are dropped. Leaving the block waits for the
last one, so the caller commits (or rolls back) only once the connection is idle; an error
in a deferred statement is raised there (or at the next deferred send or wait).

The helper thread touches only the psycopg connection, never the SQLAlchemy session. SQLite
gets no helper: statements run at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

__all__ = ["WriteBehind", "current", "write_behind"]

_KEY = "ferry_write_behind"
DEPTH = 8  # deferred statements queued at most: an import chunk's writes, a few export marks


class WriteBehind:
    """Deferred statements run in order by one helper thread; at most `depth` wait at once
    (each holds its chunk's parameters, so memory stays bounded)."""

    def __init__(self, depth: int = DEPTH) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ferry-write-behind")
        self._pending: deque[Future] = deque()
        self._depth = depth
        self._failed: BaseException | None = None

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` after the deferred work before it; do not wait for it (only,
        with `depth` statements already waiting, for the oldest)."""
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        if self._failed is not None:
            self.wait()  # raises the failure
        self._pending.append(self._pool.submit(self._run, fn, args))

    def _run(self, fn: Callable[..., Any], args: tuple) -> None:
        if self._failed is not None:
            return  # the transaction is lost: what was queued after the failure never runs
        try:
            fn(*args)
        except BaseException as exc:  # kept for the caller's thread (`wait`)
            self._failed = exc

    def wait(self) -> None:
        """Block until the deferred work is done; raise the first error, if any."""
        while self._pending:
            self._pending.popleft().result()
        failed, self._failed = self._failed, None
        if failed is not None:
            raise failed

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

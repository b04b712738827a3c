"""Many rows per statement, for the exchange's import and export paths.

The same calls work on PostgreSQL and SQLite; each takes the caller's session and never
commits. On PostgreSQL the hot paths (`insert_new`, `insert_rows`, `update_in`) send each
column as one binary array (`transfer.protocol.pgarrays`), and the statements that return
nothing may run behind the caller (`transfer.protocol.behind`). SQLite gets plain
executemany statements, IN lists kept under its variable limit.

Bulk statements bypass the ORM: rows of `model` already loaded in the session are expired
(`expire_loaded`) so they are read again rather than served stale.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from psycopg import sql
from sqlalchemy import (
    DateTime,
    Engine,
    Select,
    Table,
    delete,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from transfer.protocol.pgarrays import (
    Columns,
    pg_array,
    pg_assignments,
    pg_execute,
    pg_unnest,
    pg_value,
)

__all__ = [
    "CHUNK",
    "Columns",
    "chunked",
    "collector_paused",
    "existing_keys",
    "expire_loaded",
    "insert_new",
    "insert_rows",
    "is_postgres",
    "pg_assignments",
    "pg_execute",
    "update_in",
    "upsert_newer",
    "wire_time",
]

CHUNK = 5_000  # rows per statement
_SQLITE_IN = 500  # values per IN list on SQLite (its default variable limit is 32 766)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off for one batch's worth of bulk work.

    A chunk of records lives long enough to be promoted to the older generations, so the
    collector keeps scanning it, and every other object of the process, while the next
    chunk is built: 0.7 s of a 2.4 s import of 100,000 requests (docs/PERFORMANCE.md).
    Reference cycles made in the block wait for the collector until it ends; one batch
    bounds them. Reference counting frees everything else as usual.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def stream_rows(
    session: Session,
    base: Select,
    order: tuple[Any, Any],
    *,
    limit: int | None,
    page: int,
    lock: bool = True,
) -> Iterator[Any]:
    """The rows of `base`, in `order` (a time column, then a unique key), a page at a time.

    PostgreSQL: one server-side cursor with `FOR UPDATE SKIP LOCKED`, so two exporters never
    take the same row (statements marking earlier rows run between fetches; the cursor's
    snapshot does not see them). ``lock=False`` leaves the rows unlocked (a row lock is a
    write to every row read), for a caller whose marking statement itself skips a row
    changed since it was read; the rows are then read over a connection of their own, so
    reading the next rows never waits for the caller's statements (they see the committed
    rows, as the caller's own cursor would: its snapshot predates the caller's marks).
    SQLite: keyset pages, so no statement stays open while rows change.
    """
    base = base.order_by(*order)
    if is_postgres(session):
        stmt = base.with_for_update(skip_locked=True) if lock else base
        if limit is not None:
            stmt = stmt.limit(limit)
        stmt = stmt.execution_options(yield_per=page)
        bind = session.get_bind()
        if lock or not isinstance(bind, Engine):
            # Core rows (plain tuples), not the ORM's: a million rows cost seconds less.
            yield from _partitions(session.connection().execute(stmt))
            return
        with bind.connect() as reader:
            yield from _partitions(reader.execute(stmt))
            reader.rollback()  # it only read
        return
    after: tuple | None = None
    left = limit
    while left is None or left > 0:
        size = page if left is None else min(page, left)
        stmt = base
        if after is not None:
            stmt = stmt.where(order[0] >= after[0], tuple_(*order) > tuple_(*after))
        rows = session.execute(stmt.limit(size)).all()
        yield from rows
        if len(rows) < size:
            return
        after = tuple(getattr(rows[-1], column.key) for column in order)
        if left is not None:
            left -= len(rows)


def _partitions(result: Any) -> Iterator[Any]:
    for rows in result.partitions():
        yield from rows


def chunked(items: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def wire_time(moment: datetime) -> str:
    """A timestamp as record data carries it (what pydantic's JSON mode writes: UTC, ``Z``).

    Naive values (SQLite returns them) are UTC.
    """
    if moment.tzinfo is None:
        return moment.isoformat() + "Z"
    if moment.utcoffset():
        moment = moment.astimezone(UTC)
    return moment.isoformat()[:-6] + "Z"  # "+00:00" → "Z"


def expire_loaded(session: Session, model: type, keys: Iterable[Any]) -> None:
    """Expire the objects of ``model`` with these primary keys that the session holds."""
    identity_map = session.identity_map
    if not len(identity_map):
        return
    wanted = set(keys)
    for identity_key in list(identity_map.keys()):
        cls, pk = identity_key[0], identity_key[1]
        if issubclass(cls, model) and len(pk) == 1 and pk[0] in wanted:
            obj = identity_map.get(identity_key)
            if obj is not None:
                session.expire(obj)


def existing_keys(session: Session, table: Table, key: str, values: Sequence[Any]) -> set[Any]:
    """Which of ``values`` are already present in ``table.key``."""
    column = table.c[key]
    if is_postgres(session):
        query = sql.SQL("SELECT {key} FROM {table} WHERE {key} = ANY({values})").format(
            key=sql.Identifier(key), table=sql.Identifier(table.name), values=pg_array(column)
        )
        return {row[0] for row in pg_execute(session, query, [list(values)])}
    found: set[Any] = set()
    for part in chunked(values, _SQLITE_IN):
        found.update(session.execute(select(column).where(column.in_(part))).scalars())
    return found


def rows_by_key(
    session: Session, table: Table, key: str, values: Sequence[Any], columns: Sequence[str]
) -> dict[Any, tuple]:
    """``columns`` of the rows of ``table`` whose ``key`` is one of ``values``, by key."""
    column = table.c[key]
    if is_postgres(session):
        query = sql.SQL("SELECT {key}, {columns} FROM {table} WHERE {key} = ANY({values})").format(
            key=sql.Identifier(key),
            columns=sql.SQL(", ").join(sql.Identifier(c) for c in columns),
            table=sql.Identifier(table.name),
            values=pg_array(column),
        )
        return {row[0]: tuple(row[1:]) for row in pg_execute(session, query, [list(values)])}
    found: dict[Any, tuple] = {}
    wanted = [table.c[c] for c in columns]
    for part in chunked(values, _SQLITE_IN):
        for row in session.execute(select(column, *wanted).where(column.in_(part))):
            found[row[0]] = tuple(row[1:])
    return found


def _dedupe(columns: Columns, key: str) -> Columns:
    """Only the first row of each key."""
    seen: set[Any] = set()
    keep = [i for i, k in enumerate(columns[key]) if not (k in seen or seen.add(k))]
    if len(keep) == len(columns[key]):
        return columns
    return {name: [values[i] for i in keep] for name, values in columns.items()}


def _sqlite_rows(table: Table, columns: Columns, same: dict[str, Any]) -> list[dict[str, Any]]:
    converters = {
        name: datetime.fromisoformat
        for name, values in columns.items()
        if isinstance(table.c[name].type, DateTime) and values and isinstance(values[0], str)
    }
    names = list(columns)
    rows = []
    for values in zip(*columns.values(), strict=True):
        row = dict(zip(names, values, strict=True))
        for name, convert in converters.items():
            if row[name] is not None:
                row[name] = convert(row[name])
        rows.append({**row, **same})
    return rows


def insert_new(
    session: Session,
    table: Table,
    columns: Columns,
    *,
    key: str,
    same: dict[str, Any] | None = None,
    returning: bool = True,
) -> list[Any]:
    """``INSERT … ON CONFLICT (key) DO NOTHING``; the keys of the rows that went in.

    Rows come column by column (`same`: columns with one value for every row). A key that
    repeats one earlier in the rows is dropped (the first wins), as is one the table already
    holds. ``returning=False`` skips collecting the keys (an empty list comes back).
    """
    if not columns[key]:
        return []
    same = same or {}
    columns = _dedupe(columns, key)
    if is_postgres(session):
        query, params = pg_unnest(table, columns, same)
        query = sql.SQL("{insert} ON CONFLICT ({key}) DO NOTHING").format(
            insert=query, key=sql.Identifier(key)
        )
        if returning:
            query = sql.SQL("{query} RETURNING {key}").format(query=query, key=sql.Identifier(key))
        rows = pg_execute(session, query, params, defer=not returning)
        return [r[0] for r in rows] if returning else []
    present = existing_keys(session, table, key, columns[key])
    fresh = [row for row in _sqlite_rows(table, columns, same) if row[key] not in present]
    if fresh:
        stmt = sqlite_insert(table).on_conflict_do_nothing(index_elements=[key])
        session.execute(stmt, fresh)
    return [row[key] for row in fresh] if returning else []


def insert_rows(
    session: Session, table: Table, columns: Columns, *, same: dict[str, Any] | None = None
) -> None:
    """A plain bulk ``INSERT`` of rows given column by column (see `insert_new`)."""
    same = same or {}
    if not next(iter(columns.values()), []):
        return
    if is_postgres(session):
        pg_execute(session, *pg_unnest(table, columns, same), defer=True)
        return
    session.execute(table.insert(), _sqlite_rows(table, columns, same))


def update_in(
    session: Session,
    table: Table,
    key: str,
    keys: Sequence[Any],
    values: dict[str, Any],
    *,
    defer: bool = False,
) -> None:
    """``UPDATE table SET values WHERE key IN keys``, in as few statements as the DB allows
    (``defer``: see `pg_execute`)."""
    if not keys:
        return
    column = table.c[key]
    if is_postgres(session):
        query = sql.SQL("UPDATE {table} SET {sets} WHERE {key} = ANY({keys})").format(
            table=sql.Identifier(table.name),
            sets=pg_assignments(values),
            key=sql.Identifier(key),
            keys=pg_array(column),
        )
        params = [pg_value(table.c[n], v) for n, v in values.items()]
        pg_execute(session, query, [*params, list(keys)], defer=defer)
        return
    for part in chunked(keys, _SQLITE_IN):
        session.execute(update(table).where(column.in_(part)).values(**values))


def delete_in(
    session: Session, table: Table, key: str, keys: Sequence[Any], *, defer: bool = False
) -> None:
    """``DELETE FROM table WHERE key IN keys`` (``defer``: see `pg_execute`)."""
    if not keys:
        return
    column = table.c[key]
    if is_postgres(session):
        query = sql.SQL("DELETE FROM {table} WHERE {key} = ANY({keys})").format(
            table=sql.Identifier(table.name), key=sql.Identifier(key), keys=pg_array(column)
        )
        pg_execute(session, query, [list(keys)], defer=defer)
        return
    for part in chunked(keys, _SQLITE_IN):
        session.execute(delete(table).where(column.in_(part)))


def upsert_newer(
    session: Session,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    key: str,
    version: str = "version",
) -> None:
    """Insert, or overwrite a row only with a higher ``version``: an older one never wins.

    Of several rows with one key the highest version is kept (the first of equals), so one
    statement never touches a row twice.
    """
    best: dict[Any, dict[str, Any]] = {}
    for row in rows:
        held = best.get(row[key])
        if held is None or row[version] > held[version]:
            best[row[key]] = row
    if not best:
        return
    rows = list(best.values())
    make = pg_insert if is_postgres(session) else sqlite_insert
    stmt = make(table)
    changed = {name: stmt.excluded[name] for name in rows[0] if name != key}
    stmt = stmt.on_conflict_do_update(
        index_elements=[key],
        set_=changed,
        where=table.c[version] < stmt.excluded[version],
    )
    for part in chunked(rows, 1_000):
        session.execute(stmt, part)

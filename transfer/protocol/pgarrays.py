"""PostgreSQL statements that send each column as one binary array (`transfer.protocol.bulk`
on PostgreSQL): building them (`pg_unnest`, `pg_array`, `pg_assignments`) and running them
in the session's transaction, possibly behind the caller (`pg_execute`).

The server `unnest`s the arrays: one round trip per chunk, the values adapted in C
(text-format arrays cost ~25x more to build).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from psycopg import sql
from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Integer, Table
from sqlalchemy.orm import Session

from transfer.protocol import behind

Columns = dict[str, list[Any]]  # column name → one value per row, every list as long


def pg_execute(
    session: Session, query: sql.Composable | str, params: Sequence[Any], *, defer: bool = False
) -> list[tuple]:
    """Run ``query`` (psycopg ``%b`` placeholders: binary parameters) in the session's
    transaction and return its rows.

    Pending ORM changes are flushed first, so the statement sees them. With ``defer=True``
    inside `transfer.protocol.behind.write_behind` the statement runs behind the caller and nothing
    is returned; otherwise deferred statements finish first, so statements keep their order.
    """
    session.flush()
    connection = session.connection().connection.driver_connection
    later = behind.current(session)
    if later is not None:
        if defer:
            later.submit(_run, connection, query, params)
            return []
        later.wait()
    return _run(connection, query, params)


def _run(connection, query: sql.Composable | str, params: Sequence[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall() if cursor.description is not None else []


def pg_array_type(column) -> str:
    kind = column.type
    if isinstance(kind, JSON):
        return "json"
    if isinstance(kind, DateTime):
        return "timestamptz" if kind.timezone else "timestamp"
    if isinstance(kind, BigInteger):
        return "int8"
    if isinstance(kind, Integer):
        return "int4"
    if isinstance(kind, Boolean):
        return "bool"
    return "text"


def pg_array(column) -> sql.SQL:
    """A binary parameter holding one column's values as an array of its type."""
    return sql.SQL(f"%b::{pg_array_type(column)}[]")


def sql_names(names: Iterable[str]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, names))


def pg_value(column, value: Any) -> Any:
    if value is not None and isinstance(column.type, JSON):
        return orjson.dumps(value).decode()
    return value


def pg_unnest(table: Table, columns: Columns, same: dict[str, Any]) -> tuple[sql.Composed, list]:
    """``INSERT INTO table (…) SELECT … FROM unnest(…)`` and its parameters.

    Timestamps given as ISO strings are sent as text and cast by the server; JSON values are
    serialised here; `same` values are sent once, not once per row.
    """
    arrays, casts = [], []
    for name, values in columns.items():
        column = table.c[name]
        kind = pg_array_type(column)
        if kind == "json":
            dumps = orjson.dumps
            values = [None if v is None else dumps(v).decode() for v in values]
        elif kind.startswith("timestamp") and any(isinstance(v, str) for v in values[:1]):
            casts.append(sql.SQL(f"CAST(%b::text[] AS {kind}[])"))
            arrays.append(values)
            continue
        casts.append(pg_array(column))
        arrays.append(values)
    names = [*columns, *same]
    fixed = [pg_value(table.c[n], v) for n, v in same.items()]
    query = sql.SQL(
        "INSERT INTO {table} ({names}) SELECT u.*{fixed} FROM unnest({arrays}) AS u"
    ).format(
        table=sql.Identifier(table.name),
        names=sql_names(names),
        fixed=sql.SQL("").join(sql.SQL(", %b") for _ in fixed),
        arrays=sql.SQL(", ").join(casts),
    )
    return query, [*fixed, *arrays]


def pg_assignments(values: dict[str, Any]) -> sql.Composed:
    """``"a" = %b, "b" = %b`` for the names of ``values`` (their values follow as parameters)."""
    return sql.SQL(", ").join(sql.SQL("{} = %b").format(sql.Identifier(n)) for n in values)

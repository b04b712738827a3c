"""Engines, sessions and the transaction boundary. Engines are made once per process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache

from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def naming_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - driver hook
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


#: Every process's pool: up to POOL_SIZE connections kept open once made, MAX_OVERFLOW more
#: made and closed again while busy (an API process admits at most POOL_SIZE requests at
#: once, so it never churns through overflow connections: see shared.http.Admission).
POOL_SIZE, MAX_OVERFLOW = 10, 5
POOL_CAPACITY = POOL_SIZE + MAX_OVERFLOW


@cache
def get_engine(url: str) -> Engine:
    """One engine per URL per process."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(
        url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW, pool_timeout=30
    )


@cache
def get_sessionmaker(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@cache
def get_reader(url: str) -> sessionmaker[Session]:
    """Sessions whose statements each commit on their own (AUTOCOMMIT): see `reading`."""
    engine = get_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def reading(url: str) -> Iterator[Session]:
    """A unit of reads outside a transaction: no BEGIN and no COMMIT round trip.

    For work whose every statement stands alone (a read by key, a page and its children,
    a write that needs no other to go with it); anything that must commit together takes
    `transaction`. What the block left to flush is written at its end.
    """
    session = get_reader(url)()
    try:
        yield session
        session.flush()
    finally:
        session.close()


@contextmanager
def transaction(url: str) -> Iterator[Session]:
    """The entry point's unit of work: commit on success, roll back on any error."""
    session = get_sessionmaker(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"

"""The hash-chained audit log on real PostgreSQL: chaining, tamper detection, anchors, and
appends from concurrent writers that never fork the chain."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, event, select, text, update
from sqlalchemy.orm import Session

from request_network.models import AuditLog
from shared import audit
from shared.db import get_engine, transaction
from shared.migrate import upgrade
from tests.conftest import _fresh_database

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def audit_url() -> str:
    suffix = os.environ.get("PYTEST_XDIST_WORKER", "main")
    url = _fresh_database(f"ferry_test_audit_{suffix}")
    upgrade("request", url)
    return url


@pytest.fixture
def url(audit_url: str) -> Iterator[str]:
    with get_engine(audit_url).begin() as conn:
        conn.execute(delete(AuditLog))
    yield audit_url
    with get_engine(audit_url).begin() as conn:
        conn.execute(delete(AuditLog))


def _append(url: str, n: int, actor: str = "tester") -> list[int]:
    ids = []
    for i in range(n):
        with transaction(url) as session:
            row = audit.record(
                session, AuditLog, actor=actor, action="thing.done", target=f"t{i}", detail={"i": i}
            )
            ids.append(row.id)
    return ids


def _verify(url: str, anchor: tuple[int, str] | None = None) -> audit.ChainReport:
    with transaction(url) as session:
        return audit.verify(session, AuditLog, anchor=anchor)


def test_rows_chain_from_genesis_and_verify(url):
    ids = _append(url, 5)

    report = _verify(url)
    assert report.ok and report.rows == 5 and report.first_broken_id is None
    assert report.head_id == ids[-1]
    with transaction(url) as session:
        rows = session.execute(select(AuditLog).order_by(AuditLog.id)).scalars().all()
    assert rows[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in zip(rows, rows[1:], strict=False))
    assert report.head_hash == rows[-1].hash


def test_an_empty_chain_is_intact(url):
    report = _verify(url)
    assert report.ok and report.rows == 0 and report.head_id is None
    assert report.head_hash == audit.GENESIS


def test_altered_detail_is_named_as_the_first_broken_row(url):
    ids = _append(url, 5)
    with get_engine(url).begin() as conn:
        conn.execute(update(AuditLog).where(AuditLog.id == ids[2]).values(detail={"i": 99}))

    report = _verify(url)
    assert not report.ok
    assert report.first_broken_id == ids[2]
    assert "altered" in report.reason


def test_altered_row_with_a_recomputed_hash_breaks_the_next_link(url):
    ids = _append(url, 4)
    with get_engine(url).begin() as conn:
        conn.execute(update(AuditLog).where(AuditLog.id == ids[1]).values(hash="f" * 64))

    report = _verify(url)
    assert not report.ok and report.first_broken_id == ids[1]  # its own hash is now wrong


def test_deleted_middle_row_is_named_by_the_row_after_it(url):
    ids = _append(url, 5)
    with get_engine(url).begin() as conn:
        conn.execute(delete(AuditLog).where(AuditLog.id == ids[2]))

    report = _verify(url)
    assert not report.ok
    assert report.first_broken_id == ids[3]
    assert "deleted" in report.reason


def test_deleted_first_row_is_detected(url):
    ids = _append(url, 3)
    with get_engine(url).begin() as conn:
        conn.execute(delete(AuditLog).where(AuditLog.id == ids[0]))

    report = _verify(url)
    assert not report.ok and report.first_broken_id == ids[1]


def test_deleted_last_row_needs_an_anchor_to_be_detected(url):
    """A shorter chain is still a valid chain; only a head written down elsewhere tells."""
    _append(url, 4)
    before = _verify(url)
    with get_engine(url).begin() as conn:
        conn.execute(delete(AuditLog).where(AuditLog.id == before.head_id))

    assert _verify(url).ok  # the chain alone cannot tell
    report = _verify(url, anchor=(before.head_id, before.head_hash))
    assert not report.ok
    assert report.first_broken_id == before.head_id
    assert "missing" in report.reason


def test_an_anchor_still_holds_after_more_rows_are_appended(url):
    _append(url, 2)
    head = _verify(url)
    _append(url, 3)

    assert _verify(url, anchor=(head.head_id, head.head_hash)).ok
    assert not _verify(url, anchor=(head.head_id, "e" * 64)).ok


@pytest.mark.parametrize("value", ["", "12", "x:" + "a" * 64, "3:" + "a" * 63, "3:" + "g" * 64])
def test_malformed_anchors_are_refused(value):
    with pytest.raises(ValueError):
        audit.parse_anchor(value)


def test_stored_detail_is_exactly_what_was_hashed(url):
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    with transaction(url) as session:
        audit.record(session, AuditLog, actor="a", action="b", detail={"until": when, "n": 1})

    assert _verify(url).ok
    with transaction(url) as session:
        stored = session.execute(select(AuditLog.detail)).scalar_one()
    assert stored == {"until": "2024-05-01T12:00:00+00:00", "n": 1}


def test_verify_does_not_depend_on_the_sessions_time_zone(url):
    """psycopg hands timestamps back in the session's zone; the hash is over UTC."""
    _append(url, 2)
    with get_engine(url).connect() as conn, Session(bind=conn) as session:
        session.execute(text("SET LOCAL TIME ZONE 'Asia/Kolkata'"))
        first = session.execute(select(AuditLog.at)).scalars().first()
        assert first.utcoffset() == timedelta(hours=5, minutes=30)
        assert audit.verify(session, AuditLog).ok
        session.rollback()


def test_record_takes_the_chain_lock_before_reading_the_last_hash(url):
    statements: list[str] = []
    engine = get_engine(url)

    def spy(_conn, _cursor, statement, _params, _context, _many):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", spy)
    try:
        with transaction(url) as session:
            audit.record(session, AuditLog, actor="a", action="b")
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    lock = next(i for i, s in enumerate(statements) if "pg_advisory_xact_lock" in s)
    read = next(i for i, s in enumerate(statements) if "SELECT audit_log.hash" in s)
    assert lock < read


def test_concurrent_writers_never_fork_the_chain_even_from_an_empty_table(url):
    writers, each = 8, 12
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            start.wait()
            _append(url, each, actor=f"writer-{n}")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    report = _verify(url)
    assert report.ok, report
    assert report.rows == writers * each
    with transaction(url) as session:
        prevs = session.execute(select(AuditLog.prev_hash)).scalars().all()
    assert len(set(prevs)) == len(prevs)  # no two rows chain onto the same parent


def test_chain_on_sqlite_verifies(tmp_path):
    sqlite_url = f"sqlite:///{tmp_path}/audit.db"
    upgrade("request", sqlite_url)
    _append(sqlite_url, 3)
    assert _verify(sqlite_url).ok

"""Both Alembic environments: upgrade → downgrade → upgrade, and models agree with migrations."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from request_network.models import Base as RequestBase
from response_network.models import Base as ResponseBase
from shared.migrate import downgrade, upgrade
from tests.conftest import _fresh_database

BASES = {"request": RequestBase, "response": ResponseBase}


def _roundtrip_and_compare(net: str, url: str) -> None:
    upgrade(net, url)
    downgrade(net, url)
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(net, url)
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), BASES[net].metadata)
        tables = set(inspect(conn).get_table_names())
    engine.dispose()
    assert diff == [], f"models and migrations disagree for {net}: {diff}"
    assert set(BASES[net].metadata.tables) <= tables


@pytest.mark.parametrize("net", ["request", "response"])
def test_sqlite_upgrade_downgrade_upgrade(net, tmp_path):
    _roundtrip_and_compare(net, f"sqlite:///{tmp_path}/{net}.db")


@pytest.mark.postgres
@pytest.mark.parametrize("net", ["request", "response"])
def test_postgres_upgrade_downgrade_upgrade(net):
    _roundtrip_and_compare(net, _fresh_database(f"ferry_test_migrations_{net}"))


def _outbox_migration_moves_requests(url: str) -> None:
    """0005: a PENDING request enters the outbox, an EXPORTED one keeps its batch as an
    export row (status back to PENDING); the downgrade puts both back."""
    upgrade("request", url, "0004")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO users (id, username, password_hash, role, profile_type, active,"
                " version, updated_at, synced_at) VALUES ('u', 'u', 'x', 'user', 'articles',"
                " true, 1, '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO batches (id, direction, stream, source, destination, seq, digest,"
                " filename, record_count, bytes, created_at) VALUES ('b', 'out', 'requests',"
                " 'request', 'response', 1, 'd', 'f.jsonl', 1, 1, '2026-01-01')"
            )
        )
        for rid, status, batch in (("waiting", "PENDING", None), ("sent", "EXPORTED", "b")):
            conn.execute(
                text(
                    "INSERT INTO requests (id, user_id, profile_type, query, status, created_at,"
                    " updated_at, batch_id) VALUES (:id, 'u', 'articles', '{\"size\": 1}',"
                    " :status, '2026-01-01', '2026-01-02', :batch)"
                ),
                {"id": rid, "status": status, "batch": batch},
            )
    upgrade("request", url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT request_id FROM request_outbox")).all() == [("waiting",)]
        exports = conn.execute(text("SELECT request_id, batch_id FROM request_exports")).all()
        assert exports == [("sent", "b")]
        statuses = dict(conn.execute(text("SELECT id, status FROM requests")).all())
        assert statuses == {"waiting": "PENDING", "sent": "PENDING"}
    downgrade("request", url, "0004")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, status, batch_id FROM requests ORDER BY id")).all()
        assert rows == [("sent", "EXPORTED", "b"), ("waiting", "PENDING", None)]
    engine.dispose()


def test_sqlite_outbox_migration_moves_requests(tmp_path):
    _outbox_migration_moves_requests(f"sqlite:///{tmp_path}/request.db")


@pytest.mark.postgres
def test_postgres_outbox_migration_moves_requests():
    _outbox_migration_moves_requests(_fresh_database("ferry_test_migrations_outbox"))

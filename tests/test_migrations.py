"""Both Alembic environments: upgrade → downgrade → upgrade, and models agree with migrations."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

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

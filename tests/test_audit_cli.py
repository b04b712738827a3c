"""`ferry request audit verify` and `ferry response audit verify`, run as an operator runs
them (a real process, real exit codes) against real PostgreSQL databases."""

from __future__ import annotations

import os

import orjson
import pytest
from sqlalchemy import delete, update

from request_network import models as rq
from response_network import models as rs
from shared import audit
from shared.db import get_engine, transaction
from shared.migrate import upgrade
from tests.conftest import _fresh_database
from tests.test_cli import ferry

pytestmark = pytest.mark.postgres
MODELS = {"request": rq.AuditLog, "response": rs.AuditLog}


@pytest.fixture(scope="module")
def audit_dbs() -> dict[str, str]:
    suffix = os.environ.get("PYTEST_XDIST_WORKER", "main")
    urls = {}
    for net in ("request", "response"):
        urls[net] = _fresh_database(f"ferry_test_audit_cli_{net}_{suffix}")
        upgrade(net, urls[net])
    return urls


@pytest.fixture(params=["request", "response"])
def net(request, audit_dbs) -> str:
    name = request.param
    with get_engine(audit_dbs[name]).begin() as conn:
        conn.execute(delete(MODELS[name]))
    return name


def _append(url: str, model: type, n: int) -> list[int]:
    ids = []
    for i in range(n):
        with transaction(url) as session:
            ids.append(audit.record(session, model, actor="op", action="x", detail={"i": i}).id)
    return ids


def _verify(net: str, url: str, *extra: str):
    prefix = f"FERRY_{net.upper()}_"
    env = {prefix + "MODE": "demo", prefix + "DATABASE_URL": url}
    return ferry(net, "audit", "verify", *extra, env=env)


def test_intact_chain_exits_0_and_prints_count_and_head(net, audit_dbs):
    url, model = audit_dbs[net], MODELS[net]
    ids = _append(url, model, 3)

    run = _verify(net, url)

    assert run.returncode == 0, run.stdout + run.stderr
    report = orjson.loads(run.stdout)
    assert report["ok"] is True
    assert report["rows"] == 3
    assert report["head_id"] == ids[-1]
    assert len(report["head_hash"]) == 64


def test_altered_row_exits_non_zero_naming_it(net, audit_dbs):
    url, model = audit_dbs[net], MODELS[net]
    ids = _append(url, model, 4)
    with get_engine(url).begin() as conn:
        conn.execute(update(model).where(model.id == ids[1]).values(detail={"i": "forged"}))

    run = _verify(net, url)

    assert run.returncode == 2, run.stdout + run.stderr
    assert f"row {ids[1]}" in run.stderr
    assert orjson.loads(run.stdout)["first_broken_id"] == ids[1]


def test_deleted_middle_row_exits_non_zero_naming_the_row_after_it(net, audit_dbs):
    url, model = audit_dbs[net], MODELS[net]
    ids = _append(url, model, 4)
    with get_engine(url).begin() as conn:
        conn.execute(delete(model).where(model.id == ids[1]))

    run = _verify(net, url)

    assert run.returncode == 2, run.stdout + run.stderr
    assert f"row {ids[2]}" in run.stderr
    assert "deleted" in run.stderr


def test_deleted_last_row_is_caught_only_with_an_anchor(net, audit_dbs):
    url, model = audit_dbs[net], MODELS[net]
    _append(url, model, 3)
    head = orjson.loads(_verify(net, url).stdout)
    anchor = f"{head['head_id']}:{head['head_hash']}"
    assert _verify(net, url, "--anchor", anchor).returncode == 0

    with get_engine(url).begin() as conn:
        conn.execute(delete(model).where(model.id == head["head_id"]))

    assert _verify(net, url).returncode == 0  # a shorter chain is still a valid chain
    run = _verify(net, url, "--anchor", anchor)
    assert run.returncode == 2, run.stdout + run.stderr
    assert f"row {head['head_id']}" in run.stderr
    assert orjson.loads(run.stdout)["rows"] == 2


def test_malformed_anchor_is_a_clear_error(net, audit_dbs):
    run = _verify(net, audit_dbs[net], "--anchor", "not-an-anchor")
    assert run.returncode == 1
    assert "anchor" in run.stderr
    assert "Traceback" not in run.stderr

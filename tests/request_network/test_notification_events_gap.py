"""The events the gap's work causes, written in its transactions (PostgreSQL and SQLite):
an import that answers requests tells their owners (completed or failed), an expiry tells
the owner, a quarantined batch tells the operators."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from request_network import models as rq
from request_network.services import lifecycle
from response_network import models as rs
from shared.db import utcnow
from tests.transfer.protocol.test_bulk_exchange import BACKENDS, make_gap


@pytest.fixture(params=BACKENDS)
def gap(request, tmp_path, keys):
    yield from make_gap(request, tmp_path, keys)


def events(gap) -> list[tuple[str, str | None, dict]]:
    rows = gap.rq.execute(
        select(
            rq.NotificationEvent.kind, rq.NotificationEvent.user_id, rq.NotificationEvent.data
        ).order_by(rq.NotificationEvent.kind, rq.NotificationEvent.title)
    )
    return [tuple(r) for r in rows]


def test_an_import_tells_each_owner_once(gap):
    done, bad = gap.seed(2)
    gap.export_requests()
    gap.import_requests()
    gap.add_results([done], hits=3)
    gap.add_results([bad], failed=frozenset([bad]))
    gap.export_results()
    gap.import_results()
    got = events(gap)
    assert [(k, u) for k, u, _ in got] == [
        ("request.completed", "u-alice"),
        ("request.failed", "u-alice"),
    ]
    assert got[0][2] == {"request_id": done, "status": "DONE", "total": 3}
    gap.import_results()  # the same batches again: duplicates, nothing new
    assert len(events(gap)) == 2


def test_an_expiry_tells_the_owner(gap):
    (rid,) = gap.seed(1)
    gap.rq.execute(update(rq.Request).values(updated_at=utcnow() - timedelta(days=30)))
    gap.rq.commit()
    assert lifecycle.expire_unanswered(session=gap.rq, older_than=timedelta(days=7)) == 1
    gap.rq.commit()
    assert [(k, d["request_id"]) for k, _, d in events(gap)] == [("request.expired", rid)]


def test_a_quarantined_batch_tells_the_operators(gap):
    inbox = gap.settings["request"].inbox
    inbox.mkdir(parents=True, exist_ok=True)
    (inbox / "results-response-00000001-0190a5da-c967-74bb-8cce-b302099a8057.jsonl").write_text(
        "not json\n"
    )
    (outcome,) = gap.import_results()
    assert outcome.status == "quarantined"
    ((kind, user, data),) = events(gap)
    assert (kind, user) == ("batch.quarantined", None)
    assert data["file"].startswith("results-response-00000001") and data["reasons"]


def test_a_batch_ahead_of_its_sequence_tells_the_operators(gap, tmp_path):
    gap.limit(batch_max_records=1)
    gap.seed(2)
    first, second = gap.export_requests().batches
    held = tmp_path / "held"
    held.mkdir()
    for f in first.path.parent.glob(first.path.name + "*"):
        f.rename(held / f.name)  # the operator carries the second batch first
    (outcome,) = gap.import_requests()
    assert (outcome.status, outcome.rule) == ("imported", "gap")
    rows = gap.rs.execute(select(rs.NotificationEvent.kind, rs.NotificationEvent.data)).all()
    assert [(k, d["seq"]) for k, d in rows] == [("batch.gap", second.seq)]

"""`GET /api/v1/admin/batches`: batch metadata sorted by a column, both ways (the admin
panel's batch metadata calls the same `transfer.operator.batch_report.list_batches`), and a
column it does not sort by refused (problem+json naming `sort`)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from request_api_helpers import assert_problem

from request_network.models import Batch
from shared.db import transaction, utcnow

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
BATCHES = "/api/v1/admin/batches"


def test_batches_sort_by_a_column_and_refuse_any_other(client, seed, api_db, login):
    seed.profile_type()
    seed.user("root", role="admin")
    now = utcnow()
    with transaction(api_db) as session:
        for seq, records, took in ((1, 5, 40), (2, 50, None), (3, 9, 7)):
            batch_id = str(uuid.uuid4())
            session.add(
                Batch(
                    id=batch_id,
                    direction="in",
                    stream="results",
                    source="response",
                    destination="request",
                    seq=seq,
                    digest=f"{seq:064d}",
                    filename=f"results-response-{seq:08d}-{batch_id}.jsonl",
                    record_count=records,
                    bytes=records * 10,
                    processing_ms=took,
                    created_at=now - timedelta(minutes=10 - seq),
                )
            )
    root = login("root")

    def seqs(sort: str | None = None) -> list[int]:
        reply = client.get(BATCHES, params={"sort": sort} if sort else {}, headers=root)
        assert reply.status_code == 200, reply.text
        return [b["seq"] for b in reply.json()["items"]]

    assert seqs() == seqs("-created_at") == [3, 2, 1]
    assert seqs("records") == [1, 3, 2] and seqs("-records") == [2, 3, 1]
    assert seqs("processing_ms") == [3, 1, 2]  # not recorded: last, either way
    assert seqs("-processing_ms") == [1, 3, 2]
    for bad in ("digest", "-", "records "):
        refused = assert_problem(client.get(BATCHES, params={"sort": bad}, headers=root), 422)
        assert "sort" in refused["detail"]

"""Records arriving from the response network, applied in bulk: results, users, profile types.

Each handler gets a chunk of records the reader has already verified (schema included) and
applies it with a few statements, inside the import's one transaction:

- a result is applied once: the first copy inserts the `Response` and moves its request to
  its final state (COMPLETED or FAILED, with a history event); a replay changes nothing;
- a result too large for one record line arrives as parts (`part` 0..`parts`-1, one after
  another in one batch) and is stored as one `Response` with the hits in order;
- users and profile types are upserts guarded by version: an older one never overwrites
  a newer one.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from request_network.models import (
    COMPLETED,
    FAILED,
    ProfileType,
    Request,
    RequestEvent,
    Response,
    User,
)
from shared.db import utcnow
from shared.records import ProfileTypeData, UserData
from transfer import bulk
from transfer.exchange import BulkHandler, RecordRefused
from transfer.format import Record

__all__ = ["HANDLERS", "apply_profile_types", "apply_results", "apply_users", "assemble_results"]

_SAME_IN_EVERY_PART = ("status", "total", "error", "executed_at", "took_ms")


def assemble_results(records: list[Record]) -> list[tuple[Record, dict[str, Any]]]:
    """(record, data) per result, the parts of a split result joined into one."""
    results = []
    i, n = 0, len(records)
    while i < n:
        rec = records[i]
        data = rec.data
        parts = data.get("parts", 1)
        if parts == 1:
            results.append((rec, data))
            i += 1
            continue
        group = records[i : i + parts]
        if len(group) < parts or any(
            g.id != rec.id or g.data.get("part") != k or g.data.get("parts") != parts
            for k, g in enumerate(group)
        ):
            raise RecordRefused(
                rec, f"a result in {parts} parts must carry parts 0..{parts - 1} in a row"
            )
        if any(g.data.get(f) != data.get(f) for g in group for f in _SAME_IN_EVERY_PART):
            raise RecordRefused(rec, "the parts of one result disagree")
        hits = [hit for g in group for hit in g.data["hits"]]
        results.append((rec, {**data, "hits": hits, "part": 0, "parts": 1}))
        i += parts
    return results


def apply_results(session: Session, records: list[Record], batch_id: str) -> None:
    """Store each new result and move its request to its final state; replays are no-ops."""
    results = assemble_results(records)
    ids = [rec.id for rec, _ in results]
    known = bulk.existing_keys(session, Request.__table__, "id", ids)
    for rec, _ in results:
        if rec.id not in known:
            raise RecordRefused(rec, "result for a request this network never sent")
    now = utcnow()
    columns = {
        "request_id": ids,
        "status": [data["status"] for _, data in results],
        "total": [data["total"] for _, data in results],
        "hits": [data["hits"] for _, data in results],
        "error": [data["error"] for _, data in results],
        "executed_at": [data["executed_at"] for _, data in results],
        "took_ms": [data["took_ms"] for _, data in results],
    }
    same = {"received_at": now, "batch_id": batch_id}
    table = Response.__table__
    fresh = set(bulk.insert_new(session, table, columns, key="request_id", same=same))
    if not fresh:
        return
    applied = {rec.id: data for rec, data in results if rec.id in fresh}
    completed = [rid for rid, data in applied.items() if data["status"] == "DONE"]
    failed = [rid for rid, data in applied.items() if data["status"] != "DONE"]
    table = Request.__table__  # the rest runs behind the reader (see transfer.behind)
    done, bad = {"status": COMPLETED, "updated_at": now}, {"status": FAILED, "updated_at": now}
    bulk.update_in(session, table, "id", completed, done, defer=True)
    bulk.update_in(session, table, "id", failed, bad, defer=True)
    events = {
        "request_id": list(applied),
        "status": [COMPLETED if d["status"] == "DONE" else FAILED for d in applied.values()],
        "detail": [d["error"] or "" for d in applied.values()],
    }
    bulk.insert_rows(session, RequestEvent.__table__, events, same={"at": now})
    bulk.expire_loaded(session, Request, applied)


def apply_users(session: Session, records: list[Record], _batch_id: str) -> None:
    """Upsert keyed by id and version: an older version never overwrites a newer one."""
    now = utcnow()
    rows = [
        {
            "id": rec.id,
            **UserData.model_validate(rec.data).model_dump(mode="json"),
            "version": rec.version,
            "synced_at": now,
            "updated_at": now,
        }
        for rec in records
    ]
    bulk.upsert_newer(session, User.__table__, rows, key="id")
    bulk.expire_loaded(session, User, [r["id"] for r in rows])


def apply_profile_types(session: Session, records: list[Record], _batch_id: str) -> None:
    now = utcnow()
    rows = [
        {
            **ProfileTypeData.model_validate(rec.data).model_dump(mode="json"),
            "version": rec.version,
            "updated_at": now,
        }
        for rec in records
    ]
    bulk.upsert_newer(session, ProfileType.__table__, rows, key="name")
    bulk.expire_loaded(session, ProfileType, [r["name"] for r in rows])


HANDLERS = {
    "result": BulkHandler(apply_results),
    "user": BulkHandler(apply_users),
    "profile_type": BulkHandler(apply_profile_types),
}

"""Records arriving from the response network, applied in bulk: results, users, profile types.

Each handler gets a chunk of records the reader has already verified (schema included) and
applies it with a few statements, inside the import's one transaction:

- a result answers one sending of its request (its version): one for an earlier sending
  (the request was retried since) or for a cancelled request is set aside, with an event;
- a result is applied once: the first copy inserts the `Response` and moves its request to
  its final state (COMPLETED or FAILED, with a history event); a replay changes nothing;
  a newer result (executed later than the stored one) replaces it, with a history event,
  and its cached copy goes once the import commits (`response_cache.invalidate_on_commit`);
- a result too large for one record line arrives as parts (`part` 0..`parts`-1), possibly
  over several batches in any order; the parts wait in `ResponsePart` until the last one
  is in, then become one `Response` with the hits in order;
- users and profile types are upserts guarded by version: an older one never overwrites
  a newer one; a user arriving inactive loses their cached responses after the commit;
- governed settings likewise, newer versions only; a key this network does not know or a
  value it cannot take refuses the batch (quarantined), and once the import commits every
  process applies the new values within a second (`services.governed`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.orm import Session

from request_network.models import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    GovernedSetting,
    OutboxEntry,
    ProfileType,
    Request,
    RequestEvent,
    Response,
    ResponsePart,
    User,
)
from request_network.services import governed, notifications, response_cache
from shared import correlation, tracing
from shared import notifications as shared_notifications
from shared.db import utcnow
from shared.governed import InvalidSettings, lookup
from shared.records import ProfileTypeData, SettingData, UserData
from transfer.format import Record, uuid7s
from transfer.protocol import bulk
from transfer.protocol.exchange import BulkHandler, RecordRefused

__all__ = [
    "HANDLERS",
    "apply_profile_types",
    "apply_results",
    "apply_settings",
    "apply_users",
    "collect_results",
]

_SAME_IN_EVERY_PART = ("status", "total", "error", "executed_at", "took_ms")


def collect_results(
    records: list[Record], batch_id: str, *, session: Session
) -> list[tuple[Record, dict[str, Any]]]:
    """(record, data) per result ready to store: the whole ones, and each split one whose
    last part is now in (the others' parts are kept for later batches)."""
    whole = [(rec, rec.data) for rec in records if rec.data.get("parts", 1) == 1]
    split = [rec for rec in records if rec.data.get("parts", 1) > 1]
    return whole + _join_parts(split, batch_id, session=session) if split else whole


def _join_parts(
    parts: list[Record], batch_id: str, *, session: Session
) -> list[tuple[Record, dict[str, Any]]]:
    ids = list(dict.fromkeys(rec.id for rec in parts))
    answered = dict(
        session.execute(
            select(Response.request_id, Response.executed_at).where(Response.request_id.in_(ids))
        ).all()
    )
    held: dict[str, dict[int, ResponsePart]] = defaultdict(dict)
    stored = select(ResponsePart).where(ResponsePart.request_id.in_(ids))
    for kept in session.scalars(stored):
        held[kept.request_id][kept.part] = kept
    first: dict[str, Record] = {}
    for rec in parts:
        if rec.id in answered and _utc(rec.data["executed_at"]) <= _utc(answered[rec.id]):
            continue  # a replay of a result already stored (a newer one replaces it)
        k, n = rec.data["part"], rec.data["parts"]
        if not 0 <= k < n:
            raise RecordRefused(rec, f"part {k} of a result in {n} parts")
        same = held[rec.id].get(k)
        if same is not None:
            if same.data != rec.data:
                raise RecordRefused(rec, f"part {k} arrived twice with different contents")
            continue
        held[rec.id][k] = ResponsePart(
            request_id=rec.id, part=k, parts=n, data=rec.data, batch_id=batch_id
        )
        session.add(held[rec.id][k])
        first.setdefault(rec.id, rec)
    ready = []
    for rid, rec in first.items():
        group = [held[rid][k] for k in sorted(held[rid])]
        if any(p.parts != rec.data["parts"] for p in group):
            raise RecordRefused(rec, "the parts of one result disagree on how many there are")
        if len(group) < rec.data["parts"]:
            continue  # more parts to come
        if any(p.data.get(f) != rec.data.get(f) for p in group for f in _SAME_IN_EVERY_PART):
            raise RecordRefused(rec, "the parts of one result disagree")
        hits = [hit for p in group for hit in p.data["hits"]]
        ready.append((rec, {**rec.data, "hits": hits, "part": 0, "parts": 1}))
    session.flush()
    if ready:
        joined = [rec.id for rec, _ in ready]
        session.execute(delete(ResponsePart).where(ResponsePart.request_id.in_(joined)))
    return ready


def apply_results(session: Session, records: list[Record], batch_id: str) -> int:
    """Store each new result and move its request to its final state; replays are no-ops.
    Returns how many of the results (those not set aside) report a failed query: the
    batch's `error_count`.

    A result answers one sending of its request (its version, `Request.attempt`): one for
    an earlier sending than the request's current one (it was retried since), or for a
    cancelled request, is set aside with a history event saying so.

    When every request of the chunk still waits for its answer (PENDING: only a request
    without a stored response is), as in nearly every import, every write of the chunk runs
    behind the reader (`transfer.protocol.behind`); otherwise the responses are inserted at
    once and those already stored are looked at one by one.
    """
    ids = [rec.id for rec in records]
    columns = ("attempt", "status", "user_id", "correlation_id")
    sendings = bulk.rows_by_key(session, Request.__table__, "id", ids, columns)
    for rec in records:
        if rec.id not in sendings:
            raise RecordRefused(rec, "result for a request this network never sent")
        _check_correlation(rec, sendings[rec.id][3])
    aside = {rec.id: rec for rec in records if _set_aside(rec, *sendings[rec.id][:2])}
    if aside:
        _note_set_aside(session, aside, sendings)
        correlation.log_requests(
            "answers set aside", [(rid, sendings[rid][3]) for rid in aside], batch_id=batch_id
        )
        records = [rec for rec in records if rec.id not in aside]
    results = collect_results(records, batch_id, session=session)
    if not results:
        return 0
    failures = sum(1 for _, data in results if data["status"] != "DONE")
    ids = [rec.id for rec, _ in results]
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
    if len(set(ids)) == len(ids) and all(sendings[rid][1] == PENDING for rid in ids):
        # Every one is new (none of these requests has a response): no need to hear back
        # which went in.
        bulk.insert_new(session, table, columns, key="request_id", same=same, returning=False)
        fresh = set(ids)
    else:
        fresh = set(bulk.insert_new(session, table, columns, key="request_id", same=same))
    stored = [(rec, data) for rec, data in results if rec.id not in fresh]
    replaced = _replace_older(session, stored, same) if stored else set()
    if not fresh and not replaced:
        return failures
    applied = {rec.id: data for rec, data in results if rec.id in fresh or rec.id in replaced}
    completed = [rid for rid, data in applied.items() if data["status"] == "DONE"]
    failed = [rid for rid, data in applied.items() if data["status"] != "DONE"]
    table = Request.__table__  # the rest runs behind the reader (see transfer.protocol.behind)
    done, bad = {"status": COMPLETED, "updated_at": now}, {"status": FAILED, "updated_at": now}
    bulk.update_in(session, table, "id", completed, done, defer=True)
    bulk.update_in(session, table, "id", failed, bad, defer=True)
    events = {
        "request_id": list(applied),
        "status": [COMPLETED if d["status"] == "DONE" else FAILED for d in applied.values()],
        "detail": [_detail(d["error"], newer=rid in replaced) for rid, d in applied.items()],
    }
    bulk.insert_rows(session, RequestEvent.__table__, events, same={"at": now})
    # A request sent again (see `requeue`) and answered meanwhile need not go out once more.
    bulk.delete_in(session, OutboxEntry.__table__, "request_id", list(applied), defer=True)
    bulk.expire_loaded(session, Request, applied)
    correlation.log_requests(
        "answers imported", [(rid, sendings[rid][3]) for rid in applied], batch_id=batch_id
    )
    if tracing.enabled():
        _trace_arrivals([rec for rec, _ in results if rec.id in applied], batch_id)
    _notify_owners(session, applied, sendings)
    if replaced:
        bulk.expire_loaded(session, Response, replaced)
        response_cache.invalidate_on_commit(session, request_ids=replaced)
    return failures


def _trace_arrivals(records: list[Record], batch_id: str) -> None:
    """With tracing on, each answer's arrival as a span under its execution's (the result
    record's `traceparent`), so the query's trace ends on this network."""
    for rec in records:
        attributes = {"ferry.request_id": rec.id, "ferry.batch_id": batch_id}
        with tracing.span_from(rec.data.get("traceparent"), "ferry.result.imported", attributes):
            pass


def _check_correlation(rec: Record, stored: str | None) -> None:
    """A result names the correlation id of the request it answers; another one is logged
    (the answer is still the request's: its id says so)."""
    carried = rec.data.get("correlation_id")
    if carried is not None and carried != stored:
        correlation.log.warning(
            "the answer to request %s carries correlation id %r, not the request's %r",
            rec.id,
            carried,
            stored,
            extra=correlation.fields(rec.id, stored),
        )


def _set_aside(rec: Record, attempt: int, status: str) -> bool:
    return rec.version < attempt or status == CANCELLED


def _notify_owners(
    session: Session, applied: dict[str, dict[str, Any]], sendings: dict[str, tuple]
) -> None:
    """Each request's owner hears that its answer is in (in bulk, with the import)."""
    for status, kind in (("DONE", "request.completed"), ("FAILED", "request.failed")):
        items = [
            {
                "user_id": sendings[rid][2],
                "title": _answer_title(rid, data),
                "body": data["error"] or "",
                "data": {"request_id": rid, "status": data["status"], "total": data["total"]},
            }
            for rid, data in applied.items()
            if data["status"] == status
        ]
        if items:
            ids = uuid7s(len(items))
            columns, same = shared_notifications.event_columns(kind, items, ids)
            table = notifications.TABLES.event.__table__
            bulk.insert_rows(session, table, columns, same=same)


def _answer_title(request_id: str, data: dict[str, Any]) -> str:
    if data["status"] == "DONE":
        return f"Request {request_id[:8]} answered: {data['total'] or 0} hits"
    return f"Request {request_id[:8]} failed"


def _note_set_aside(session: Session, aside: dict[str, Record], sendings: dict[str, tuple]) -> None:
    def why(rec: Record) -> str:
        attempt, status = sendings[rec.id][:2]
        if rec.version < attempt:
            return f"an answer to sending {rec.version} set aside: sending {attempt} is current"
        return "an answer arrived after the cancellation and was set aside"

    events = {
        "request_id": list(aside),
        "status": [sendings[rid][1] for rid in aside],
        "detail": [why(rec) for rec in aside.values()],
    }
    bulk.insert_rows(session, RequestEvent.__table__, events, same={"at": utcnow()})


def _detail(error: str | None, *, newer: bool) -> str:
    if not newer:
        return error or ""
    return f"a newer result: {error}" if error else "a newer result"


def _utc(value: datetime | str) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _replace_older(
    session: Session, results: list[tuple[Record, dict[str, Any]]], same: dict[str, Any]
) -> set[str]:
    """Results for requests already answered that were executed later than the stored
    response (a request run again) replace it; a replay (same execution) changes nothing.
    Returns the ids replaced."""
    ids = [rec.id for rec, _ in results]
    stored = dict(
        session.execute(
            select(Response.request_id, Response.executed_at).where(Response.request_id.in_(ids))
        ).all()
    )
    newer = {
        rec.id: data
        for rec, data in results
        if rec.id in stored and _utc(data["executed_at"]) > _utc(stored[rec.id])
    }
    if not newer:
        return set()
    table = Response.__table__
    fields = ("status", "total", "hits", "error", "took_ms")
    stmt = (
        update(table)
        .where(table.c.request_id == bindparam("r_id"))
        .where(table.c.executed_at < bindparam("r_executed_at"))
        .values(
            executed_at=bindparam("r_executed_at"),
            **{f: bindparam(f"r_{f}") for f in fields},
            **same,
        )
    )
    rows = [
        {
            "r_id": rid,
            "r_executed_at": _utc(data["executed_at"]),
            **{f"r_{f}": data[f] for f in fields},
        }
        for rid, data in newer.items()
    ]
    session.execute(stmt, rows)
    return set(newer)


def apply_users(session: Session, records: list[Record], _batch_id: str) -> None:
    """Upsert keyed by id and version: an older version never overwrites a newer one.

    A user's sessions cut-off never moves back: a password changed here a moment ago keeps
    refusing older sessions even if a user record made before that change arrives first.
    """
    now = utcnow()
    ids = [rec.id for rec in records]
    cutoffs = dict(
        session.execute(
            select(User.id, User.sessions_valid_after).where(
                User.id.in_(ids), User.sessions_valid_after.is_not(None)
            )
        ).all()
    )
    rows = []
    for rec in records:
        data = UserData.model_validate(rec.data)
        row = {"id": rec.id, **data.model_dump(mode="json")}
        row["sessions_valid_after"] = _latest(data.sessions_valid_after, cutoffs.get(rec.id))
        rows.append(row | {"version": rec.version, "synced_at": now, "updated_at": now})
    bulk.upsert_newer(session, User.__table__, rows, key="id")
    bulk.expire_loaded(session, User, ids)
    inactive = [r["id"] for r in rows if not r["active"]]
    if inactive:
        response_cache.invalidate_on_commit(session, user_ids=inactive)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(_utc(a), _utc(b))


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


def apply_settings(session: Session, records: list[Record], batch_id: str) -> None:
    """Upsert keyed by key and version: an older version never overwrites a newer one. A
    value of null means "not governed" (the deployment's own setting applies again)."""
    now = utcnow()
    rows = []
    for rec in records:
        data = SettingData.model_validate(rec.data)
        try:
            value = None if data.value is None else lookup(data.key).validate(data.value)
        except InvalidSettings as exc:
            raise RecordRefused(rec, f"setting refused: {exc}") from None
        row = {"key": data.key, "value": value, "version": rec.version}
        rows.append(row | {"received_at": now, "batch_id": batch_id})
    bulk.upsert_newer(session, GovernedSetting.__table__, rows, key="key")
    bulk.expire_loaded(session, GovernedSetting, [r["key"] for r in rows])
    governed.note_change(session)


# The handlers keep the session positional: `transfer.protocol.intake.BulkHandler` calls them as
# ``apply(session, records, batch_id)``.
HANDLERS = {
    "result": BulkHandler(apply_results),
    "user": BulkHandler(apply_users),
    "profile_type": BulkHandler(apply_profile_types),
    "setting": BulkHandler(apply_settings),
}

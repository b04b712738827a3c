"""Run queued requests against Elasticsearch in msearch chunks; errors stay per request.

Each request's outcome is recorded with its ids bound to the log context (`ferry_request_id`,
`correlation_id`: `shared.correlation`) and logged in one INFO line: status, hits, time.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, delete, exists, select, update
from sqlalchemy.orm import Session, aliased

from response_network.models import (
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    Execution,
    ImportedRequest,
    ProfileType,
    Result,
)
from response_network.services.identity import profile_rules
from response_network.services.search import BREAKER as SEARCH_BREAKER
from response_network.services.search import SearchBackend, SearchOutcome
from shared import correlation, tracing
from shared.breaker import OPEN, breaker
from shared.db import utcnow
from shared.query_spec import ProfileRules, QuerySpecError, compile_query, validate_query

#: How a finished execution is written: one statement for a whole claimed batch.
_FINISH_EXECUTION = (
    update(Execution.__table__)
    .where(
        Execution.__table__.c.request_id == bindparam("request_id_"),
        Execution.__table__.c.status == RUNNING,
    )
    .values(
        status=bindparam("status_"),
        finished_at=bindparam("finished_at_"),
        error=bindparam("error_"),
        took_ms=bindparam("took_ms_"),
    )
)


@dataclass(frozen=True)
class ExecutionReport:
    done: int = 0
    failed: int = 0
    deferred: int = 0  # queued again: the search cluster could not be reached

    @property
    def total(self) -> int:
        return self.done + self.failed


def claim(*, session: Session, limit: int) -> list[str]:
    """Move up to `limit` queued requests to RUNNING; two workers never claim the same one."""
    stmt = (
        select(ImportedRequest)
        .where(ImportedRequest.status == QUEUED)
        .order_by(ImportedRequest.imported_at, ImportedRequest.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    claimed = session.execute(stmt).scalars().all()
    now = utcnow()
    for req in claimed:
        req.status, req.updated_at = RUNNING, now
        session.add(
            Execution(request_id=req.id, started_at=now, status=RUNNING, attempt=req.attempt)
        )
    session.flush()
    return [r.id for r in claimed]


@dataclass
class _Outcomes:
    """What one execute call records: the claimed requests' earlier results (read once) and
    their executions' endings (written together by `flush`)."""

    session: Session
    earlier: dict[str, Result]
    endings: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def of(cls, requests: list[ImportedRequest], *, session: Session) -> _Outcomes:
        if not requests:
            return cls(session, {})
        ids = [r.id for r in requests]
        rows = session.execute(select(Result).where(Result.request_id.in_(ids))).scalars()
        return cls(session, {r.request_id: r for r in rows})

    def flush(self) -> None:
        if self.endings:
            self.session.execute(_FINISH_EXECUTION, self.endings)
            self.endings = []


def _rules_of(requests: list[ImportedRequest], *, session: Session) -> dict[str, ProfileRules]:
    """The rules of the profile types `requests` name (those that exist), in one read."""
    names = {r.profile_type for r in requests}
    if not names:
        return {}
    profiles = session.execute(select(ProfileType).where(ProfileType.name.in_(names)))
    return {p.name: profile_rules(p) for p in profiles.scalars()}


def _compile(req: ImportedRequest, rules_of: dict[str, ProfileRules]) -> tuple[str, dict] | str:
    """(index, body) for a valid request, or the reason it cannot run."""
    rules = rules_of.get(req.profile_type)
    if rules is None:
        return f"unknown profile type {req.profile_type!r}"
    try:
        spec = validate_query(req.query, rules)
    except QuerySpecError as exc:
        return "invalid query: " + "; ".join(str(p) for p in exc.problems)
    return rules.index, compile_query(spec, rules)


def _finish(req: ImportedRequest, outcome: SearchOutcome, *, outcomes: _Outcomes) -> None:
    """Record the outcome of `req`'s running execution and its result, and log it.

    A request has one result: an earlier one (a retry, or an earlier sending of the same
    request) is replaced and marked unexported, so the next export carries the new one. The
    result carries back the request's correlation id and trace context.
    """
    with correlation.bound_to_request(req.id, req.correlation_id), _span(req, outcome):
        _record(req, outcome, outcomes=outcomes)
        _log_outcome(req, outcome)


def _span(req: ImportedRequest, outcome: SearchOutcome) -> AbstractContextManager[Any]:
    """With tracing on, the execution's span, a child of the submission's (`shared.tracing`)."""
    if not tracing.enabled():
        return nullcontext()
    attributes = {"ferry.request_id": req.id, "ferry.attempt": req.attempt}
    attributes |= {"ferry.status": DONE if outcome.ok else FAILED, "ferry.hits": outcome.total or 0}
    if req.correlation_id:
        attributes["ferry.correlation_id"] = req.correlation_id
    if outcome.took_ms is not None:
        attributes["ferry.took_ms"] = outcome.took_ms
    return tracing.span_from(req.traceparent, "ferry.execute", attributes)


def _log_outcome(req: ImportedRequest, outcome: SearchOutcome) -> None:
    fields = {"status": DONE if outcome.ok else FAILED, "hits": outcome.total}
    fields |= {"took_ms": outcome.took_ms, "attempt": req.attempt}
    fields |= correlation.fields(req.id, req.correlation_id)
    if outcome.ok:
        correlation.log.info(
            "request %s executed: %s hits in %s ms",
            req.id,
            outcome.total,
            outcome.took_ms,
            extra=fields,
        )
    else:
        correlation.log.info(
            "request %s failed: %s", req.id, outcome.error, extra=fields | {"error": outcome.error}
        )


def _record(req: ImportedRequest, outcome: SearchOutcome, *, outcomes: _Outcomes) -> None:
    now = utcnow()
    status = DONE if outcome.ok else FAILED
    req.status, req.updated_at = status, now
    outcomes.endings.append(
        {
            "request_id_": req.id,
            "status_": status,
            "finished_at_": now,
            "error_": outcome.error,
            "took_ms_": outcome.took_ms,
        }
    )
    result = outcomes.earlier.get(req.id)
    if result is None:
        result = outcomes.earlier[req.id] = Result(request_id=req.id)
        outcomes.session.add(result)
    result.status, result.total, result.hits = status, outcome.total, outcome.hits
    result.error, result.executed_at, result.took_ms = outcome.error, now, outcome.took_ms
    result.attempt, result.batch_id = req.attempt, None
    # the trace context goes back as the execution's span (tracing on), else as it came
    result.correlation_id = req.correlation_id
    result.traceparent = tracing.current_traceparent() or req.traceparent


def execute(
    backend: SearchBackend,
    ids: list[str],
    *,
    session: Session,
    chunk_size: int,
    timeout_s: float,
) -> ExecutionReport:
    """Run the claimed requests `ids` and record each outcome (flushed, not committed).

    The statements do not grow with the batch: one read each of the requests, their earlier
    results and their profile types, the ORM's batched flush and one update of their
    executions."""
    requests = (
        session.execute(
            select(ImportedRequest)
            .where(ImportedRequest.id.in_(ids), ImportedRequest.status == RUNNING)
            .order_by(ImportedRequest.id)
        )
        .scalars()
        .all()
    )
    outcomes = _Outcomes.of(requests, session=session)
    rules_of = _rules_of(requests, session=session)
    runnable: list[tuple[ImportedRequest, tuple[str, dict]]] = []
    done = failed = 0
    for req in requests:
        compiled = _compile(req, rules_of)
        if isinstance(compiled, str):
            _finish(req, SearchOutcome(False, None, [], None, compiled), outcomes=outcomes)
            failed += 1
        else:
            runnable.append((req, compiled))
    searched = backend.run_many(
        [c for _, c in runnable], chunk_size=chunk_size, timeout_s=timeout_s
    )
    later: list[ImportedRequest] = []
    for (req, _), outcome in zip(runnable, searched, strict=True):
        if outcome.deferred:
            later.append(req)
            continue
        _finish(req, outcome, outcomes=outcomes)
        done, failed = (done + 1, failed) if outcome.ok else (done, failed + 1)
    outcomes.flush()
    _queue_again(later, session=session)
    session.flush()
    return ExecutionReport(done, failed, len(later))


def _queue_again(requests: list[ImportedRequest], *, session: Session) -> None:
    """Requests whose search never reached the cluster wait in the queue again; the
    execution that did not happen is not kept."""
    if not requests:
        return
    now = utcnow()
    for req in requests:
        req.status, req.updated_at = QUEUED, now
    session.execute(
        delete(Execution).where(
            Execution.request_id.in_([r.id for r in requests]), Execution.status == RUNNING
        )
    )


def run_queued(
    backend: SearchBackend,
    transaction: Callable[[], AbstractContextManager[Session]],
    *,
    limit: int,
    chunk_size: int,
    timeout_s: float,
) -> ExecutionReport:
    """Claim (commit), search, record (commit): a crash leaves RUNNING rows for `requeue_stale`.
    While the search breaker is open nothing is claimed: the queue waits for the cluster."""
    if breaker(SEARCH_BREAKER).state == OPEN:
        return ExecutionReport()
    with transaction() as session:
        ids = claim(session=session, limit=limit)
    if not ids:
        return ExecutionReport()
    with transaction() as session:
        return execute(backend, ids, session=session, chunk_size=chunk_size, timeout_s=timeout_s)


def requeue_stale(*, session: Session, older_than: timedelta) -> int:
    """Requests left RUNNING by a crashed worker go back to the queue."""
    cutoff = utcnow() - older_than
    stale = (
        session.execute(
            select(ImportedRequest).where(
                ImportedRequest.status == RUNNING, ImportedRequest.updated_at < cutoff
            )
        )
        .scalars()
        .all()
    )
    for req in stale:
        req.status, req.updated_at = QUEUED, utcnow()
        session.execute(
            update(Execution)
            .where(Execution.request_id == req.id, Execution.status == RUNNING)
            .values(status=FAILED, finished_at=utcnow(), error="worker lost")
        )
    session.flush()
    return len(stale)


def prune_executions(*, session: Session, older_than: timedelta) -> int:
    """Finished executions started before `older_than` ago go, except the latest of each
    request (what the admin views and statistics show of it). Returns how many went."""
    cutoff = utcnow() - older_than
    later = aliased(Execution)
    superseded = exists().where(later.request_id == Execution.request_id, later.id > Execution.id)
    gone = session.execute(
        delete(Execution).where(
            Execution.started_at < cutoff, Execution.status != RUNNING, superseded
        )
    )
    return gone.rowcount or 0

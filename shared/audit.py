"""Append-only, hash-chained audit log; each network passes its own `AuditLog` model.

Each row carries the digest of the row before (`prev_hash`) and its own digest over that
link and its content (`hash`), so altering or deleting a row breaks the chain at the next
row. Appends are serialised per table: on PostgreSQL a transaction-scoped advisory lock is
taken *before* the last hash is read (a row lock cannot guard an empty table, and under READ
COMMITTED two writers locking the same last row would both chain onto it), and is held until
the appending transaction ends.

Removing rows from the end leaves a shorter chain that is still valid. The chain alone
cannot tell; an anchor can: `verify` reports the head (last id and hash) and the row count,
an operator writes them down somewhere else, and a later `verify(anchor=(id, hash))` fails
if that row is gone or differs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from shared.db import is_postgres, utcnow
from shared.jsonutil import canonical, loads

GENESIS = "0" * 64


def _row_hash(prev_hash: str, at: str, actor: str, action: str, target: str, detail: Any) -> str:
    payload = canonical(
        {
            "prev": prev_hash,
            "at": at,
            "actor": actor,
            "action": action,
            "target": target,
            "detail": detail,
        }
    )
    return hashlib.sha256(payload).hexdigest()


def _stamp(at: datetime) -> str:
    """The time as naive UTC: drivers hand timestamps back in the session's time zone."""
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.isoformat(timespec="microseconds")


def chain_lock_id(table: str) -> int:
    """A stable signed 64-bit advisory-lock id for one audit table."""
    digest = hashlib.sha256(f"ferry.audit:{table}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_chain(session: Session, model: type) -> None:
    if is_postgres(session):
        session.execute(
            text("SELECT pg_advisory_xact_lock(:id)"), {"id": chain_lock_id(model.__tablename__)}
        )


def record(
    session: Session,
    model: type,
    *,
    actor: str,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> Any:
    """Append one row chained to the last; never log secrets in `detail`.

    The caller's transaction holds the chain lock until it commits or rolls back.
    """
    _lock_chain(session, model)
    last = session.execute(
        select(model.hash).order_by(model.id.desc()).limit(1)
    ).scalar_one_or_none()
    prev = last or GENESIS
    at = utcnow()
    # Store exactly what is hashed (datetimes and the like become their JSON form).
    detail = loads(canonical(detail or {}))
    row = model(
        at=at,
        actor=actor,
        action=action,
        target=target,
        detail=detail,
        prev_hash=prev,
        hash=_row_hash(prev, _stamp(at), actor, action, target, detail),
    )
    session.add(row)
    session.flush()
    return row


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    first_broken_id: int | None = None
    reason: str = ""
    head_id: int | None = None
    head_hash: str = GENESIS

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "head_id": self.head_id,
            "head_hash": self.head_hash,
            "first_broken_id": self.first_broken_id,
            "reason": self.reason,
        }


def parse_anchor(value: str) -> tuple[int, str]:
    """`<id>:<hash>` as printed by a previous verify."""
    row_id, sep, digest = value.partition(":")
    if not sep or not row_id.isdigit() or len(digest) != 64:
        raise ValueError("an anchor is <row id>:<64 hex characters>, as `verify` prints it")
    try:
        bytes.fromhex(digest)
    except ValueError:
        raise ValueError("the anchor's hash is not hexadecimal") from None
    return int(row_id), digest.lower()


def verify(session: Session, model: type, *, anchor: tuple[int, str] | None = None) -> ChainReport:
    """Walk the chain in id order; name the first row whose link or content does not match.

    With an `anchor` (`(row id, hash)` from an earlier run), also fail when that row is
    missing or differs, which catches rows removed from the end.
    """
    prev, count, head_id, anchor_seen = GENESIS, 0, None, False
    rows = session.execute(select(model).order_by(model.id).execution_options(yield_per=500))
    for row in rows.scalars():
        count += 1
        reason = ""
        if row.prev_hash != prev:
            reason = "link to the previous row does not match: a row was deleted or altered"
        elif row.hash != _row_hash(
            prev, _stamp(row.at), row.actor, row.action, row.target, row.detail
        ):
            reason = "row content altered: its hash does not match"
        elif anchor is not None and row.id == anchor[0]:
            if row.hash != anchor[1]:
                reason = "the anchored row's hash differs from the anchor"
            anchor_seen = True
        if reason:
            return ChainReport(False, count, row.id, reason, head_id, prev)
        prev, head_id = row.hash, row.id
    if anchor is not None and not anchor_seen:
        reason = "the anchored row is missing: rows were removed (from the end?)"
        return ChainReport(False, count, anchor[0], reason, head_id, prev)
    return ChainReport(True, count, None, "", head_id, prev)


def verify_database(url: str, model: type, *, anchor: str | None = None) -> ChainReport:
    """`verify` in a read-only transaction of its own (for the `audit verify` commands)."""
    from shared.db import transaction

    parsed = parse_anchor(anchor) if anchor else None
    with transaction(url) as session:
        report = verify(session, model, anchor=parsed)
        session.rollback()
    return report

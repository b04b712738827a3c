"""Append-only, hash-chained audit log; each network passes its own `AuditLog` model."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db import utcnow
from shared.jsonutil import canonical

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


def _stamp(at) -> str:
    return at.replace(tzinfo=None).isoformat(timespec="microseconds")


def record(
    session: Session,
    model: type,
    *,
    actor: str,
    action: str,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> Any:
    """Append one row chained to the last; never log secrets in `detail`."""
    last = session.execute(
        select(model.hash).order_by(model.id.desc()).limit(1).with_for_update()
    ).scalar_one_or_none()
    prev = last or GENESIS
    at = utcnow()
    detail = detail or {}
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


def verify(session: Session, model: type) -> ChainReport:
    """Walk the chain in id order; name the first row whose link or content does not match."""
    prev = GENESIS
    count = 0
    for row in session.execute(select(model).order_by(model.id)).scalars():
        count += 1
        if row.prev_hash != prev:
            return ChainReport(False, count, row.id, "previous row missing or altered")
        expected = _row_hash(prev, _stamp(row.at), row.actor, row.action, row.target, row.detail)
        if row.hash != expected:
            return ChainReport(False, count, row.id, "row content altered")
        prev = row.hash
    return ChainReport(True, count)

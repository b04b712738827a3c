"""Resend: put kept batches back into the outbox byte-identical (same seq, batch_id, bytes).

Nothing is rewritten or re-signed: the kept file (in `outbox/`, `outbox/carried/` or
`outbox/acked/`) is copied back after its sha256 is checked against the digest recorded
when it was written, so the receiver sees either a duplicate (already imported: a no-op,
acked again) or the missing sequence (imported). If the kept file is gone, that is reported:
the batch cannot be resent, only its records re-exported under a new sequence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared import audit
from transfer.protocol.acks import unacked
from transfer.protocol.archive import restore
from transfer.protocol.ledger import OUT
from transfer.protocol.tables import audit_model_for


@dataclass(frozen=True)
class ResendItem:
    stream: str
    seq: int
    batch_id: str
    file: str
    status: str  # "restored", "waiting", "missing", "damaged"
    sha256: str | None  # of the file now in the outbox
    expected_sha256: str  # recorded when the batch was written
    acked: bool
    kept_in: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("restored", "waiting")


def select_batches(
    session: Session,
    batch_model: type,
    *,
    source: str,
    stream: str | None = None,
    seq: int | None = None,
    batch_id: str | None = None,
) -> list:
    """One batch by id or by (stream, seq); by default every unacknowledged data batch."""
    if batch_id is not None:
        batch = session.get(batch_model, batch_id)
        if batch is None or batch.direction != OUT or batch.source != source:
            raise ValueError(f"this network sent no batch with id {batch_id}")
        return [batch]
    if seq is not None:
        stmt = select(batch_model).where(
            batch_model.direction == OUT, batch_model.source == source, batch_model.seq == seq
        )
        if stream is not None:
            stmt = stmt.where(batch_model.stream == stream)
        found = session.execute(stmt.order_by(batch_model.stream)).scalars().all()
        if not found:
            where = f"on stream {stream}" if stream else "on any stream"
            raise ValueError(f"this network sent no batch with seq {seq} {where}")
        if len(found) > 1:
            streams = ", ".join(b.stream for b in found)
            raise ValueError(f"seq {seq} exists on several streams ({streams}): give --stream")
        return list(found)
    batches = unacked(session, batch_model, source=source)
    return [b for b in batches if stream is None or b.stream == stream]


def resend(
    session: Session,
    batch_model: type,
    *,
    source: str,
    outbox: Path,
    stream: str | None = None,
    seq: int | None = None,
    batch_id: str | None = None,
    actor: str = "cli",
) -> list[ResendItem]:
    """Restore the selected batches into `outbox`; every restore is audited."""
    items = []
    audit_model = audit_model_for(batch_model)
    for batch in select_batches(
        session, batch_model, source=source, stream=stream, seq=seq, batch_id=batch_id
    ):
        done = restore(outbox, batch.filename, batch.digest)
        reason = done.reason
        if done.status == "missing":
            reason = (
                f"the kept file is gone ({done.reason}); it cannot be resent byte-identical. "
                "Its records must be exported again under a new sequence."
            )
        item = ResendItem(
            stream=batch.stream,
            seq=batch.seq,
            batch_id=batch.id,
            file=batch.filename,
            status=done.status,
            sha256=done.sha256,
            expected_sha256=batch.digest,
            acked=batch.acked_at is not None,
            kept_in=done.source,
            reason=reason,
        )
        items.append(item)
        if audit_model is not None and done.status == "restored":
            audit.record(
                session,
                audit_model,
                actor=actor,
                action="batch.resent",
                target=batch.filename,
                detail={"stream": batch.stream, "seq": batch.seq, "sha256": done.sha256},
            )
    return items


def report(items: list[ResendItem]) -> dict[str, Any]:
    return {
        "batches": [asdict(i) for i in items],
        "restored": sum(1 for i in items if i.status == "restored"),
        "waiting": sum(1 for i in items if i.status == "waiting"),
        "failed": sum(1 for i in items if not i.ok),
    }

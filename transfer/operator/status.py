"""What an operator needs to know about one network's side of the gap, in one structure.

`transfer_status` reads the network's `Batch` table and its transfer directory and returns a
`TransferStatus`: per stream the last sequence sent and received, the gaps, every data batch
still waiting for an ack (with its age and where its kept copy is), quarantined files with
their reasons, and the files waiting in the inbox and the outbox. `as_dict()` is what
`ferry transfer status --json` prints and what an operator endpoint returns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.db import transaction, utcnow
from shared.settings import FerrySettings
from transfer.protocol.acks import unacked
from transfer.protocol.archive import ACKED, CARRIED, batch_files, locate
from transfer.protocol.intake import pending_files
from transfer.protocol.ledger import ACKS_STREAM, IN, OUT, holes
from transfer.protocol.quarantine import list_quarantine


@dataclass(frozen=True)
class SentStream:
    stream: str
    last_seq: int
    last_at: datetime | None
    acked_through: int  # highest seq with every batch up to it acknowledged
    unacked: int


@dataclass(frozen=True)
class ReceivedStream:
    stream: str
    last_seq: int  # the high-water mark
    last_at: datetime | None
    gaps: list[int]


@dataclass(frozen=True)
class UnackedBatch:
    stream: str
    seq: int
    batch_id: str
    file: str
    created_at: datetime
    age_seconds: float
    kept_in: str | None  # "outbox", "carried", "acked" or None when the file is gone
    peer_rejected: bool
    flagged: bool


@dataclass
class TransferStatus:
    network: str
    peer: str
    generated_at: datetime
    sent: list[SentStream] = field(default_factory=list)
    received: list[ReceivedStream] = field(default_factory=list)
    unacked: list[UnackedBatch] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    inbox: list[str] = field(default_factory=list)
    outbox: list[str] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)  # carried, not yet acknowledged
    not_created: list[str] = field(default_factory=list)  # directories read as empty

    @property
    def gaps(self) -> dict[str, list[int]]:
        return {r.stream: r.gaps for r in self.received if r.gaps}

    @property
    def healthy(self) -> bool:
        """Nothing quarantined, no gaps, nothing the peer rejected."""
        rejected = any(u.peer_rejected for u in self.unacked)
        return not self.quarantined and not self.gaps and not rejected

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (datetimes as RFC 3339 strings)."""
        data = asdict(self)
        data["gaps"] = self.gaps
        data["healthy"] = self.healthy
        return _jsonable(data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _age(created_at: datetime, now: datetime) -> float:
    if created_at.tzinfo is None:  # SQLite hands back naive UTC
        now = now.replace(tzinfo=None)
    return round((now - created_at).total_seconds(), 1)


def _streams(session: Session, batch_model: type, *, direction: str, source: str) -> list:
    return session.execute(
        select(
            batch_model.stream,
            func.max(batch_model.seq).label("last_seq"),
            func.max(batch_model.created_at).label("last_at"),
        )
        .where(batch_model.direction == direction, batch_model.source == source)
        .group_by(batch_model.stream)
        .order_by(batch_model.stream)
    ).all()


def _acked_through(session: Session, batch_model: type, *, stream: str, source: str) -> int:
    first_unacked = session.execute(
        select(func.min(batch_model.seq)).where(
            batch_model.direction == OUT,
            batch_model.source == source,
            batch_model.stream == stream,
            batch_model.acked_at.is_(None),
        )
    ).scalar_one()
    if first_unacked is not None:
        return first_unacked - 1
    return session.execute(
        select(func.coalesce(func.max(batch_model.seq), 0)).where(
            batch_model.direction == OUT,
            batch_model.source == source,
            batch_model.stream == stream,
        )
    ).scalar_one()


def _kept_in(outbox: Path, name: str) -> str | None:
    path = locate(outbox, name)
    if path is None:
        return None
    return {CARRIED: "carried", ACKED: "acked"}.get(path.parent.name, "outbox")


def transfer_status(
    session: Session,
    batch_model: type,
    *,
    network_id: str,
    peer: str,
    inbox: Path,
    outbox: Path,
    quarantine_dir: Path,
    now: datetime | None = None,
) -> TransferStatus:
    now = now or utcnow()
    status = TransferStatus(network=network_id, peer=peer, generated_at=now)
    waiting = unacked(session, batch_model, source=network_id)
    for row in _streams(session, batch_model, direction=OUT, source=network_id):
        status.sent.append(
            SentStream(
                row.stream,
                row.last_seq,
                row.last_at,
                _acked_through(session, batch_model, stream=row.stream, source=network_id),
                sum(1 for b in waiting if b.stream == row.stream),
            )
        )
    for row in _streams(session, batch_model, direction=IN, source=peer):
        gaps = holes(session, batch_model, direction=IN, stream=row.stream, source=peer)
        status.received.append(ReceivedStream(row.stream, row.last_seq, row.last_at, gaps))
    for b in waiting:
        status.unacked.append(
            UnackedBatch(
                b.stream,
                b.seq,
                b.id,
                b.filename,
                b.created_at,
                _age(b.created_at, now),
                _kept_in(outbox, b.filename),
                b.peer_rejected_at is not None,
                b.flagged_at is not None,
            )
        )
    status.not_created = [str(d) for d in (inbox, outbox, quarantine_dir) if not d.exists()]
    status.quarantined = list_quarantine(quarantine_dir)
    status.inbox = [p.name for p in pending_files(inbox)]
    status.outbox = [p.name for p in batch_files(outbox)]
    status.carried = [p.name for p in batch_files(outbox / CARRIED)]
    return status


def settings_status(session: Session, batch_model: type, settings: FerrySettings) -> TransferStatus:
    """`transfer_status` of one network from its settings."""
    return transfer_status(
        session,
        batch_model,
        network_id=settings.network_id,
        peer=settings.peer_network_id,
        inbox=settings.inbox,
        outbox=settings.outbox,
        quarantine_dir=settings.quarantine_dir,
    )


def network_status(settings: FerrySettings, batch_model: type) -> TransferStatus:
    """`transfer_status` of one network from its settings, in its own transaction."""
    with transaction(settings.database_url) as session:
        return settings_status(session, batch_model, settings)


def render_text(status: TransferStatus) -> str:
    """A plain-text report for a terminal (the JSON form has the same content)."""
    at = f"{status.generated_at:%Y-%m-%d %H:%M:%S}"
    lines = [f"network {status.network} (peer {status.peer}) at {at} UTC", ""]
    lines.append("sent               last seq  acked through  unacked  last at")
    for s in status.sent:
        lines.append(
            f"  {s.stream:<16} {s.last_seq:>8}  {s.acked_through:>13}  {s.unacked:>7}  "
            f"{_when(s.last_at)}"
        )
    if not status.sent:
        lines.append("  (nothing sent yet)")
    lines.append("received           last seq  gaps")
    for r in status.received:
        gaps = ", ".join(map(str, r.gaps[:20])) + (" …" if len(r.gaps) > 20 else "")
        lines.append(f"  {r.stream:<16} {r.last_seq:>8}  {gaps or '-'}")
    if not status.received:
        lines.append("  (nothing received yet)")
    lines.append(f"unacked batches: {len(status.unacked)}")
    for u in status.unacked:
        notes = [f"kept in {u.kept_in}/" if u.kept_in else "KEPT FILE GONE"]
        if u.peer_rejected:
            notes.append("QUARANTINED BY THE PEER: resend")
        if u.flagged:
            notes.append("flagged")
        lines.append(
            f"  {u.stream} seq {u.seq}  age {_duration(u.age_seconds)}  {u.file}  "
            f"({'; '.join(notes)})"
        )
    lines.append(f"quarantined files: {len(status.quarantined)}")
    for q in status.quarantined:
        reasons = "; ".join(str(r) for r in q.get("reasons", []))
        lines.append(f"  {q.get('quarantined_as', q.get('file'))}: {reasons}")
    lines.append(f"inbox (waiting to import): {len(status.inbox)}")
    lines += [f"  {name}" for name in status.inbox]
    lines.append(f"outbox (waiting to be carried): {len(status.outbox)}")
    lines += [f"  {name}" for name in status.outbox]
    lines.append(f"carried, waiting for an ack: {len(status.carried)}")
    if status.not_created:
        lines.append(f"not created yet, read as empty: {', '.join(status.not_created)}")
    return "\n".join(lines) + "\n"


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


__all__ = [
    "ACKS_STREAM",
    "ReceivedStream",
    "SentStream",
    "TransferStatus",
    "UnackedBatch",
    "render_text",
    "transfer_status",
]

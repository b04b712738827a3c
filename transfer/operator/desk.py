"""The gap's operator tools as the admin panel's batch and quarantine pages call them: an
`OperatorDesk` (`shared.panel.operator_desk`) over `transfer.operator` and one network's
`Batch` and `AuditLog` tables.

Each tab of the batch page lists its files with what the batch ledger (the `Batch` table)
knows of them: records, errors, size, when the batch was written or imported, how long its
import took, when it was acknowledged and how long that took after it was written. A file
not in the ledger yet (one waiting in the inbox) shows what its name and the file system
tell. Every value is plain (numbers, RFC 3339 text), so that any column sorts.
"""

from __future__ import annotations

import os
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.panel.operator_desk import OperatorDesk
from shared.settings import FerrySettings
from transfer.format.names import parse_batch_filename
from transfer.operator import files
from transfer.operator.batch_report import BatchFilter, list_batches
from transfer.operator.status import settings_status
from transfer.protocol.archive import ACKED, batch_files
from transfer.protocol.intake import pending_files
from transfer.protocol.ledger import IN, OUT
from transfer.protocol.quarantine import REASON_SUFFIX, list_quarantine

#: What the ledger adds to a row; None where it does not know (yet).
LEDGER_FIELDS = ("records", "errors", "processing_ms", "written_at", "acked_at", "ack_seconds")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _ledger(b: Any) -> dict[str, Any]:
    if b is None:
        return dict.fromkeys(LEDGER_FIELDS)
    acked = (b.acked_at - b.created_at).total_seconds() if b.acked_at is not None else None
    return {
        "records": b.record_count,
        "errors": b.error_count,
        "processing_ms": b.processing_ms,
        "written_at": _iso(b.created_at),
        "acked_at": _iso(b.acked_at),
        "ack_seconds": round(acked, 1) if acked is not None else None,
        "ledger_bytes": b.bytes,
    }


def _held(session: Session, batch_model: type, direction: str, names: list[str]) -> dict:
    """The ledger's batches filed under `names` in one direction, by file name."""
    if not names:
        return {}
    query = select(batch_model).where(
        batch_model.direction == direction, batch_model.filename.in_(names)
    )
    return {b.filename: b for b in session.scalars(query)}


def _named(path: Path) -> dict[str, Any]:
    """What a batch file's name and the file system tell of it (size, last written)."""
    row: dict[str, Any] = {"file": path.name, "stream": None, "source": None, "seq": None}
    try:
        name = parse_batch_filename(path.name)
        row |= {"stream": name.stream, "source": name.source, "seq": name.seq}
    except ValueError:
        pass
    try:
        info = os.lstat(path)
    except OSError:
        return row | {"bytes": None, "modified_at": None}
    regular = stat.S_ISREG(info.st_mode)
    return row | {
        "bytes": info.st_size if regular else None,
        "modified_at": info.st_mtime,
    }


def _with_ledger(rows: list[dict[str, Any]], held: dict[str, Any]) -> list[dict[str, Any]]:
    joined = []
    for row in rows:
        known = _ledger(held.get(row["file"]))
        if row.get("bytes") is None:
            row = row | {"bytes": known.get("ledger_bytes")}
        known.pop("ledger_bytes", None)
        joined.append(row | known)
    return joined


def _notes(unacked: dict[str, Any]) -> str:
    said = []
    if unacked.get("peer_rejected"):
        said.append("quarantined by the peer: resend")
    if unacked.get("flagged"):
        said.append("flagged")
    return "; ".join(said)


def batch_rows(
    session: Session,
    batch_model: type,
    settings: FerrySettings,
    tab: str,
    status: dict[str, Any],
) -> list[dict[str, Any]]:
    """The files of one tab of the batch page with their ledger metadata: `outbox` (to
    carry next), `carried` (awaiting an acknowledgement: the transfer status's `unacked`),
    `inbox` (waiting to be imported) or `acked`."""
    if tab == "carried":
        waiting = [u | {"notes": _notes(u)} for u in status["unacked"]]
        names = [u["file"] for u in waiting]
        return _with_ledger(waiting, _held(session, batch_model, OUT, names))
    if tab == "inbox":
        found = [_named(p) for p in pending_files(settings.inbox)]
        return _with_ledger(found, _held(session, batch_model, IN, [r["file"] for r in found]))
    if tab == "acked":
        found = [_named(p) for p in batch_files(settings.outbox / ACKED)]
    else:
        found = files.outbox_batches(settings.outbox)
    return _with_ledger(found, _held(session, batch_model, OUT, [r["file"] for r in found]))


def quarantined(quarantine_dir: Path) -> list[dict[str, Any]]:
    """Every quarantined file's reason entry with what its name and the file system tell
    (stream, sequence, size) and its reasons as one text (`reason`)."""
    rows = []
    for entry in list_quarantine(quarantine_dir):
        name = entry.get("quarantined_as") or entry["reason_file"].removesuffix(REASON_SUFFIX)
        arrived = _named(Path(quarantine_dir) / name)
        try:
            parsed = parse_batch_filename(str(entry.get("file", "")))
            arrived |= {"stream": parsed.stream, "source": parsed.source, "seq": parsed.seq}
        except ValueError:
            pass
        reasons = entry.get("reasons") or []
        rows.append(
            entry
            | {k: arrived[k] for k in ("stream", "source", "seq", "bytes")}
            | {"name": name, "reason": "; ".join(str(r) for r in reasons)}
        )
    return rows


def operator_desk(batch_model: type, audit_model: type) -> OperatorDesk:
    return OperatorDesk(
        batch_model=batch_model,
        audit_model=audit_model,
        files=files,
        status=lambda session, settings: settings_status(session, batch_model, settings).as_dict(),
        batch_rows=lambda session, settings, tab, status: batch_rows(
            session, batch_model, settings, tab, status
        ),
        quarantined=quarantined,
        list_batches=lambda session, **f: list_batches(session, batch_model, BatchFilter(**f)),
    )

"""Acknowledgements: what each side tells the other it holds, and what the sender does with it.

Every outgoing batch carries one `ack` record per stream received from the peer:
`through_seq` (the highest sequence imported), `missing` (the holes below it) and `rejected`
(batch ids quarantined here, so the sender learns to resend them). The sender marks a batch
acked when `seq <= through_seq`, it is not missing and not rejected.

Acks also need to flow when a side has nothing else to send: :func:`ack_due` is true when
something arrived from the peer (an import, a redelivered duplicate or a quarantined file)
after this side's last outgoing batch, and the export then writes a batch on the `acks`
stream holding only ack records. Batches on the `acks` stream never make an ack due
themselves, so acks cannot ping-pong; they are acked in passing by whatever the peer sends
next, and are never flagged or resent (acks are cumulative: any later batch supersedes them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.orm import Session

from shared import audit
from shared.db import utcnow
from shared.records import AckData
from transfer.format.names import BatchName
from transfer.protocol.ledger import ACKS_STREAM, IN, OUT, holes

log = logging.getLogger("ferry.transfer")

MAX_MISSING = 10_000  # AckData's bound; a longer list lowers through_seq instead
MAX_REJECTED = 100


def _rejected_ids(
    session: Session, batch_model: type, rejection_model: type, *, peer: str, stream: str
) -> list[str]:
    """Recently quarantined batch ids of `stream` that were not imported since."""
    imported = exists().where(
        batch_model.id == rejection_model.batch_id, batch_model.direction == IN
    )
    rows = session.execute(
        select(rejection_model.batch_id, func.max(rejection_model.at).label("last"))
        .where(rejection_model.source == peer, rejection_model.stream == stream, ~imported)
        .group_by(rejection_model.batch_id)
        .order_by(func.max(rejection_model.at).desc())
        .limit(MAX_REJECTED)
    ).all()
    return sorted(r.batch_id for r in rows)


def acks_for(
    session: Session, batch_model: type, rejection_model: type | None = None, *, peer: str
) -> list[AckData]:
    """What this side holds of each of `peer`'s streams: contiguous run, holes, rejections."""
    streams = set(
        session.execute(
            select(batch_model.stream)
            .where(batch_model.direction == IN, batch_model.source == peer)
            .distinct()
        ).scalars()
    )
    if rejection_model is not None:
        streams |= set(
            session.execute(
                select(rejection_model.stream).where(rejection_model.source == peer).distinct()
            ).scalars()
        )
    acks = []
    for stream in sorted(streams):
        top = session.execute(
            select(func.coalesce(func.max(batch_model.seq), 0)).where(
                batch_model.direction == IN,
                batch_model.source == peer,
                batch_model.stream == stream,
            )
        ).scalar_one()
        missing = holes(session, batch_model, direction=IN, stream=stream, source=peer)
        if len(missing) > MAX_MISSING:  # claim less rather than ack what never arrived
            top, missing = missing[MAX_MISSING] - 1, missing[:MAX_MISSING]
        rejected = (
            _rejected_ids(session, batch_model, rejection_model, peer=peer, stream=stream)
            if rejection_model is not None
            else []
        )
        acks.append(AckData(stream=stream, through_seq=top, missing=missing, rejected=rejected))
    return acks


@dataclass(frozen=True)
class AckApplied:
    stream: str
    acked: int
    rejected: int
    beyond: int | None  # through_seq above the last seq sent on that stream (an alarm)


def apply_ack(session: Session, batch_model: type, ack: AckData, *, source: str) -> AckApplied:
    """Mark our outgoing batches the peer confirmed or reported quarantined."""
    mine = (
        batch_model.direction == OUT,
        batch_model.source == source,
        batch_model.stream == ack.stream,
    )
    stmt = (
        update(batch_model)
        .where(*mine, batch_model.seq <= ack.through_seq, batch_model.acked_at.is_(None))
        .values(acked_at=utcnow())
    )
    if ack.missing:
        stmt = stmt.where(batch_model.seq.not_in(ack.missing))
    if ack.rejected:
        stmt = stmt.where(batch_model.id.not_in(ack.rejected))
    acked = session.execute(stmt).rowcount or 0
    rejected = 0
    if ack.rejected:
        rejected = (
            session.execute(
                update(batch_model)
                .where(
                    *mine,
                    batch_model.id.in_(ack.rejected),
                    batch_model.acked_at.is_(None),
                    batch_model.peer_rejected_at.is_(None),
                )
                .values(peer_rejected_at=utcnow())
            ).rowcount
            or 0
        )
    last_sent = session.execute(
        select(func.coalesce(func.max(batch_model.seq), 0)).where(*mine)
    ).scalar_one()
    beyond = ack.through_seq if ack.through_seq > last_sent else None
    if beyond is not None:
        log.error(
            "ALARM: the peer acknowledges %s through seq %d but this network sent only %d",
            ack.stream,
            ack.through_seq,
            last_sent,
        )
    return AckApplied(ack.stream, acked, rejected, beyond)


def ack_due(
    session: Session,
    batch_model: type,
    rejection_model: type | None = None,
    *,
    source: str,
    peer: str,
) -> bool:
    """True when something arrived from `peer` after our last outgoing batch (acks excluded)."""
    last_out = (
        select(func.max(batch_model.created_at))
        .where(batch_model.direction == OUT, batch_model.source == source)
        .scalar_subquery()
    )
    arrived = or_(batch_model.created_at > last_out, batch_model.redelivered_at > last_out)
    conditions = [
        exists().where(
            batch_model.direction == IN,
            batch_model.source == peer,
            batch_model.stream != ACKS_STREAM,
            or_(last_out.is_(None), arrived),
        )
    ]
    if rejection_model is not None:
        conditions.append(
            exists().where(
                rejection_model.source == peer,
                rejection_model.stream != ACKS_STREAM,
                or_(last_out.is_(None), rejection_model.at > last_out),
            )
        )
    return bool(session.execute(select(or_(*conditions))).scalar())


def record_rejection(
    session: Session,
    rejection_model: type,
    *,
    name: BatchName,
    filename: str,
    verdict: str,
    reasons: list[str],
) -> None:
    session.add(
        rejection_model(
            stream=name.stream,
            source=name.source,
            seq=name.seq,
            batch_id=name.batch_id,
            filename=filename[:255],
            verdict=verdict,
            reason="; ".join(reasons)[:4000],
        )
    )
    session.flush()


def unacked(
    session: Session, batch_model: type, *, source: str, older_than: timedelta | None = None
) -> list:
    """Our outgoing data batches not yet acknowledged (oldest first); `acks` batches excluded."""
    stmt = select(batch_model).where(
        batch_model.direction == OUT,
        batch_model.source == source,
        batch_model.stream != ACKS_STREAM,
        batch_model.acked_at.is_(None),
    )
    if older_than is not None:
        stmt = stmt.where(batch_model.created_at < utcnow() - older_than)
    return list(
        session.execute(stmt.order_by(batch_model.created_at, batch_model.stream, batch_model.seq))
        .scalars()
        .all()
    )


def _age_seconds(created_at: datetime, now: datetime) -> float:
    if created_at.tzinfo is None:  # SQLite hands back naive UTC
        now = now.replace(tzinfo=None)
    return round((now - created_at).total_seconds(), 1)


def flag_unacked(
    session: Session,
    batch_model: type,
    audit_model: type | None,
    *,
    source: str,
    older_than: timedelta,
) -> list[dict]:
    """Every data batch unacked past `older_than`: a log line each time, an audit row the
    first time (and `flagged_at` set). Returns them, oldest first."""
    now = utcnow()
    found = []
    for batch in unacked(session, batch_model, source=source, older_than=older_than):
        first = batch.flagged_at is None
        if first:
            batch.flagged_at = now
            if audit_model is not None:
                audit.record(
                    session,
                    audit_model,
                    actor="system",
                    action="batch.unacked",
                    target=batch.filename,
                    detail={"stream": batch.stream, "seq": batch.seq, "batch_id": batch.id},
                )
        item = {
            "stream": batch.stream,
            "seq": batch.seq,
            "batch_id": batch.id,
            "file": batch.filename,
            "created_at": batch.created_at.isoformat(),
            "age_seconds": _age_seconds(batch.created_at, now),
            "peer_rejected": batch.peer_rejected_at is not None,
            "newly_flagged": first,
        }
        log.warning(
            "batch %s unacknowledged for %.1f h%s",
            batch.filename,
            item["age_seconds"] / 3600,
            " (the peer quarantined it: resend)" if item["peer_rejected"] else "",
        )
        found.append(item)
    session.flush()
    return found

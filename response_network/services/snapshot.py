"""A full snapshot of what this network governs, for a fresh request network: every user,
profile type and governed setting goes to the outbox at its current version, changed since
the last export or not (the request network applies what is newer than what it has)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from response_network.models import AuditLog
from response_network.services import governed
from response_network.services.identity import export_identity, send_all_again
from shared import audit
from transfer.protocol.exchange import Outbound

__all__ = ["take_snapshot"]


def take_snapshot(out: Outbound, *, session: Session, actor: str) -> dict[str, Any]:
    """Write the snapshot's batches (audited); the caller commits."""
    records = send_all_again(session=session)
    batches = export_identity(out, session=session)
    batches += governed.export_settings(out, session=session, full=True)
    files = [
        {"file": b.path.name, "stream": b.stream, "seq": b.seq, "records": b.count} for b in batches
    ]
    audit.record(
        session,
        AuditLog,
        actor=actor,
        action="identity.snapshot",
        target="users,profile_types,settings",
        detail={"users_and_profile_types": records, "batches": [f["file"] for f in files]},
    )
    return {"batches": files}

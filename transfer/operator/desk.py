"""The gap's operator tools as the admin panel's batch and quarantine pages call them: an
`OperatorDesk` (`shared.panel.operator_desk`) over `transfer.operator` and one network's
`Batch` and `AuditLog` tables."""

from __future__ import annotations

from shared.panel.operator_desk import OperatorDesk
from transfer.operator import files
from transfer.operator.batch_report import BatchFilter, list_batches
from transfer.operator.status import settings_status
from transfer.protocol.archive import ACKED, batch_files


def operator_desk(batch_model: type, audit_model: type) -> OperatorDesk:
    return OperatorDesk(
        batch_model=batch_model,
        audit_model=audit_model,
        files=files,
        status=lambda session, settings: settings_status(session, batch_model, settings).as_dict(),
        acked=lambda outbox: [p.name for p in batch_files(outbox / ACKED)],
        list_batches=lambda session, **f: list_batches(session, batch_model, BatchFilter(**f)),
    )

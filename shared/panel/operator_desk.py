"""What the batch and quarantine pages ask of the gap's operator tools (`transfer.operator`),
as each network hands them over: `shared/` does not import `transfer/` (DESIGN.md §7.9), so a
network builds its `OperatorDesk` from `transfer.operator` and its own tables, and the pages
(`batch_pages`, `quarantine_pages`) call only what it holds."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from shared.settings import FerrySettings


@dataclass(frozen=True)
class OperatorDesk:
    batch_model: type  # the network's Batch
    audit_model: type  # the network's AuditLog
    #: `transfer.operator.files`: outbox_batches, outbox_file, describe, quarantined,
    #: inspect_quarantined, release, delete and its OperatorError
    files: Any
    #: the transfer status (`transfer.operator.status.transfer_status(...).as_dict()`)
    status: Callable[[Session, FerrySettings], dict[str, Any]]
    #: one tab of the batch page (outbox, carried, inbox, acked): its files, each with the
    #: ledger's metadata (records, errors, import time, written, acknowledged), from the
    #: transfer status the page shows
    batch_rows: Callable[[Session, FerrySettings, str, dict[str, Any]], list[dict[str, Any]]]
    #: the quarantined files: each reason entry with its stream, sequence, size and reasons
    quarantined: Callable[[Path], list[dict[str, Any]]]
    #: a page of batch metadata (`transfer.operator.batch_report.list_batches`) by filter
    list_batches: Callable[..., dict[str, Any]]

    @property
    def operator_error(self) -> type[Exception]:
        return self.files.OperatorError

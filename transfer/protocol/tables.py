"""Find a network's companion tables from its `Batch` model.

Each network declares, in one declarative registry, a `Batch` (`BatchColumns`), a
`RejectedBatch` (`RejectedBatchColumns`) and an `AuditLog` (`AuditColumns`). The exchange is
handed the `Batch` model and finds the other two here, so `transfer/` never imports a network.
"""

from __future__ import annotations

from functools import cache

from shared.models import AuditColumns, RejectedBatchColumns


def _companion(batch_model: type, columns: type) -> type | None:
    registry = getattr(batch_model, "registry", None)
    if registry is None:
        return None
    found = [m.class_ for m in registry.mappers if issubclass(m.class_, columns)]
    return found[0] if len(found) == 1 else None


@cache
def rejection_model_for(batch_model: type) -> type | None:
    """The network's table of quarantined incoming batches, if it has one."""
    return _companion(batch_model, RejectedBatchColumns)


@cache
def audit_model_for(batch_model: type) -> type | None:
    """The network's hash-chained audit log, if it has one."""
    return _companion(batch_model, AuditColumns)

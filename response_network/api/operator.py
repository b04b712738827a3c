"""The response network's operator endpoints (batches in and out, quarantine)."""

from __future__ import annotations

from response_network.api.deps import caller
from response_network.models import AuditLog, Batch
from transfer.operator.api import admin_batches_router, network_operator_router

router = network_operator_router(
    operator_caller=caller("operator"), audit_model=AuditLog, batch_model=Batch
)
admin_router = admin_batches_router(admin_caller=caller("admin"), batch_model=Batch)

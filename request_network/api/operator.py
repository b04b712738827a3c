"""The request network's operator endpoints (batches in and out, quarantine)."""

from __future__ import annotations

from request_network.api.deps import OperatorDep, get_session, get_settings, require_role
from request_network.models import AuditLog, Batch
from transfer.operator_api import admin_batches_router, network_operator_router


def operator_actor(principal: OperatorDep) -> str:
    return principal.user.username


router = network_operator_router(
    settings=get_settings,
    session=get_session,
    actor=operator_actor,
    audit_model=AuditLog,
    batch_model=Batch,
)
admin_router = admin_batches_router(
    session=get_session, admin=require_role("admin"), batch_model=Batch
)

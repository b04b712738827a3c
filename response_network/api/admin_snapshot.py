"""Admin: a full snapshot of users, profile types and settings for a fresh request network."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from response_network.api.deps import Caller, caller
from response_network.services.snapshot import take_snapshot
from shared.problems import Problem
from transfer.format.keys import KeyFileError
from transfer.protocol.config import outbound_from

router = APIRouter(tags=["admin-snapshot"])
AdminDep = Annotated[Caller, Depends(caller("admin"))]


class SnapshotBatch(BaseModel):
    file: str
    stream: str
    seq: int
    records: int


class Snapshot(BaseModel):
    batches: list[SnapshotBatch]


@router.post(
    "/api/v1/admin/snapshot",
    response_model=Snapshot,
    responses={503: {"description": "This deployment cannot sign batches (no signing key)"}},
)
def snapshot(caller: AdminDep) -> Snapshot:
    """Write every user, profile type and governed setting to the outbox at its current
    version, changed or not: what a fresh request network needs. Audited
    (`identity.snapshot`); the operator carries the batches as usual."""
    try:
        with caller.unit() as unit:
            out = take_snapshot(
                outbound_from(caller.settings), session=unit.session, actor=caller.user.id
            )
    except KeyFileError as exc:
        raise Problem(503, "Service Unavailable", f"cannot sign batches here: {exc}") from None
    return Snapshot.model_validate(out)

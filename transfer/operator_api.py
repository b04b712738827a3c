"""The operator's HTTP endpoints, built once and mounted by each network's API.

(No `from __future__ import annotations` here: FastAPI must resolve the route signatures,
which use dependency aliases defined inside `operator_router`.)

Each network passes its own dependencies (settings, session, the operator role) and how to
verify and audit; the routes stay the same on both sides.
"""

from collections.abc import Callable
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session

from shared import audit as audit_log
from shared.problems import Problem
from shared.records import validate_record
from shared.settings import FerrySettings
from transfer import operator
from transfer.batch_report import BatchFilter, list_batches
from transfer.config import limits_from
from transfer.format import verify_file
from transfer.keys import load_public_keys
from transfer.reader import VerifyReport
from transfer.status import transfer_status

PREFIX = "/api/v1/operator"
Audit = Callable[[Session, str, str, str, dict[str, Any]], None]  # session, actor, action, …


def operator_router(
    *,
    settings: Callable,
    session: Callable,
    actor: Callable,
    audit: Audit,
    verify: Callable[[Any, Any], VerifyReport],
    status: Callable[[Any, Session], dict],
    problem: Callable[[int, str, list[str]], Exception],
) -> APIRouter:
    """`actor` is a dependency that admits operators and returns who they are (for audit)."""
    router = APIRouter(prefix=PREFIX, tags=["operator"])
    SettingsDep = Annotated[Any, Depends(settings)]
    SessionDep = Annotated[Session, Depends(session, scope="function")]
    ActorDep = Annotated[str, Depends(actor)]

    def refused(exc: operator.OperatorError) -> Exception:
        return problem(exc.status, exc.detail, exc.reasons)

    @router.get("/status")
    def transfer_state(s: SettingsDep, db: SessionDep, _who: ActorDep) -> dict:
        """Where this network stands at the gap (the same as `ferry transfer status --json`)."""
        return status(s, db)

    @router.get("/outbox")
    def list_outbox(s: SettingsDep, _who: ActorDep) -> list[dict]:
        """Batches ready to carry."""
        return operator.outbox_batches(s.outbox)

    @router.get("/outbox/{name}")
    def download(name: str, s: SettingsDep, _who: ActorDep) -> FileResponse:
        try:
            path = operator.outbox_file(s.outbox, name)
        except operator.OperatorError as exc:
            raise refused(exc) from None
        return FileResponse(
            path,
            media_type="application/x-ndjson",
            filename=path.name,
            headers={"Digest": f"sha-256={operator.describe(path)['sha256']}"},
        )

    @router.put("/inbox/{name}", status_code=201)
    async def upload(
        name: str,
        request: Request,
        response: Response,
        s: SettingsDep,
        db: SessionDep,
        who: ActorDep,
    ) -> dict:
        """Stream a batch into the inbox; it is verified before it is accepted."""
        try:
            result = await operator.accept_upload(
                s.inbox,
                name,
                request.stream(),
                max_bytes=s.batch_max_bytes,
                verify=lambda path: verify(s, path),
            )
        except operator.OperatorError as exc:
            audit(
                db,
                who,
                "batch.upload_refused",
                name,
                {"reason": exc.detail, "reasons": exc.reasons},
            )
            db.commit()
            raise refused(exc) from None
        if result.status != "accepted":
            response.status_code = 200
        audit(
            db,
            who,
            "batch.uploaded",
            name,
            {"sha256": result.sha256, "bytes": result.bytes, "status": result.status},
        )
        return result.__dict__

    @router.get("/quarantine")
    def list_quarantine(s: SettingsDep, _who: ActorDep) -> list[dict]:
        return operator.quarantined(s.quarantine_dir)

    @router.get("/quarantine/{name}")
    def inspect(name: str, s: SettingsDep, _who: ActorDep) -> dict:
        try:
            return operator.inspect_quarantined(s.quarantine_dir, name)
        except operator.OperatorError as exc:
            raise refused(exc) from None

    @router.post("/quarantine/{name}/release")
    def release(name: str, s: SettingsDep, db: SessionDep, who: ActorDep) -> dict:
        """Put a quarantined file back in the inbox for another try (after a fix)."""
        try:
            entry = operator.release(s.quarantine_dir, s.inbox, name)
        except operator.OperatorError as exc:
            raise refused(exc) from None
        audit(db, who, "quarantine.released", name, {"file": entry.get("file")})
        return entry

    @router.delete("/quarantine/{name}")
    def delete(name: str, s: SettingsDep, db: SessionDep, who: ActorDep) -> dict:
        try:
            entry = operator.delete(s.quarantine_dir, name)
        except operator.OperatorError as exc:
            raise refused(exc) from None
        audit(db, who, "quarantine.deleted", name, {"sha256": entry.get("sha256")})
        return entry

    return router


TITLES = {
    400: "Bad request",
    404: "Not found",
    409: "Conflict",
    413: "Too large",
    422: "Batch refused",
}


@cache
def _peer_keys(paths: tuple[Path, ...]) -> dict:
    return load_public_keys(paths)


def verify_for(settings: FerrySettings, path: Path):
    """Everything checkable without a database, as this network would check an import."""
    return verify_file(
        path,
        expected_destination=settings.network_id,
        public_keys=_peer_keys(tuple(settings.peer_public_keys)),
        limits=limits_from(settings),
        validate_record=validate_record,
    )


def network_operator_router(
    *,
    settings: Callable,
    session: Callable,
    actor: Callable,
    audit_model: type,
    batch_model: type,
) -> APIRouter:
    def write_audit(db: Session, who: str, action: str, target: str, detail: dict[str, Any]):
        audit_log.record(db, audit_model, actor=who, action=action, target=target, detail=detail)

    def problem(status: int, detail: str, reasons: list[str]) -> Problem:
        return Problem(
            status, TITLES.get(status, "Error"), detail, errors=[{"msg": r} for r in reasons]
        )

    def status(s: FerrySettings, db: Session) -> dict:
        return transfer_status(
            db,
            batch_model,
            network_id=s.network_id,
            peer=s.peer_network_id,
            inbox=s.inbox,
            outbox=s.outbox,
            quarantine_dir=s.quarantine_dir,
        ).as_dict()

    return operator_router(
        status=status,
        settings=settings,
        session=session,
        actor=actor,
        audit=write_audit,
        verify=verify_for,
        problem=problem,
    )


def admin_batches_router(*, session: Callable, admin: Callable, batch_model: type) -> APIRouter:
    """`GET /api/v1/admin/batches`: batch metadata with filters (admin only)."""
    router = APIRouter(tags=["admin"])
    SessionDep = Annotated[Session, Depends(session, scope="function")]

    @router.get("/api/v1/admin/batches")
    def batches(
        db: SessionDep,
        _admin: Annotated[Any, Depends(admin)],
        direction: Annotated[Literal["in", "out"] | None, Query()] = None,
        stream: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_]+$")] = None,
        since: datetime | None = None,
        until: datetime | None = None,
        with_errors: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict:
        return list_batches(
            db,
            batch_model,
            BatchFilter(
                direction=direction,
                stream=stream,
                since=since,
                until=until,
                with_errors=with_errors,
                limit=limit,
                offset=offset,
            ),
        )

    return router

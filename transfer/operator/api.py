"""The operator's HTTP endpoints, built once and mounted by each network's API.

(No `from __future__ import annotations` here: FastAPI must resolve the route signatures,
which use dependency aliases defined inside `operator_router`.)

Each network passes its own caller dependencies (the operator role, the admin role) and how
to verify and audit; the routes stay the same on both sides. A route's database work runs in
its one thread hop, inside the caller's unit of work.
"""

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from shared import audit as audit_log
from shared.problems import Problem
from shared.records import validate_record
from shared.settings import FerrySettings
from shared.validation import BatchFileName, DateTimeText, PageOffset, QuarantineName
from transfer.format import verify_file
from transfer.format.keys import load_public_keys
from transfer.format.reader import VerifyReport
from transfer.operator import files
from transfer.operator.batch_report import BatchFilter, BatchSort, list_batches
from transfer.operator.status import transfer_status
from transfer.protocol.config import limits_from

PREFIX = "/api/v1/operator"
Audit = Callable[[Session, str, str, str, dict[str, Any]], None]  # session, actor, action, …


def operator_router(
    *,
    operator_caller: Callable,
    audit: Audit,
    verify: Callable[[Any, Any], VerifyReport],
    status: Callable[[Any, Session], dict],
    problem: Callable[[int, str, list[str]], Exception],
) -> APIRouter:
    """`operator_caller` is the network's dependency for a route that admits operators: it
    gives an authenticated caller with `settings`, `user` and `unit()` (a unit of work with
    its `session`, run in the endpoint's one thread hop)."""
    router = APIRouter(prefix=PREFIX, tags=["operator"])
    OperatorDep = Annotated[Any, Depends(operator_caller)]

    def refused(exc: files.OperatorError) -> Exception:
        return problem(exc.status, exc.detail, exc.reasons)

    @router.get("/status")
    def transfer_state(op: OperatorDep) -> dict:
        """Where this network stands at the gap (the same as `ferry transfer status --json`)."""
        with op.unit() as unit:
            return status(op.settings, unit.session)

    @router.get("/outbox")
    def list_outbox(op: OperatorDep) -> list[dict]:
        """Batches ready to carry."""
        return files.outbox_batches(op.settings.outbox)

    @router.get(
        "/outbox/{name}",
        response_class=FileResponse,
        responses={
            200: {"content": {"application/x-ndjson": {}}, "description": "The batch file"},
            409: {"description": "The name is not a regular file"},
        },
    )
    def download(name: BatchFileName, op: OperatorDep) -> FileResponse:
        try:
            path = files.outbox_file(op.settings.outbox, name)
        except files.OperatorError as exc:
            raise refused(exc) from None
        return FileResponse(
            path,
            media_type="application/x-ndjson",
            filename=path.name,
            headers={"Digest": f"sha-256={files.describe(path)['sha256']}"},
        )

    def audited(op: Any, action: str, name: str, detail: dict[str, Any]) -> None:
        with op.unit() as unit:
            audit(unit.session, op.user.username, action, name, detail)

    @router.put(
        "/inbox/{name}",
        status_code=201,
        responses={
            200: {"description": "The same file was already in the inbox"},
            409: {"description": "A different file of that name is already in the inbox"},
            422: {"description": "The file failed verification (every reason listed)"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The batch file's bytes, streamed; verified before acceptance.",
                "content": {
                    "application/x-ndjson": {"schema": {"type": "string", "format": "binary"}}
                },
            }
        },
    )
    async def upload(
        name: BatchFileName, request: Request, response: Response, op: OperatorDep
    ) -> dict:
        """Stream a batch into the inbox; it is verified before it is accepted."""
        s = op.settings
        try:
            result = await files.accept_upload(
                s.inbox,
                name,
                request.stream(),
                max_bytes=s.batch_max_bytes,
                verify=lambda path: verify(s, path),
            )
        except files.OperatorError as exc:
            detail = {"reason": exc.detail, "reasons": exc.reasons}
            await run_in_threadpool(audited, op, "batch.upload_refused", name, detail)
            raise refused(exc) from None
        if result.status != "accepted":
            response.status_code = 200
        detail = {"sha256": result.sha256, "bytes": result.bytes, "status": result.status}
        await run_in_threadpool(audited, op, "batch.uploaded", name, detail)
        return result.__dict__

    @router.get("/quarantine")
    def list_quarantine(op: OperatorDep) -> list[dict]:
        return files.quarantined(op.settings.quarantine_dir)

    @router.get("/quarantine/{name}", responses={400: {"description": "Unsafe file name"}})
    def inspect(name: QuarantineName, op: OperatorDep) -> dict:
        try:
            return files.inspect_quarantined(op.settings.quarantine_dir, name)
        except files.OperatorError as exc:
            raise refused(exc) from None

    @router.post(
        "/quarantine/{name}/release",
        responses={
            400: {"description": "The file's original name is not a batch name"},
            409: {"description": "Not a regular file, or the inbox holds that name already"},
        },
    )
    def release(name: QuarantineName, op: OperatorDep) -> dict:
        """Put a quarantined file back in the inbox for another try (after a fix)."""
        with op.unit() as unit:
            try:
                entry = files.release(op.settings.quarantine_dir, op.settings.inbox, name)
            except files.OperatorError as exc:
                raise refused(exc) from None
            audit(unit.session, op.user.username, "quarantine.released", name,
                  {"file": entry.get("file")})  # fmt: skip
            return entry

    @router.delete(
        "/quarantine/{name}",
        responses={
            400: {"description": "Unsafe file name"},
            409: {"description": "Not a regular file"},
        },
    )
    def delete(name: QuarantineName, op: OperatorDep) -> dict:
        with op.unit() as unit:
            try:
                entry = files.delete(op.settings.quarantine_dir, name)
            except files.OperatorError as exc:
                raise refused(exc) from None
            audit(unit.session, op.user.username, "quarantine.deleted", name,
                  {"sha256": entry.get("sha256")})  # fmt: skip
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
    *, operator_caller: Callable, audit_model: type, batch_model: type
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
        operator_caller=operator_caller,
        audit=write_audit,
        verify=verify_for,
        problem=problem,
    )


def admin_batches_router(*, admin_caller: Callable, batch_model: type) -> APIRouter:
    """`GET /api/v1/admin/batches`: batch metadata with filters (admin only)."""
    router = APIRouter(tags=["admin"])

    @router.get("/api/v1/admin/batches")
    def batches(
        admin: Annotated[Any, Depends(admin_caller)],
        direction: Annotated[Literal["in", "out"] | None, Query()] = None,
        stream: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_]+$")] = None,
        since: Annotated[DateTimeText | None, Query()] = None,
        until: Annotated[DateTimeText | None, Query()] = None,
        with_errors: Annotated[
            bool | None,
            Query(description="Only batches with (true) or without (false) failed results"),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        offset: Annotated[PageOffset, Query()] = 0,
        sort: Annotated[
            BatchSort,
            Query(description="A column, `-` first for descending (default: newest first)"),
        ] = "-created_at",
    ) -> dict:
        with admin.unit() as unit:
            return list_batches(
                unit.session,
                batch_model,
                BatchFilter(
                    sort=sort,
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

"""`ferry request …`: run and operate the request network."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shared.cli_util import emit, fail, friendly

app = typer.Typer(
    help="The request network: API, worker, beat and the batch steps.", no_args_is_help=True
)
db = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db, name="db")
audit = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit, name="audit")


TransferDir = Annotated[
    Path | None,
    typer.Option("--transfer-dir", help="Overrides FERRY_REQUEST_TRANSFER_DIR for this run"),
]


AuditAnchor = Annotated[
    str | None,
    typer.Option(
        "--anchor",
        help="ID:HASH of a head printed by an earlier verify; fails if that row is gone",
    ),
]


def _settings(transfer_dir: Path | None = None):
    from request_network.settings import get_settings

    settings = get_settings()
    if transfer_dir is not None:
        settings = settings.model_copy(update={"transfer_dir": transfer_dir})
    return settings


@app.command()
@friendly
def serve(host: str = "127.0.0.1", port: Annotated[int, typer.Option(min=1, max=65535)] = 8000):
    """Serve the request API with uvicorn."""
    import uvicorn

    from request_network.app import create_app

    uvicorn.run(create_app(_settings()), host=host, port=port, proxy_headers=False)


@app.command()
@friendly
def worker(concurrency: Annotated[int, typer.Option(min=1)] = 2):
    """Run a Celery worker for the request network's queue."""
    from request_network.tasks import QUEUE, celery

    celery.worker_main(["worker", "-Q", QUEUE, "-c", str(concurrency), "--loglevel=INFO"])


@app.command()
@friendly
def beat():
    """Run Celery beat with the request network's schedule."""
    from request_network.tasks import celery

    celery.start(["beat", "--loglevel=INFO"])


@audit.command("verify")
@friendly
def audit_verify(anchor: AuditAnchor = None):
    """Check the audit log's hash chain; exit 2 naming the first broken row.

    Prints the row count and the head (last id and hash): write them down elsewhere and
    pass them back as --anchor ID:HASH to also catch rows removed from the end.
    """
    from request_network.models import AuditLog
    from shared.audit import verify_database

    report = verify_database(_settings().database_url, AuditLog, anchor=anchor)
    emit(report.as_dict())
    if not report.ok:
        raise fail(f"audit chain broken at row {report.first_broken_id}: {report.reason}", 2)


@db.command("upgrade")
@friendly
def db_upgrade(revision: str = "head"):
    """Apply migrations to the request database."""
    from shared.migrate import upgrade

    upgrade("request", _settings().database_url, revision)
    typer.echo(f"request database at {revision}")


@app.command("export")
@friendly
def export_cmd(transfer_dir: TransferDir = None):
    """Write pending requests to the outbox as signed batches."""
    from request_network import jobs

    emit(jobs.export(_settings(transfer_dir)))


@app.command("import")
@friendly
def import_cmd(transfer_dir: TransferDir = None):
    """Import results and identity batches waiting in the inbox."""
    from request_network import jobs

    result = jobs.import_inbox(_settings(transfer_dir))
    emit(result)
    if any(f["status"] == "quarantined" for f in result["files"]):
        raise typer.Exit(3)


@app.command()
@friendly
def resend(
    stream: Annotated[str | None, typer.Option(help="Only batches of this stream")] = None,
    seq: Annotated[int | None, typer.Option(min=1, help="Only this sequence number")] = None,
    batch_id: Annotated[str | None, typer.Option("--batch-id", help="Only this batch")] = None,
    transfer_dir: TransferDir = None,
):
    """Put unacknowledged batches (or the one named) back into the outbox, byte-identical.

    Same seq, batch_id and bytes, copied from the kept file; exit 1 if one is gone.
    """
    from request_network import jobs
    from transfer.cli import run_resend

    selection = {"stream": stream, "seq": seq, "batch_id": batch_id}
    run_resend("request", jobs.resend, _settings(transfer_dir), **selection)

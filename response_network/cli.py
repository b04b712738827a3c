"""`ferry response …`: run and operate the response network."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shared.cli_util import emit, fail, friendly

app = typer.Typer(
    help="The response network: API, worker, beat, identity and the batch steps.",
    no_args_is_help=True,
)
db = typer.Typer(help="Database schema.", no_args_is_help=True)
users = typer.Typer(help="Users (this network is their authority).", no_args_is_help=True)
profile_types = typer.Typer(help="Profile types.", no_args_is_help=True)
index = typer.Typer(help="Elasticsearch indices.", no_args_is_help=True)
audit = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
for sub, name in (
    (db, "db"),
    (users, "users"),
    (profile_types, "profile-types"),
    (index, "index"),
    (audit, "audit"),
):
    app.add_typer(sub, name=name)


TransferDir = Annotated[
    Path | None,
    typer.Option("--transfer-dir", help="Overrides FERRY_RESPONSE_TRANSFER_DIR for this run"),
]


AuditAnchor = Annotated[
    str | None,
    typer.Option(
        "--anchor",
        help="ID:HASH of a head printed by an earlier verify; fails if that row is gone",
    ),
]


def _settings(transfer_dir: Path | None = None):
    from response_network.settings import get_settings

    settings = get_settings()
    if transfer_dir is not None:
        settings = settings.model_copy(update={"transfer_dir": transfer_dir})
    return settings


@app.command()
@friendly
def serve(host: str = "127.0.0.1", port: Annotated[int, typer.Option(min=1, max=65535)] = 8001):
    """Serve the response network's API (health) with uvicorn."""
    import uvicorn

    from response_network.app import create_app

    uvicorn.run(create_app(_settings()), host=host, port=port, proxy_headers=False)


@app.command()
@friendly
def worker(concurrency: Annotated[int, typer.Option(min=1)] = 2):
    """Run a Celery worker for the response network's queue."""
    from response_network.tasks import QUEUE, celery

    celery.worker_main(["worker", "-Q", QUEUE, "-c", str(concurrency), "--loglevel=INFO"])


@app.command()
@friendly
def beat():
    """Run Celery beat with the response network's schedule."""
    from response_network.tasks import celery

    celery.start(["beat", "--loglevel=INFO"])


@audit.command("verify")
@friendly
def audit_verify(anchor: AuditAnchor = None):
    """Check the audit log's hash chain; exit 2 naming the first broken row.

    Prints the row count and the head (last id and hash): write them down elsewhere and
    pass them back as --anchor ID:HASH to also catch rows removed from the end.
    """
    from response_network.models import AuditLog
    from shared.audit import verify_database

    report = verify_database(_settings().database_url, AuditLog, anchor=anchor)
    emit(report.as_dict())
    if not report.ok:
        raise fail(f"audit chain broken at row {report.first_broken_id}: {report.reason}", 2)


@db.command("upgrade")
@friendly
def db_upgrade(revision: str = "head"):
    """Apply migrations to the response database."""
    from shared.migrate import upgrade

    upgrade("response", _settings().database_url, revision)
    typer.echo(f"response database at {revision}")


@app.command("import")
@friendly
def import_cmd(transfer_dir: TransferDir = None):
    """Import request batches waiting in the inbox."""
    from response_network import jobs

    result = jobs.import_inbox(_settings(transfer_dir))
    emit(result)
    if any(f["status"] == "quarantined" for f in result["files"]):
        raise typer.Exit(3)


@app.command()
@friendly
def execute():
    """Run queued requests against Elasticsearch."""
    from response_network import jobs

    emit(jobs.execute(_settings()))


@app.command("export")
@friendly
def export_cmd(transfer_dir: TransferDir = None):
    """Write results (and changed users and profile types) to the outbox."""
    from response_network import jobs

    emit(jobs.export(_settings(transfer_dir)))


@users.command("create")
@friendly
def users_create(
    username: Annotated[str, typer.Option(help="Login name")],
    profile_type: Annotated[str, typer.Option(help="Profile type the user queries with")],
    role: Annotated[str, typer.Option(help="user, operator or admin")] = "user",
    password: Annotated[
        str,
        typer.Option(
            prompt=True, hide_input=True, confirmation_prompt=True, envvar="FERRY_NEW_USER_PASSWORD"
        ),
    ] = ...,
):
    """Create a user; it reaches the request network with the next export."""
    from response_network.services.identity import create_user
    from shared.db import transaction

    settings = _settings()
    with transaction(settings.database_url) as session:
        user = create_user(
            session,
            username=username,
            password=password,
            profile_type=profile_type,
            role=role,
            rounds=settings.bcrypt_rounds,
        )
        emit(
            {
                "id": user.id,
                "username": user.username,
                "role": user.role,
                "profile_type": user.profile_type,
            }
        )


@profile_types.command("load")
@friendly
def profile_types_load(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]):
    """Create or update profile types from a JSON list."""
    from response_network.services.identity import load_profile_types
    from shared.db import transaction

    with transaction(_settings().database_url) as session:
        loaded = load_profile_types(session, file)
        emit({"loaded": [{"name": p.name, "version": p.version} for p in loaded]})


@index.command("load")
@friendly
def index_load(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    name: Annotated[str, typer.Option("--index", help="Target index")],
    id_field: str = "id",
):
    """Bulk-load a JSONL file of documents into an index."""
    from response_network.jobs import backend_for
    from response_network.services.documents import read_jsonl

    backend = backend_for(_settings())
    try:
        count = backend.bulk_load(name, read_jsonl(file), id_field=id_field)
    finally:
        backend.close()
    emit({"index": name, "documents": count})


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
    from response_network import jobs
    from transfer.cli import run_resend

    selection = {"stream": stream, "seq": seq, "batch_id": batch_id}
    run_resend("response", jobs.resend, _settings(transfer_dir), **selection)

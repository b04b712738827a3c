"""`ferry request …`: run and operate the request network."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shared.cli_util import emit, friendly

app = typer.Typer(
    help="The request network: API, worker, beat and the batch steps.", no_args_is_help=True
)
db = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db, name="db")


TransferDir = Annotated[
    Path | None,
    typer.Option("--transfer-dir", help="Overrides FERRY_REQUEST_TRANSFER_DIR for this run"),
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

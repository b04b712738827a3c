"""The commands both networks share — serve, worker, beat, db upgrade, audit verify, import,
export, resend — built once from a description of the network.

The description holds loaders (functions that import on call), so `shared/` never imports a
network package and `ferry --help` stays fast. (No `from __future__ import annotations`:
Typer must resolve the commands' signatures, which use an alias local to `network_cli`.)
"""

import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from shared.cli_util import emit, fail, friendly

#: How long uvicorn waits for a new worker process of `serve --workers N` to answer.
WORKER_READY_TIMEOUT_S = 30
#: uvicorn's HTTP protocol for `serve` (see shared.http.NoDelayHTTP).
SERVE_HTTP = "shared.http:NoDelayHTTP"


def _stopped(signum: int, frame: Any) -> None:
    """SIGTERM to a one-process `serve` outside uvicorn's own handler: before uvicorn serves
    (nothing to finish), or passed on by uvicorn once its graceful shutdown is over (uvicorn
    raises the signal again after restoring this handler). A stop asked for: exit 0."""
    raise SystemExit(0)


@dataclass(frozen=True)
class Network:
    name: str  # "request" or "response"
    port: int
    settings: Callable[[], Any]
    create_app: Callable[[Any], Any]
    app_factory: str  # "package.module:create_app", for uvicorn's worker processes
    celery: Callable[[], tuple[Any, str]]  # (the Celery app, its queue)
    jobs: Callable[[], ModuleType]
    transfer_cli: Callable[
        [], ModuleType
    ]  # transfer.operator.cli: shared/ does not import transfer/
    audit_model: Callable[[], type]
    import_help: str
    export_help: str
    # The network is an authority whose export can be a full snapshot (`export --full`).
    full_export: bool = False


def network_cli(net: Network, *, help: str) -> tuple[typer.Typer, Callable[..., Any]]:
    """The network's Typer app with the shared commands, and its settings loader."""
    app = typer.Typer(help=help, no_args_is_help=True)
    db = typer.Typer(help="Database schema.", no_args_is_help=True)
    audit = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
    app.add_typer(db, name="db")
    app.add_typer(audit, name="audit")
    env = f"FERRY_{net.name.upper()}_TRANSFER_DIR"
    TransferDir = Annotated[  # noqa: N806 - a type alias for the options below
        Path | None, typer.Option("--transfer-dir", help=f"Overrides {env} for this run")
    ]

    def settings(transfer_dir: Path | None = None):
        from shared.logs import set_format, set_level

        loaded = net.settings()
        set_level(loaded.log_level)  # FERRY_<NET>_LOG_LEVEL, from here on
        set_format(loaded.log_format)  # FERRY_<NET>_LOG_FORMAT, likewise
        if transfer_dir is not None:
            loaded = loaded.model_copy(update={"transfer_dir": transfer_dir})
        return loaded

    def starting():
        """Settings of a network process that is starting: its transfer directories exist
        from here on, so neither its steps nor an operator ever meet a missing one."""
        loaded = settings()
        net.jobs().make_transfer_dirs(loaded)
        return loaded

    @app.command()
    @friendly
    def serve(
        host: str = "127.0.0.1",
        port: Annotated[int, typer.Option(min=1, max=65535)] = net.port,
        workers: Annotated[
            int,
            typer.Option(
                min=1,
                envvar=f"FERRY_{net.name.upper()}_API_WORKERS",
                help="Worker processes (one per core suits a host of its own)",
            ),
        ] = 1,
    ):
        """Serve the network's API with uvicorn.

        SIGHUP reloads the local settings (docs/OPERATIONS.md, "Reloading local settings").

        SIGTERM stops it gracefully (docs/OPERATIONS.md, "Stopping processes").
        """
        import uvicorn

        from shared.logs import uvicorn_log_config

        loaded = starting()
        options = {"host": host, "port": port, "proxy_headers": False, "http": SERVE_HTTP}
        options["log_config"] = uvicorn_log_config(loaded.log_level, loaded.log_format)
        options["timeout_graceful_shutdown"] = loaded.shutdown_grace_s
        if workers == 1:
            app = net.create_app(loaded)
            signal.signal(signal.SIGTERM, _stopped)
            uvicorn.run(app, **options)
        else:  # each worker process builds the app from the same environment
            # A worker process imports and builds the whole app before it answers uvicorn's
            # health check: on a busy host that takes longer than uvicorn's 5 s default.
            options["timeout_worker_healthcheck"] = WORKER_READY_TIMEOUT_S
            uvicorn.run(net.app_factory, factory=True, workers=workers, **options)

    @app.command()
    @friendly
    def worker(concurrency: Annotated[int, typer.Option(min=1)] = 2):
        """Run a Celery worker for the network's queue.

        SIGHUP restarts it warm once the new settings validate (docs/OPERATIONS.md).
        """
        from shared.reload import check_before_restart

        loaded = starting()
        celery, queue = net.celery()
        check_before_restart(loaded)
        level = f"--loglevel={loaded.log_level}"
        celery.worker_main(["worker", "-Q", queue, "-c", str(concurrency), level])

    @app.command()
    @friendly
    def beat():
        """Run Celery beat with the network's schedule.

        SIGHUP restarts it once the new settings validate (docs/OPERATIONS.md).
        """
        from shared.reload import restart_on_sighup

        loaded = starting()
        celery, _ = net.celery()
        restart_on_sighup(loaded)  # docs/OPERATIONS.md, "Reloading local settings (SIGHUP)"
        celery.start(["beat", f"--loglevel={loaded.log_level}"])

    @db.command("upgrade")
    @friendly
    def db_upgrade(revision: str = "head"):
        """Apply migrations to the network's database."""
        from shared.migrate import upgrade

        upgrade(net.name, starting().database_url, revision)
        typer.echo(f"{net.name} database at {revision}")

    @audit.command("verify")
    @friendly
    def audit_verify(
        anchor: Annotated[
            str | None,
            typer.Option(
                "--anchor",
                help="ID:HASH of a head printed by an earlier verify; fails if that row is gone",
            ),
        ] = None,
    ):
        """Check the audit log's hash chain; exit 2 naming the first broken row.

        Prints the row count and the head (last id and hash): write them down elsewhere and
        pass them back as --anchor ID:HASH to also catch rows removed from the end.
        """
        from shared.audit import verify_database

        report = verify_database(settings().database_url, net.audit_model(), anchor=anchor)
        emit(report.as_dict())
        if not report.ok:
            raise fail(f"audit chain broken at row {report.first_broken_id}: {report.reason}", 2)

    @app.command("import", help=net.import_help)
    @friendly
    def import_cmd(transfer_dir: TransferDir = None):
        result = net.jobs().import_inbox(settings(transfer_dir))
        emit(result)
        if any(f["status"] == "quarantined" for f in result["files"]):
            raise typer.Exit(3)

    if net.full_export:

        @app.command("export", help=net.export_help)
        @friendly
        def export_full_cmd(
            full: Annotated[
                bool,
                typer.Option(
                    "--full",
                    help="Every user, profile type and setting, changed or not (a snapshot "
                    "for a fresh request network)",
                ),
            ] = False,
            transfer_dir: TransferDir = None,
        ):
            emit(net.jobs().export(settings(transfer_dir), full=full))

    else:

        @app.command("export", help=net.export_help)
        @friendly
        def export_cmd(transfer_dir: TransferDir = None):
            emit(net.jobs().export(settings(transfer_dir)))

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
        selection = {"stream": stream, "seq": seq, "batch_id": batch_id}
        net.transfer_cli().run_resend(
            net.name, net.jobs().resend, settings(transfer_dir), **selection
        )

    return app, settings

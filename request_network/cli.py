"""`ferry request …`: run and operate the request network."""

from __future__ import annotations

from typing import Annotated

import typer

from shared.cli_util import emit, fail, friendly, print_trace
from shared.network_cli import Network, network_cli


def _settings():
    from request_network.settings import get_settings

    return get_settings()


def _create_app(settings):
    from request_network.app import create_app

    return create_app(settings)


def _celery():
    from request_network.tasks import QUEUE, celery

    return celery, QUEUE


def _jobs():
    from request_network import jobs

    return jobs


def _transfer_cli():
    from transfer.operator import cli

    return cli


def _audit_model():
    from request_network.models import AuditLog

    return AuditLog


app, _loaded_settings = network_cli(
    Network(
        name="request",
        port=8000,
        settings=_settings,
        create_app=_create_app,
        app_factory="request_network.app:create_app",
        celery=_celery,
        jobs=_jobs,
        transfer_cli=_transfer_cli,
        audit_model=_audit_model,
        import_help="Import results and identity batches waiting in the inbox.",
        export_help="Write pending requests to the outbox as signed batches.",
    ),
    help="The request network: API, worker, beat and the batch steps.",
)


@app.command()
@friendly
def trace(
    request_id: Annotated[str, typer.Argument(help="The request's id (a UUID)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
):
    """The life of one request across both networks: submitted, exported, imported and
    executed on the response network, its result exported back and imported here, first
    read. A step not reached yet shows no time."""
    from request_network.services import trace as trace_service
    from shared.db import reading
    from shared.problems import Problem

    if not trace_service.is_request_id(request_id):
        raise fail(
            f"not a request id: {request_id!r} (a request id is a lower-case UUID, "
            "e.g. 0190a5da-c967-74bb-8cce-b302099a8057)",
            code=2,
        )
    with reading(_loaded_settings().database_url) as session:
        try:
            found = trace_service.trace(request_id, session=session)
        except Problem as exc:
            raise fail(exc.detail) from None
    if as_json:
        emit(found)
        return
    print_trace(found)

"""`ferry request …`: run and operate the request network."""

from __future__ import annotations

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


app, _ = network_cli(
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

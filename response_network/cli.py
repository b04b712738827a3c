"""`ferry response …`: run and operate the response network."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from shared.cli_util import emit, fail, friendly, print_trace
from shared.network_cli import Network, network_cli


def _load_settings():
    from response_network.settings import get_settings

    return get_settings()


def _create_app(settings):
    from response_network.app import create_app

    return create_app(settings)


def _celery():
    from response_network.tasks import QUEUE, celery

    return celery, QUEUE


def _jobs():
    from response_network import jobs

    return jobs


def _transfer_cli():
    from transfer.operator import cli

    return cli


def _audit_model():
    from response_network.models import AuditLog

    return AuditLog


app, _settings = network_cli(
    Network(
        name="response",
        port=8001,
        settings=_load_settings,
        create_app=_create_app,
        app_factory="response_network.app:create_app",
        celery=_celery,
        jobs=_jobs,
        transfer_cli=_transfer_cli,
        audit_model=_audit_model,
        import_help="Import request batches waiting in the inbox.",
        export_help="Write results (and changed users, profile types and settings) to the outbox.",
        full_export=True,
    ),
    help="The response network: API, worker, beat, identity and the batch steps.",
)
users = typer.Typer(help="Users (this network is their authority).", no_args_is_help=True)
profile_types = typer.Typer(help="Profile types.", no_args_is_help=True)
index = typer.Typer(help="Elasticsearch indices.", no_args_is_help=True)
governed_settings = typer.Typer(
    help="Governed settings (this network is their authority).", no_args_is_help=True
)
for sub, name in (
    (users, "users"),
    (profile_types, "profile-types"),
    (index, "index"),
    (governed_settings, "settings"),
):
    app.add_typer(sub, name=name)


@app.command()
@friendly
def trace(
    request_id: Annotated[str, typer.Argument(help="The request's id (a UUID)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
):
    """What this network holds of one request's life: the batch it came in, every
    execution, its result and the batch that carried the result back (acknowledged or not).
    `ferry request trace` on the request network shows the whole life."""
    from response_network.services import trace as trace_service
    from shared.db import reading
    from shared.problems import Problem
    from shared.validation import UUID_PATTERN

    if re.fullmatch(UUID_PATTERN, request_id) is None:
        raise fail(f"not a request id: {request_id!r} (a request id is a lower-case UUID)", code=2)
    with reading(_settings().database_url) as session:
        try:
            found = trace_service.trace(request_id, session=session)
        except Problem as exc:
            raise fail(
                f"no request {request_id} on this network" if exc.status == 404 else exc.detail
            ) from None
    if as_json:
        emit(found)
        return
    print_trace(found)


@app.command()
@friendly
def execute():
    """Run queued requests against Elasticsearch."""
    from response_network import jobs

    emit(jobs.execute(_settings()))


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
            session=session,
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
        loaded = load_profile_types(file, session=session)
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


def _bounds(item: dict) -> str:
    low, high = item["minimum"], item["maximum"]
    if low is None and high is None:
        return ""
    return f"{low} {'<' if item['exclusive_minimum'] else '≤'} x ≤ {high}"


@governed_settings.command("list")
@friendly
def settings_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")] = False,
):
    """Every governed key: value in force and its source, version, default and bounds."""
    import orjson
    from rich.table import Table

    from response_network.services import governed
    from shared.cli_util import console
    from shared.db import transaction

    settings = _settings()
    with transaction(settings.database_url) as session:
        items = governed.list_settings(settings, session=session)
    if as_json:
        emit(items)
        return
    table = Table("key", "value", "source", "version", "default", "bounds", "exported")
    for item in items:
        table.add_row(
            item["key"],
            orjson.dumps(item["value"]).decode(),
            item["source"],
            str(item["version"]),
            orjson.dumps(item["default"]).decode(),
            _bounds(item),
            "yes" if item["replicated"] else "no",
        )
    console.print(table)


@governed_settings.command("get")
@friendly
def settings_get(key: Annotated[str, typer.Argument(help="The key, e.g. rate_limits.soft_ratio")]):
    """One governed key as `list` shows it, with its description."""
    from response_network.services import governed
    from shared.db import transaction

    settings = _settings()
    with transaction(settings.database_url) as session:
        emit(governed.get_setting(key, settings, session=session))


@governed_settings.command("set")
@friendly
def settings_set(
    key: Annotated[str, typer.Argument(help="The key, e.g. rate_limits.soft_ratio")],
    value: Annotated[str, typer.Argument(help="The new value as JSON (null: the default)")],
):
    """Change one governed key (versioned, audited); the next settings export carries it."""
    import orjson

    from response_network.services import governed
    from shared.db import transaction

    try:
        parsed = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise ValueError(f"{key}: the value must be JSON (e.g. 0.75, 300, {{}} or null)") from None
    settings = _settings()
    with transaction(settings.database_url) as session:
        items, changed = governed.set_values({key: parsed}, settings, session=session, actor="cli")
    item = next(i for i in items if i["key"] == key)
    emit({**item, "changed": bool(changed)})


@governed_settings.command("export")
@friendly
def settings_export(
    full: Annotated[
        bool, typer.Option("--full", help="Every governed key, not only those changed")
    ] = False,
):
    """Write changed governed settings (or, with --full, all of them) to the outbox."""
    from response_network import jobs

    emit(jobs.export_settings(_settings(), full=full))

"""The `ferry` console script."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from request_network.cli import app as request_app
from response_network.cli import app as response_app
from shared.cli_util import emit, friendly
from shared.logs import configure_logging
from transfer.operator.cli import app as transfer_app
from transfer.operator.cli import keys as keys_app

app = typer.Typer(
    help="Ferry carries queries and answers across an air gap.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(request_app, name="request")
app.add_typer(response_app, name="response")
app.add_typer(transfer_app, name="transfer")
app.add_typer(keys_app, name="keys")


class NetworkName(StrEnum):
    request = "request"
    response = "response"


@transfer_app.command("status")
@friendly
def status_cmd(
    network: Annotated[
        NetworkName, typer.Option("--network", "-n", help="Whose side: request or response")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text")] = False,
    transfer_dir: Annotated[
        Path | None, typer.Option("--transfer-dir", help="Overrides the network's transfer_dir")
    ] = None,
):
    """Where one network stands at the gap (text, or --json).

    Last sequence sent and received per stream, gaps, unacknowledged batches with their
    age, quarantined files with reasons, files waiting in the inbox and the outbox.
    """
    from transfer.operator.cli import database_errors
    from transfer.operator.status import render_text

    if network is NetworkName.request:
        from request_network import jobs
        from request_network.settings import get_settings
    else:
        from response_network import jobs
        from response_network.settings import get_settings
    settings = get_settings()
    if transfer_dir is not None:
        settings = settings.model_copy(update={"transfer_dir": transfer_dir})
    with database_errors(network.value):
        status = jobs.transfer_status(settings)
    if as_json:
        emit(status.as_dict())
    else:
        typer.echo(render_text(status), nl=False)


@app.command()
def demo(
    workdir: str = typer.Option("var/demo", help="Scratch directory (wiped first)"),
    serve: bool = typer.Option(
        False, "--serve", help="Then keep both APIs and their admin panels up until Ctrl-C"
    ),
    request_port: int = typer.Option(
        8000, min=0, max=65535, help="With --serve: the request network's port (0: any free)"
    ),
    response_port: int = typer.Option(
        8001, min=0, max=65535, help="With --serve: the response network's port (0: any free)"
    ),
):
    """Run the whole cycle on embedded defaults and check the answer.

    With --serve, both networks' APIs and admin panels then stay up on 127.0.0.1 (their URLs
    and a panel login made for this run are printed) until Ctrl-C or SIGTERM.
    """
    from ferry.demo import run_demo

    configure_logging(log_format="console")  # readable lines beside the narration
    raise typer.Exit(
        run_demo(workdir, serve=serve, request_port=request_port, response_port=response_port)
    )


def main() -> None:
    configure_logging()
    app()

"""The `ferry` console script."""

from __future__ import annotations

import typer

from request_network.cli import app as request_app
from response_network.cli import app as response_app
from shared.logs import configure_logging
from transfer.cli import app as transfer_app
from transfer.cli import keys as keys_app

app = typer.Typer(
    help="Ferry carries queries and answers across an air gap.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(request_app, name="request")
app.add_typer(response_app, name="response")
app.add_typer(transfer_app, name="transfer")
app.add_typer(keys_app, name="keys")


@app.command()
def demo(
    workdir: str = typer.Option("var/demo", help="Scratch directory (wiped first)"),
):
    """Run the whole cycle on embedded defaults and check the answer."""
    from ferry.demo import run_demo

    raise typer.Exit(run_demo(workdir))


def main() -> None:
    configure_logging()
    app()

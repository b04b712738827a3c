"""`ferry transfer …` and `ferry keys …`: tools for the operator at the gap."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shared.cli_util import emit, errors, friendly

app = typer.Typer(help="Check and carry batch files.", no_args_is_help=True)
keys = typer.Typer(help="Signing keys.", no_args_is_help=True)


@app.command()
@friendly
def verify(
    files: Annotated[list[Path], typer.Argument(help="Batch files to check")],
    destination: Annotated[
        str,
        typer.Option(
            envvar="FERRY_VERIFY_DESTINATION", help="Network id the batches must be addressed to"
        ),
    ],
    public_key: Annotated[
        list[Path],
        typer.Option(envvar="FERRY_VERIFY_PUBLIC_KEYS", help="Public key file or directory"),
    ],
):
    """Check batch files without a database: format, digest, signature, schema, limits."""
    from shared.records import validate_record
    from transfer.format import verify_file
    from transfer.keys import load_public_keys

    keys_by_id = load_public_keys(public_key)
    failed = 0
    for f in files:
        report = verify_file(
            f,
            expected_destination=destination,
            public_keys=keys_by_id,
            validate_record=validate_record,
        )
        if report.ok:
            typer.echo(f"OK    {f}  records={report.count} sha256={report.digest}")
        else:
            failed += 1
            errors.print(f"FAIL  {f}", highlight=False)
            for reason in report.reasons:
                errors.print(f"      - {reason}", highlight=False)
    if failed:
        raise typer.Exit(1)


@app.command("carry")
@friendly
def carry_cmd(
    source: Annotated[Path, typer.Option("--from", help="Outbox (or media) to copy from")],
    destination: Annotated[Path, typer.Option("--to", help="Media (or inbox) to copy to")],
    keep: Annotated[bool, typer.Option(help="Leave carried files in the source")] = False,
):
    """Copy ready batches with their sidecars, checking digests before and after."""
    from transfer.carry import carry

    report = carry(source, destination, archive=not keep)
    emit({"copied": report.copied, "skipped": report.skipped, "refused": report.refused})
    if not report.ok:
        raise typer.Exit(1)


@keys.command("generate")
@friendly
def generate(
    network: Annotated[str, typer.Option(help="Network id the key belongs to")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to write the key pair")],
):
    """Create an Ed25519 signing key (0600) and its public key for the other side."""
    from transfer.keys import generate_keypair

    private, public = generate_keypair(directory, network)
    emit({"private_key": str(private), "public_key": str(public)})

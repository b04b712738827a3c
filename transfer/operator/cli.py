"""`ferry transfer …` and `ferry keys …`: tools for the operator at the gap."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from shared.cli_util import emit, errors, friendly

app = typer.Typer(help="Check, carry and follow batch files.", no_args_is_help=True)
keys = typer.Typer(help="Signing keys.", no_args_is_help=True)


@app.command()
@friendly
def verify(
    paths: Annotated[
        list[Path],
        typer.Argument(
            metavar="FILES...", help="Batch files, or directories: every batch file in them"
        ),
    ],
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
    max_batch_bytes: Annotated[
        int | None, typer.Option(min=1, envvar="FERRY_VERIFY_MAX_BATCH_BYTES")
    ] = None,
    max_records: Annotated[
        int | None, typer.Option(min=1, envvar="FERRY_VERIFY_MAX_RECORDS")
    ] = None,
    max_line_bytes: Annotated[
        int | None, typer.Option(min=1, envvar="FERRY_VERIFY_MAX_LINE_BYTES")
    ] = None,
    jobs: Annotated[
        int, typer.Option(min=0, help="Files checked at once (0: one per CPU core)")
    ] = 0,
):
    """Check batch files without a database; list every failure of every file.

    Checks the name, format, digest and sidecar, signature, destination, not_after, record
    schema and size limits. The exit code is 0 only if every file passes. A directory
    that does not exist yet holds nothing to check.
    """
    import os
    from dataclasses import replace

    from transfer.format import Limits
    from transfer.format.keys import load_public_keys
    from transfer.operator.verify_many import expand_paths, verify_files

    load_public_keys(public_key)  # a bad key file is reported before any work starts
    files, not_created = expand_paths(paths)
    for directory in not_created:
        errors.print(
            f"nothing to verify: {directory} does not exist yet", highlight=False, markup=False
        )
    if not files:
        if not not_created:
            errors.print("nothing to verify: no batch files there", highlight=False)
        return
    limits = Limits()
    given = {
        "max_batch_bytes": max_batch_bytes,
        "max_records": max_records,
        "max_line_bytes": max_line_bytes,
    }
    limits = replace(limits, **{k: v for k, v in given.items() if v is not None})
    failed = 0
    reports = verify_files(
        files,
        expected_destination=destination,
        key_paths=public_key,
        limits=limits,
        jobs=jobs or os.cpu_count() or 1,
    )
    for f, report in reports:
        if report.ok:
            typer.echo(f"OK    {f}  records={report.count} sha256={report.digest}")
        else:
            failed += 1
            errors.print(f"FAIL  {f}", highlight=False, markup=False, soft_wrap=True)
            for reason in report.reasons:
                errors.print(f"      - {reason}", highlight=False, markup=False, soft_wrap=True)
    if failed:
        errors.print(f"{failed} of {len(files)} files failed", highlight=False)
        raise typer.Exit(1)


def _progress_bar(total: int):
    """A Rich progress bar on stderr (bytes, rate, ETA); a no-op when stderr is no terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    progress = Progress(
        TextColumn("carrying"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not sys.stderr.isatty(),
        transient=False,
    )
    task = progress.add_task("carry", total=total)
    return progress, lambda n: progress.advance(task, n)


@app.command("carry")
@friendly
def carry_cmd(
    source: Annotated[Path, typer.Option("--from", help="Outbox (or media) to copy from")],
    destination: Annotated[Path, typer.Option("--to", help="Media (or inbox) to copy to")],
    keep: Annotated[
        bool | None,
        typer.Option(
            "--keep/--archive",
            help="Leave originals in place, or move them to <from>/carried/. "
            "Default: archive when --from is an outbox (named outbox or holding carried/).",
        ),
    ] = None,
):
    """Copy ready batches with their sidecars, checking digests before and after.

    Never overwrites a different file; re-running skips what is already there. Prints a
    JSON report (copied, skipped, refused, summary) and exits 1 if anything was refused.
    """
    from transfer.operator.carry import CarryReport, carry, total_bytes

    if not source.exists():  # an outbox the network has not written to yet, empty media
        emit(CarryReport().as_dict())
        errors.print(
            f"nothing to carry: {source} does not exist yet", highlight=False, markup=False
        )
        return
    if not source.is_dir():
        raise ValueError(f"{source} is not a directory")
    progress, advance = _progress_bar(total_bytes(source))
    with progress:
        report = carry(
            source, destination, archive=None if keep is None else not keep, progress=advance
        )
    emit(report.as_dict())
    s = report.summary()
    plural = "" if s["files"] == 1 else "s"
    errors.print(
        f"carried {s['files']} file{plural} ({s['bytes']} bytes), skipped {s['skipped']}, "
        f"refused {s['refused']}",
        highlight=False,
    )
    if not report.ok:
        raise typer.Exit(1)


@contextmanager
def database_errors(network: str) -> Iterator[None]:
    """A database that cannot be read is one clear line (and exit 1), not a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as exc:
        cause = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise ValueError(
            f"cannot use the {network} network's database ({cause}); "
            f"is it reachable and migrated (`ferry {network} db upgrade`)?"
        ) from None


@keys.command("generate")
@friendly
def generate(
    network: Annotated[str, typer.Option(help="Network id the key belongs to")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to write the key pair")],
):
    """Create an Ed25519 signing key (0600) and its public key for the other side."""
    from transfer.format.keys import generate_keypair

    private, public = generate_keypair(directory, network)
    emit({"private_key": str(private), "public_key": str(public)})


def run_resend(network: str, resend: Callable[..., dict], settings, **selection) -> None:
    """Run a network's `resend` job and print its result; exit 1 if any batch was not resent."""
    with database_errors(network):
        result = resend(settings, **selection)
    emit(result)
    for item in result["batches"]:
        if item["status"] not in ("restored", "waiting"):
            errors.print(
                f"cannot resend {item['stream']} seq {item['seq']} ({item['file']}): "
                f"{item['reason']}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
    if not result["batches"]:
        errors.print("nothing to resend: every batch sent has been acknowledged", highlight=False)
    if result["failed"]:
        raise typer.Exit(1)

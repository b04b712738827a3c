"""Helpers every `ferry` sub-command uses: clear errors, JSON or readable output."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

# soft_wrap: an error is never broken into lines (scripts and grep see it whole).
console = Console(stderr=False)
errors = Console(stderr=True, soft_wrap=True)


def emit(result: Any) -> None:
    """Print a command's result as indented JSON (stable for scripts, readable for people)."""
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def fail(message: str, code: int = 1) -> typer.Exit:
    errors.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn expected failures into one clear line and a non-zero exit, never a traceback."""

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValidationError as exc:
            lines = [
                f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
            ]
            raise fail("invalid settings or input:\n  " + "\n  ".join(lines)) from None
        except (ValueError, OSError) as exc:
            raise fail(str(exc)) from None

    return run


def print_trace(found: dict[str, Any]) -> None:
    """A request's trace (`ferry request trace`, `ferry response trace`): a few lines about
    the request, then a table of its steps, a step not reached yet shown as "not yet"."""
    from rich.table import Table

    from shared.security.clock import as_utc

    who = found.get("username") or found["user_id"]
    for label, value in (
        ("request", found["request_id"]),
        ("correlation id", found["correlation_id"] or "(none)"),
        ("user", who),
        ("status", f"{found['status']} (sending {found['attempt']})"),
    ):
        console.print(f"{label:<15}{escape(str(value))}", highlight=False)
    with_network = any("network" in step for step in found["steps"])
    table = Table()
    table.add_column("step", no_wrap=True)
    if with_network:
        table.add_column("network", no_wrap=True)
    table.add_column("at (UTC)", no_wrap=True)
    table.add_column("what", overflow="fold")
    for step in found["steps"]:
        at = step["at"]
        if at is not None:
            when = as_utc(at).isoformat(timespec="milliseconds").removesuffix("+00:00")
        else:
            when = "not yet" if step.get("done") is False else "-"
        cells = [step["step"], *([step["network"]] if with_network else []), when]
        table.add_row(*cells, escape(step["summary"] or ""))
    console.print(table)

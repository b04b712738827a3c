"""The panel's Jinja2 environment: every value escaped (autoescape on for every template),
a missing variable an error, and the filters pages use to show times, ages, sizes and
ratios the same way everywhere."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

SHARED_TEMPLATES = Path(__file__).parent / "templates"


def when(value: Any) -> str:
    """A moment as `2026-12-05 11:45:14 UTC` (ISO text, epoch seconds or a datetime)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: Any) -> str:
    """Seconds as a short duration: `42 s`, `3 min`, `5.2 h`, `3.1 d`."""
    if seconds is None:
        return "—"
    s = float(seconds)
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


def size(value: Any) -> str:
    """Bytes as `512 B`, `4.2 KiB`, `1.5 MiB`."""
    if value is None:
        return "—"
    n = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def percent(value: Any) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f} %"


def environment(template_dirs: Iterable[Path] = ()) -> Environment:
    """Templates from `template_dirs` first (a network's pages), then the shared ones."""
    loaders = [FileSystemLoader(str(d)) for d in template_dirs]
    env = Environment(
        loader=ChoiceLoader([*loaders, FileSystemLoader(str(SHARED_TEMPLATES))]),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=when, duration=duration, size=size, percent=percent)
    return env

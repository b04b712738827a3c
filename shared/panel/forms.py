"""Reading the panel's filter and action forms: an empty field means "not given", a choice
outside its list is ignored, and a destructive action says whether it was confirmed."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated

from fastapi import Form, Query

#: `confirmed=yes` on a destructive action's form: asked and answered (panel.js sets it in
#: a dialog; without script the confirmation page sends it).
Confirmed = Annotated[str, Form(max_length=8)]
YES = "yes"

#: A list's filters (query parameters): one of a few words (a status, a role), a short text
#: (a name, an id), a number of hours.
Choice = Annotated[str | None, Query(max_length=16)]
Text = Annotated[str | None, Query(max_length=64)]
Hours = Annotated[int | None, Query(ge=1, le=24 * 365)]


def choice(value: str | None, allowed: Sequence[str]) -> str | None:
    """`value` if it is one of `allowed`, else None (an empty filter field: no filter)."""
    return value if value in allowed else None


def text(value: str | None) -> str | None:
    """A text filter's value, None when left empty."""
    return (value or "").strip() or None


def hours(value: int | None) -> timedelta | None:
    """An hours filter as a duration, None when left empty."""
    return timedelta(hours=value) if value else None


def whole_number(text: str | None) -> int | None:
    """A form field's integer, None when left empty; ValueError when it is not a number."""
    if text is None or not text.strip():
        return None
    stripped = text.strip()
    if not stripped.isdigit() or len(stripped) > 12:
        raise ValueError(stripped)
    return int(stripped)

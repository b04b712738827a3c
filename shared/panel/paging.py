"""Pagination and sorting of the panel's lists.

A list's route takes the page asked for as `Paging` (the `limit` and `offset` query
parameters); a list a service pages (users, requests, alerts, batches) passes them to the
service and its total through `Pager`; a list a service returns whole (files in a directory,
the settings, the beat schedule) is sorted and cut here with `sort_rows` and `Pager.cut`.
A list sorts by the column its `sort` query parameter names (`Sort`, `sorting`), `-` first
for descending; a column it does not sort by is refused (422, naming `sort`), as the API
refuses it. Links keep the page's other query parameters (`link`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, get_args
from urllib.parse import urlencode

from fastapi import Depends, Query
from fastapi.exceptions import RequestValidationError

from shared.validation import PageOffset

PAGE_SIZES = (10, 25, 50, 100)
DEFAULT_LIMIT = 25


def link(path: str, params: Mapping[str, Any], **changes: Any) -> str:
    """`path` with `params` and `changes` as its query (a None or empty value is left out)."""
    merged = {**params, **changes}
    query = urlencode([(k, v) for k, v in merged.items() if v is not None and v != ""])
    return f"{path}?{query}" if query else path


def clamp_limit(limit: int | None) -> int:
    return limit if limit in PAGE_SIZES else DEFAULT_LIMIT


@dataclass(frozen=True)
class PageRequest:
    """The page a list is asked for: `limit` rows (one of `PAGE_SIZES`) from `offset`."""

    limit: int
    offset: int

    def of(self, total: int) -> Pager:
        """The page among `total` rows."""
        return Pager(self.limit, self.offset, total)


def page_request(
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
    offset: Annotated[PageOffset, Query()] = 0,
) -> PageRequest:
    return PageRequest(clamp_limit(limit), offset)


#: A list route's `limit` and `offset` query parameters.
Paging = Annotated[PageRequest, Depends(page_request)]


@dataclass(frozen=True)
class Pager:
    limit: int
    offset: int
    total: int

    @property
    def first(self) -> int:
        return min(self.offset + 1, self.total)

    @property
    def last(self) -> int:
        return min(self.offset + self.limit, self.total)

    @property
    def previous_offset(self) -> int | None:
        return max(self.offset - self.limit, 0) if self.offset > 0 else None

    @property
    def next_offset(self) -> int | None:
        return self.offset + self.limit if self.offset + self.limit < self.total else None

    def cut(self, rows: Sequence[Any]) -> list[Any]:
        return list(rows[self.offset : self.offset + self.limit])


@dataclass(frozen=True)
class Sort:
    """The sort a list is in: a column key, `-` first for descending."""

    value: str
    allowed: tuple[str, ...]

    @classmethod
    def of(cls, value: str | None, allowed: Sequence[str], default: str) -> Sort:
        """`value` among the columns `allowed` (`-` first: descending); `default` when none
        is given; RequestValidationError (a 422 naming `sort`) for any other column."""
        keys = tuple(allowed)
        if not value:
            return cls(default, keys)
        if value.removeprefix("-") not in keys:
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", "sort"),
                        "msg": f"sort by one of {', '.join(keys)} (`-` first: descending)",
                        "type": "enum",
                        "input": value,
                    }
                ]
            )
        return cls(value, keys)

    @property
    def key(self) -> str:
        return self.value.lstrip("-")

    @property
    def descending(self) -> bool:
        return self.value.startswith("-")

    def toggled(self, key: str) -> str:
        """The sort a column header links to: its key, or the other way if already on it."""
        if key == self.key and not self.descending:
            return f"-{key}"
        return key

    def mark(self, key: str) -> str:
        """`▲`/`▼` on the column the list is sorted by."""
        if key != self.key:
            return ""
        return "▼" if self.descending else "▲"


def columns_of(sorts: Any) -> tuple[str, ...]:
    """The columns a service's sort type (`Literal["name", "-name", …]`) names, in order."""
    return tuple(dict.fromkeys(s.removeprefix("-") for s in get_args(sorts)))


#: A list route's `sort` query parameter, as text (`Sort.of` reads it).
SortParam = Annotated[str | None, Query(max_length=32)]


def sorting(allowed: Sequence[str], default: str) -> Any:
    """A list route's `sort` query parameter as a `Sort` among the columns `allowed`
    (`Sort.of`): the annotation of a route's parameter."""
    keys = tuple(allowed)

    def sort_param(sort: SortParam = None) -> Sort:
        return Sort.of(sort, keys, default)

    return Annotated[Sort, Depends(sort_param)]


def sort_rows(rows: Sequence[Mapping[str, Any]], sort: Sort) -> list[Mapping[str, Any]]:
    """Rows of a whole list, sorted by `sort` (missing values last, either way; numbers
    before any other value, which sorts as its text)."""
    present = [r for r in rows if r.get(sort.key) is not None]
    missing = [r for r in rows if r.get(sort.key) is None]
    present.sort(key=lambda r: _comparable(r[sort.key]), reverse=sort.descending)
    return present + missing


def _comparable(value: Any) -> tuple[int, Any]:
    return (0, value) if isinstance(value, int | float) else (1, str(value))

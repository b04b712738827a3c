"""How a service sorts a list an admin reads: by one column a `sort` value names (a service's
`Literal` of allowed values, `-` first for descending), a missing value last either way,
ties broken by the service's stable key."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any


def sort_order(
    columns: Mapping[str, Any], sort: str, *ties: Any, missing: Collection[str] = ()
) -> tuple[Any, ...]:
    """ORDER BY terms for `sort`: the column `columns` names by its key, ascending or (`-`
    first) descending, NULLs last when the column may hold them (a nullable column, or a
    key in `missing`: one an outer join may leave empty); then `ties`."""
    key = sort.removeprefix("-")
    column = columns[key]
    first = column.desc() if sort.startswith("-") else column.asc()
    if key in missing or getattr(getattr(column, "expression", column), "nullable", False):
        first = first.nulls_last()
    return (first, *ties)

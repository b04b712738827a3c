"""The governed settings table, on both networks: every key as the network's
`services.governed.list_settings` describes it, its values shown as JSON, sorted by a column
and a page at a time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from shared.panel.paging import PageRequest, Sort, sort_rows


def json_text(value: Any) -> str:
    """A governed value as JSON, the way the table and its forms show it."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def settings_table(
    items: list[dict[str, Any]],
    sorts: Sequence[str],
    *,
    sort: str | None,
    paging: PageRequest,
) -> dict[str, Any]:
    """What a settings page renders of `items`: `rows` (this page's, each value also as
    `<name>_text`), `sort` (by one of `sorts`, the key unless told) and `page`. The bounds
    sort by the lower one, else the upper."""
    order = Sort.of(sort, sorts, "key")
    for item in items:
        for name in ("value", "governed_value", "default"):
            item[f"{name}_text"] = json_text(item[name])
        lower = item.get("minimum")
        item["bounds"] = lower if lower is not None else item.get("maximum")
    rows = sort_rows(items, order)
    page = paging.of(len(rows))
    return {"rows": page.cut(rows), "sort": order, "page": page}

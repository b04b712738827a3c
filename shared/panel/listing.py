"""A list page as the panel serves each of its paged lists (users, requests): its filters
read by a dependency, sorted by a column (`paging.sorting`), a page at a time, from one
service call that takes the filters, `sort`, `limit` and `offset` and returns the page and
how many match; rendered with `rows`, `sort` and `page`.

(No `from __future__ import annotations` here: the route's annotations name the filters
dependency and the sort given to `add_list`, which FastAPI must see evaluated.)
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from shared.panel.access import AdminViewer, PanelDep
from shared.panel.paging import Paging, sorting


def add_list(
    router: APIRouter,
    path: str,
    *,
    template: str,
    title: str,
    service: Callable[..., tuple[list[Any], int]],
    filters: Callable[..., Mapping[str, Any]],
    sorts: Sequence[str],
    default: str,
    context: Callable[[Session], Mapping[str, Any]] | None = None,
    **constants: Any,
) -> None:
    """`GET path` for admins: `filters` (a dependency reading the query) gives `service`'s
    filter arguments; `context` adds what the page shows beside the list (read in the same
    session), `constants` what it always shows (the choices of a filter)."""
    Order = sorting(sorts, default)
    Filters = Annotated[Mapping[str, Any], Depends(filters)]

    @router.get(path, name=path.strip("/").replace("/", "_") or "list")
    def list_page(
        request: Request,
        panel: PanelDep,
        viewer: AdminViewer,
        paging: Paging,
        order: Order,
        found: Filters,
    ) -> Response:
        with panel.reads() as session:
            rows, total = service(
                session=session,
                sort=order.value,
                limit=paging.limit,
                offset=paging.offset,
                **found,
            )
            extra = context(session) if context is not None else {}
        return panel.render(
            request,
            viewer,
            template,
            title=title,
            rows=rows,
            sort=order,
            page=paging.of(total),
            **constants,
            **extra,
        )

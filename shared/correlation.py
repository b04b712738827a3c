"""One id follows a request across the gap (DESIGN.md §11; docs/OPERATIONS.md, "Following
one request").

A request's correlation id is the id of the HTTP call that submitted it: the caller's
`X-Request-ID` when well-formed, else the one the API's edge made (`shared.http_logging`
binds it to the call's log lines as `request_id`). It is stored with the request, travels in
its `request` record to the response network and comes back in its `result` record, and
each step of the request's life logs it:

- one line per request where a step handles requests one at a time (submission,
  execution, first read of the response), with `correlation_id` and `ferry_request_id`;
  execution binds both around its step (`bound_to_request`), so every other line it writes
  names them too;
- lines naming up to `IDS_PER_LINE` requests each (`log_requests`: `correlation_ids`) where
  a batch moves thousands at once (export and import on both networks), inside the batch's
  own `batch_id` and `stream`. Only the correlation ids: every byte of a line costs (the
  masking scans it), and the execution line pairs each with its request id.

So `grep <correlation id>` over both networks' logs finds every step of one request's life.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from structlog.contextvars import bound_contextvars, get_contextvars

from shared.records import CORRELATION_ID_PATTERN

__all__ = [
    "IDS_PER_LINE",
    "bound_to_request",
    "fields",
    "for_submission",
    "log",
    "log_requests",
    "new_id",
]

#: The logger of every line that names requests by their ids.
log = logging.getLogger("ferry.requests")
#: Requests named per line by `log_requests`: about 4 kB of ids made by the API's edge (13 kB
#: at most), under the 16 kB at which common log shippers split a line.
IDS_PER_LINE = 100
_WELL_FORMED = re.compile(CORRELATION_ID_PATTERN)


def new_id() -> str:
    """A fresh correlation id (a UUID4 in hex, as the API's edge makes them)."""
    return uuid.uuid4().hex


def for_submission() -> str:
    """The correlation id of a request submitted now: the id bound to the HTTP call this
    runs in (`request_id`), or a fresh one outside a call (or if the bound one is not a
    well-formed correlation id)."""
    bound = get_contextvars().get("request_id")
    if isinstance(bound, str) and _WELL_FORMED.fullmatch(bound):
        return bound
    return new_id()


def fields(request_id: str, correlation_id: str | None) -> dict[str, str | None]:
    """The fields that name one request on a log line (`extra=`)."""
    return {"ferry_request_id": request_id, "correlation_id": correlation_id}


@contextmanager
def bound_to_request(request_id: str, correlation_id: str | None) -> Iterator[None]:
    """Every log line of the block names the request: `ferry_request_id`, `correlation_id`."""
    with bound_contextvars(ferry_request_id=request_id, correlation_id=correlation_id):
        yield


def log_requests(
    message: str,
    requests: Sequence[tuple[str, str | None]],
    *,
    level: int = logging.INFO,
    **more: Any,
) -> None:
    """`message` for `requests` ((request id, correlation id) pairs), one line per
    `IDS_PER_LINE` of them, each with `correlation_ids`, `count`, `of` and the fields
    `more`; requests from before correlation ids are named by their own ids instead
    (`ferry_request_ids`, only when there are any)."""
    if not requests or not log.isEnabledFor(level):
        return
    total = len(requests)
    for start in range(0, total, IDS_PER_LINE):
        group = requests[start : start + IDS_PER_LINE]
        extra = {**more, "correlation_ids": [cid for _, cid in group if cid is not None]}
        if len(extra["correlation_ids"]) < len(group):
            extra["ferry_request_ids"] = [rid for rid, cid in group if cid is None]
        extra |= {"count": len(group), "of": total}
        if total == 1:
            log.log(level, "%s: 1 request", message, extra=extra)
        elif total <= IDS_PER_LINE:
            log.log(level, "%s: %d requests", message, total, extra=extra)
        else:
            end = start + len(group)
            log.log(level, "%s: requests %d-%d of %d", message, start + 1, end, total, extra=extra)

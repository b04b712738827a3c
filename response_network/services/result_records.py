"""Result rows → `result` records that fit the batch limits.

A result whose record fits one line (`max_line_bytes`) and one batch goes as one record.
A longer one is split by its hits into parts (`part` 0..`parts`-1, the same id, every other
field repeated), each a record of its own: they follow each other in the stream and may
fill several batches; the request network keeps the parts it has until the last one
arrives, in whatever order the batches come, then joins them. A result that cannot be
split into lines — a single hit longer than a line, or the fields besides the hits too
long — is not carried: the request gets a FAILED record saying why, and a warning is
logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from shared.jsonutil import canonical
from transfer.format import Limits, Record, record_line
from transfer.format.spec import make_record
from transfer.format.writer import EncodedRecord
from transfer.protocol import bulk
from transfer.protocol.feed import ExportItem, record_budget

__all__ = ["result_items", "split_result"]

log = logging.getLogger("ferry.transfer")

_PART_DIGITS = 20  # room left in each part's line for the digits of `part` and `parts`


def result_items(rows: Iterable[tuple], room: Limits) -> Iterator[ExportItem]:
    """Export items for rows of (request_id, status, total, hits JSON text, error, executed_at,
    took_ms, attempt, correlation_id, traceparent), each sized to ``room`` (the limits left
    for data records in one batch). A record's version is the request's sending
    (``attempt``) it answers; a correlation id or trace context it lacks is left out."""
    budget = record_budget(room)
    for row in rows:
        request_id, status, total, hits, error, executed_at, took_ms, attempt, cid, tp = row
        data = {
            "status": status,
            "total": total,
            "hits": orjson.loads(hits) if hits is not None else [],
            "error": error,
            "executed_at": bulk.wire_time(executed_at),
            "took_ms": took_ms,
            "part": 0,
            "parts": 1,
        }
        if cid is not None:
            data["correlation_id"] = cid
        if tp is not None:
            data["traceparent"] = tp
        record = make_record("result", request_id, attempt, data)
        line = record_line(record)
        if len(line) - 1 <= room.max_line_bytes and len(line) <= budget:
            yield EncodedRecord(request_id, line, "result")
            continue
        parts = split_result(record, room)
        if parts is not None:
            yield from parts  # one item each: the parts may fill several batches
            continue
        problem = (
            f"result too large to carry: {len(data['hits'])} hits, {len(line)} bytes as one "
            f"record, and it cannot be split into lines of at most {room.max_line_bytes} "
            "bytes (a single hit, or the fields besides the hits, is longer). Narrow the "
            "query (fewer fields)."
        )
        log.warning("result %s not carried: %s", request_id, problem, extra={"correlation_id": cid})
        yield make_record(
            "result",
            request_id,
            attempt,
            {**data, "status": "FAILED", "hits": [], "error": problem},
        )


def split_result(record: Record, room: Limits) -> list[EncodedRecord] | None:
    """``record``'s hits split into parts that each fit a line (and so a batch); None if that
    cannot be done."""
    data: dict[str, Any] = record.data
    bare = len(record_line(make_record("result", record.id, record.version, {**data, "hits": []})))
    room_per_line = room.max_line_bytes + 1 - bare - _PART_DIGITS  # the newline counts in bare
    groups: list[list[Any]] = []
    used = room_per_line  # forces a new group at the first hit
    for hit in data["hits"]:
        size = len(canonical(hit)) + 1  # its comma
        if size > room_per_line:
            return None
        if used + size > room_per_line:
            groups.append([])
            used = 0
        groups[-1].append(hit)
        used += size
    if len(groups) < 2:
        return None  # no hits to split: the rest of the record is too long
    parts = []
    for k, hits in enumerate(groups):
        part = {**data, "hits": hits, "part": k, "parts": len(groups)}
        encoded = EncodedRecord.of(make_record("result", record.id, record.version, part))
        if len(encoded.line) - 1 > room.max_line_bytes or len(encoded.line) > record_budget(room):
            return None
        parts.append(encoded)
    return parts

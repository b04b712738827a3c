"""Result rows → `result` records that fit the batch limits.

A result whose record fits one line goes as one record. One whose record is longer than a
line may be (`max_line_bytes`) is split by its hits into parts (`part` 0..`parts`-1, the
same id, every other field repeated), which travel one after another in one batch and are
joined again by the request network. A result that cannot fit one batch even in parts — or
holds a single hit longer than a line — is not carried: the request gets a FAILED record
saying why, and a warning is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from shared.jsonutil import canonical
from transfer import bulk
from transfer.exchange import ExportItem, record_budget
from transfer.format import Limits, Record, record_line
from transfer.spec import make_record
from transfer.writer import EncodedRecord

__all__ = ["result_items", "split_result"]

log = logging.getLogger("ferry.transfer")

_PART_DIGITS = 20  # room left in each part's line for the digits of `part` and `parts`


def result_items(rows: Iterable[tuple], room: Limits) -> Iterator[ExportItem]:
    """Export items for rows of (request_id, status, total, hits JSON text, error, executed_at,
    took_ms), each sized to ``room`` (the limits left for data records in one batch)."""
    budget = record_budget(room)
    for request_id, status, total, hits, error, executed_at, took_ms in rows:
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
        record = make_record("result", request_id, 1, data)
        line = record_line(record)
        if len(line) - 1 <= room.max_line_bytes and len(line) <= budget:
            yield EncodedRecord(request_id, line, "result")
            continue
        parts = split_result(record, room)
        if parts is not None:
            yield parts
            continue
        problem = (
            f"result too large to carry: {len(data['hits'])} hits, {len(line)} bytes as one "
            f"record; a batch holds at most {budget} bytes of records in lines of at most "
            f"{room.max_line_bytes} bytes. Narrow the query (fewer hits or fields)."
        )
        log.warning("result %s not carried: %s", request_id, problem)
        yield make_record(
            "result", request_id, 1, {**data, "status": "FAILED", "hits": [], "error": problem}
        )


def split_result(record: Record, room: Limits) -> list[EncodedRecord] | None:
    """``record``'s hits split into parts that each fit a line, all of them one batch; None if
    that cannot be done."""
    data: dict[str, Any] = record.data
    bare = len(record_line(make_record("result", record.id, 1, {**data, "hits": []})))
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
    if not 1 < len(groups) <= room.max_records:
        return None  # no hits to split (the rest of the record is too long), or too many parts
    parts, total = [], 0
    for k, hits in enumerate(groups):
        part = {**data, "hits": hits, "part": k, "parts": len(groups)}
        encoded = EncodedRecord.of(make_record("result", record.id, 1, part))
        total += len(encoded.line)
        if total > record_budget(room) or len(encoded.line) - 1 > room.max_line_bytes:
            return None
        parts.append(encoded)
    return parts

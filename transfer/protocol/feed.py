"""Dealing encoded records out into batches, each as full as the limits allow.

`transfer.protocol.exchange.export_records` writes one batch file after another from a `Feed`: the
records arrive one at a time from the caller (typically rows streamed from the database),
each is encoded once, and a batch ends when the next record would break a limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from transfer.format import BatchLimitExceeded, Limits, Record
from transfer.format.writer import HEADER_RESERVE, TRAILER_RESERVE, EncodedRecord

__all__ = ["ExportItem", "Feed", "record_budget"]

# One record, or several that must travel in one batch (the parts of a split result);
# an exporter that had to encode a record to size it passes it encoded.
ExportItem = Record | EncodedRecord | Sequence[Record | EncodedRecord]


def record_budget(room: Limits) -> int:
    """Bytes of data record lines (newlines included) one batch can hold within ``room``."""
    return room.max_batch_bytes - HEADER_RESERVE - TRAILER_RESERVE


def _units(
    items: Iterable[ExportItem], room: Limits
) -> Iterator[tuple[list[EncodedRecord], int, str]]:
    """Each item encoded once, with its size and type; an item that can never fit raises."""
    budget, max_line, max_records = record_budget(room), room.max_line_bytes, room.max_records
    for item in items:
        cls = item.__class__
        if cls is Record or cls is EncodedRecord:
            encoded = item if cls is EncodedRecord else EncodedRecord.of(item)
            lines, size = [encoded], len(encoded.line)
            fits = size <= budget and size - 1 <= max_line
        else:
            lines = [r if r.__class__ is EncodedRecord else EncodedRecord.of(r) for r in item]
            size = sum(len(e.line) for e in lines)
            fits = (
                size <= budget
                and len(lines) <= max_records
                and all(len(e.line) - 1 <= max_line for e in lines)
            )
        if not fits:
            raise BatchLimitExceeded(
                f"record {lines[0].id!r} ({len(lines)} lines, {size} bytes) can never fit a batch"
            )
        yield lines, size, lines[0].type


class Feed:
    """Deals encoded records out one batch at a time, each batch as full as the room allows.

    ``next_batch()`` yields the riding acks and then records until the next one would
    break a limit (it is kept for the batch after); meanwhile it notes the distinct ids
    (``ids``) and the lines per record type (``counts``) of the batch it gave.
    """

    def __init__(self, items: Iterable[ExportItem], room: Limits, riding: list[EncodedRecord]):
        self._units = _units(items, room)
        self._room = room
        self._budget = record_budget(room)
        self._riding = riding
        self._upcoming = next(self._units, None)
        self.ids: list[str] = []
        self.counts: dict[str, int] = {}

    @property
    def exhausted(self) -> bool:
        return self._upcoming is None

    def next_batch(self) -> Iterator[EncodedRecord]:
        ids: list[str] = []
        counts = {"ack": len(self._riding)} if self._riding else {}
        self.ids, self.counts = ids, counts
        yield from self._riding
        used = lines = 0
        max_records, budget = self._room.max_records, self._budget
        while self._upcoming is not None:
            group, size, record_type = self._upcoming
            if lines and (lines + len(group) > max_records or used + size > budget):
                return
            yield from group
            counts[record_type] = counts.get(record_type, 0) + len(group)
            if not ids or ids[-1] != group[0].id:
                ids.append(group[0].id)
            used += size
            lines += len(group)
            self._upcoming = next(self._units, None)

"""Reading an untrusted batch file line by line: safe open, bounded lines, line parsing."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from transfer.format.digest import HashingThread
from transfer.format.spec import (
    MAX_RECORD_ID_CHARS,
    RECORD_FIELDS,
    RECORD_TYPE_RE,
    Record,
    make_record,
    record_envelope_problems,
)
from transfer.format.strictjson import NOT_COMPACT, StrictJSONError, compact_loads, strict_loads

__all__ = [
    "OVERLONG",
    "UNTERMINATED",
    "LineSource",
    "compact_record_line",
    "open_regular_file",
    "parse_object",
    "parse_record_line",
]

_SKIP_CHUNK = 64 * 1024
_CHUNK = 1024 * 1024  # record lines are read in blocks this large and split here
_KNOWN_TYPES: set[str] = set()  # record types seen to match RECORD_TYPE_RE (a few dozen at most)


class _Marker:
    """A line :meth:`LineSource.record_lines` stands in for instead of giving its bytes."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


OVERLONG = _Marker("OVERLONG")  # longer than the line limit (its bytes are dropped)
UNTERMINATED = _Marker("UNTERMINATED")  # the region ended inside a line of allowed length


def open_regular_file(path: Path) -> tuple[BinaryIO | None, str]:
    """Open a regular file without following symlinks: (handle, "") or (None, why not)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None, "file not found"
    if stat.S_ISLNK(info.st_mode):
        return None, "is a symlink; refusing to follow it"
    if not stat.S_ISREG(info.st_mode):
        return None, "not a regular file"
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags)
    opened = os.fstat(fd)
    if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (
        info.st_dev,
        info.st_ino,
    ):
        os.close(fd)
        return None, "file was replaced while being opened"
    return os.fdopen(fd, "rb"), ""


class LineSource:
    """Sequential reads of one open file, never more than a line limit at once.

    Hashes everything read (``file_hash``) and, separately, the record lines
    (``records_hash``, ``records_bytes``).
    """

    def __init__(self, handle: BinaryIO, size: int, max_line_bytes: int) -> None:
        self.handle = handle
        self.size = size
        self.max_line_bytes = max_line_bytes
        self.consumed = 0
        self.file_hash = hashlib.sha256()
        self.records_hash = hashlib.sha256()
        self.records_bytes = 0
        self.cut_line = False  # whether record_lines() ended inside a line

    def _consume(self, data: bytes, in_records: bool) -> None:
        self.consumed += len(data)
        self.file_hash.update(data)
        if in_records:
            self.records_hash.update(data)
            self.records_bytes += len(data)

    @property
    def overrun(self) -> bool:
        """True once more bytes were read than the file had when opened."""
        return self.consumed > self.size

    def read_line(self, *, in_records: bool) -> tuple[bytes, int, bool]:
        """Next line: (its bytes, or only the first limit's worth; full length; over limit)."""
        cap = self.max_line_bytes + 1
        raw = self.handle.readline(cap)
        self._consume(raw, in_records)
        length = len(raw)
        if length < cap or raw.endswith(b"\n"):
            return raw, length, False
        while not self.overrun:  # skip the rest of an over-long line, still hashing it
            chunk = self.handle.readline(_SKIP_CHUNK)
            if not chunk:
                break
            self._consume(chunk, in_records)
            length += len(chunk)
            if chunk.endswith(b"\n"):
                break
        return raw, length, True

    def record_lines(self, end: int) -> Iterator[list[bytes | _Marker]]:
        """The record lines up to file offset ``end``, one list per large read.

        Each item is a complete line's bytes without its newline, or :data:`OVERLONG`,
        or (last of all, if the region does not end with a newline) :data:`UNTERMINATED`.
        Never reads past ``end`` nor holds more than a few reads plus one line limit. A
        region longer than one read is hashed on a second thread (:class:`HashingThread`)
        while the caller works on the lines; the hashes are complete when this returns.
        """
        remaining = end - self.consumed
        limit = self.max_line_bytes
        pending: list[bytes] = []  # the start of a line an earlier read cut off
        pending_length = 0  # its full length (the bytes are dropped once it is over the limit)
        hasher = HashingThread((self.file_hash, self.records_hash)) if remaining > _CHUNK else None
        try:
            while remaining > 0:
                chunk = self.handle.read(min(_CHUNK, remaining))
                if not chunk:
                    break  # the file shrank; the caller sees the short count
                remaining -= len(chunk)
                if hasher is None:
                    self._consume(chunk, in_records=True)
                else:
                    self.consumed += len(chunk)
                    self.records_bytes += len(chunk)
                    hasher.update(chunk)
                lines: list[Any] = chunk.split(b"\n")
                tail = lines.pop()
                if not lines:  # no newline in this read: the pending line goes on
                    pending_length += len(chunk)
                    if pending_length <= limit:
                        pending.append(chunk)
                    continue
                size = len(chunk)
                del chunk  # its lines are copies: let the read go once it is hashed
                if size > limit:
                    lines = [OVERLONG if len(line) > limit else line for line in lines]
                if pending_length:
                    first = lines[0]
                    length = pending_length + (limit + 1 if first is OVERLONG else len(first))
                    lines[0] = OVERLONG if length > limit else b"".join([*pending, first])
                pending_length = len(tail)
                pending = [tail] if pending_length <= limit else []
                yield lines
                del lines  # not alive while the next read is split (the caller drops it too)
            if pending_length:
                self.cut_line = True
                yield [OVERLONG if pending_length > limit else UNTERMINATED]
        finally:
            if hasher is not None:
                hasher.close()

    def read_rest(self, limit: int) -> bytes:
        """Up to ``limit`` further bytes (hashed as part of the file, not the records)."""
        data = self.handle.read(limit)
        self._consume(data, in_records=False)
        return data

    def read_tail(self, count: int) -> bytes:
        """The last ``count`` bytes of the file, without moving the sequential position."""
        count = min(count, self.size)
        return os.pread(self.handle.fileno(), count, self.size - count)


def parse_object(content: bytes, max_depth: int) -> tuple[dict[str, Any] | None, str]:
    """Strictly parse one line's content: (object, "") or (None, why not)."""
    try:
        value = strict_loads(content, max_depth=max_depth)
    except StrictJSONError as error:
        return None, str(error)
    if not isinstance(value, dict):
        return None, "not a JSON object"
    return value, ""


def parse_record_line(content: bytes, max_depth: int) -> tuple[Record | None, list[str]]:
    """A record line's content as a :class:`Record`, or the problems with it."""
    envelope, error = parse_object(content, max_depth)
    if envelope is None:
        return None, [error]
    kind = envelope.get("kind")
    if kind == "header":
        return None, ["second header"]
    if kind == "trailer":
        return None, ["trailer before the end of the file"]
    if kind != "record":
        return None, [f"unknown line kind {str(kind)[:40]!r}"]
    if envelope.keys() != RECORD_FIELDS:
        return None, ["record must have exactly the fields kind, type, id, version, data"]
    fields = (envelope["type"], envelope["id"], envelope["version"], envelope["data"])
    problems = record_envelope_problems(*fields)
    if problems:
        return None, problems
    return Record(*fields), []


def compact_record_line(content: bytes, max_depth: int) -> Record | None:
    """The fast path of :func:`parse_record_line`: the record if the line is in compact form
    (:func:`~transfer.format.strictjson.compact_loads`) with a sound envelope, else ``None``.

    Never returns a record :func:`parse_record_line` would refuse, nor a different one.
    """
    envelope = compact_loads(content, max_depth)
    if envelope is NOT_COMPACT or envelope.__class__ is not dict:
        return None
    if envelope.keys() != RECORD_FIELDS or envelope["kind"] != "record":
        return None
    record_type = envelope["type"]
    record_id = envelope["id"]
    version = envelope["version"]
    data = envelope["data"]
    if record_type not in _KNOWN_TYPES:
        if record_type.__class__ is not str or RECORD_TYPE_RE.fullmatch(record_type) is None:
            return None
        if len(_KNOWN_TYPES) < 64:
            _KNOWN_TYPES.add(record_type)
    if (
        record_id.__class__ is str
        and 0 < len(record_id) <= MAX_RECORD_ID_CHARS
        and version.__class__ is int
        and version >= 0
        and data.__class__ is dict
    ):
        return make_record(record_type, record_id, version, data)
    return None

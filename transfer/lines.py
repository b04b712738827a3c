"""Reading an untrusted batch file line by line: safe open, bounded lines, line parsing."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any, BinaryIO

from transfer.spec import RECORD_FIELDS, Record, record_envelope_problems
from transfer.strictjson import StrictJSONError, strict_loads

__all__ = ["LineSource", "open_regular_file", "parse_object", "parse_record_line"]

_SKIP_CHUNK = 64 * 1024


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

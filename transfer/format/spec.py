"""Batch format spec (DESIGN §3): constants, value types, errors and the signed payload.

A batch is a JSONL file: line 1 a header, then one record per line, then a trailer.
Every line is canonical JSON (:func:`shared.jsonutil.canonical`) followed by ``\\n``.
Import the public API from :mod:`transfer.format`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import msgspec

from shared.jsonutil import canonical

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "HEADER_FIELDS",
    "KNOWN_CAPABILITIES",
    "PRODUCER",
    "TRAILER_FIELDS",
    "BatchLimitExceeded",
    "BatchRejected",
    "Limits",
    "Record",
    "format_time",
    "make_record",
    "parse_time",
    "record_line",
    "signed_payload",
]

FORMAT_NAME = "ferry-batch"
FORMAT_VERSION = 1
KNOWN_CAPABILITIES: frozenset[str] = frozenset({"acks"})
HEADER_FIELDS: frozenset[str] = frozenset(
    {
        "format",
        "format_version",
        "kind",
        "stream",
        "batch_id",
        "source",
        "destination",
        "seq",
        "prev_digest",
        "created_at",
        "not_after",
        "producer",
        "key_id",
        "capabilities",
    }
)
TRAILER_FIELDS: frozenset[str] = frozenset({"kind", "count", "bytes", "sha256", "signature"})
RECORD_FIELDS: frozenset[str] = frozenset({"kind", "type", "id", "version", "data"})
SHA256_HEX_RE = re.compile(r"[0-9a-f]{64}")
RECORD_TYPE_RE = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_RECORD_ID_CHARS = 256
_TIME_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z")


def _producer() -> str:
    try:
        return f"ferry/{version('ferry')}"
    except PackageNotFoundError:  # running from a source tree without metadata
        return "ferry/0+unknown"


PRODUCER = _producer()


class Record(msgspec.Struct, frozen=True):
    """One record line: ``{"kind":"record","type":…,"id":…,"version":…,"data":{…}}``.

    Immutable, compared by value, built as ``Record(type, id, version, data)``. A
    ``msgspec.Struct`` rather than a dataclass because the reader builds one per line from
    C (``transfer.format.fastpath``); a frozen dataclass costs several times as much to build.
    """

    type: str
    id: str
    version: int
    data: dict[str, Any] = {}  # msgspec gives each instance its own empty dict


def make_record(record_type: str, record_id: str, version_: int, data: dict[str, Any]) -> Record:
    """``Record(record_type, record_id, version_, data)`` (kept for its callers)."""
    return Record(record_type, record_id, version_, data)


@dataclass(frozen=True)
class Limits:
    """Size limits; a batch over any of them is refused by the writer and the reader.

    ``max_batch_bytes`` bounds the whole file, ``max_line_bytes`` each line without its
    newline, ``max_records`` the record lines, ``max_json_depth`` nesting in any line.
    """

    max_batch_bytes: int = 64 * 1024 * 1024
    max_records: int = 100_000
    max_line_bytes: int = 4 * 1024 * 1024
    max_json_depth: int = 32


class BatchRejected(Exception):
    """A batch failed verification; ``reasons`` lists every problem found."""

    def __init__(self, reasons: list[str], path: Path | str) -> None:
        self.reasons = list(reasons)
        self.path = Path(path)
        summary = "; ".join(self.reasons[:5])
        more = f" (+{len(self.reasons) - 5} more)" if len(self.reasons) > 5 else ""
        super().__init__(f"batch {self.path.name} rejected: {summary}{more}")


class BatchLimitExceeded(ValueError):
    """The writer was given more than one batch may hold (split with ``chunk_records``)."""


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with a ``Z`` and whole seconds, e.g. ``2025-01-02T03:04:05Z``."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object) -> datetime | None:
    """Parse an RFC 3339 UTC ``…Z`` timestamp; ``None`` if it is not one."""
    if not isinstance(text, str) or _TIME_RE.fullmatch(text) is None:
        return None
    try:
        return datetime.fromisoformat(text[:-1] + "+00:00")
    except ValueError:
        return None


def record_line(record: Record) -> bytes:
    """The canonical line (with its ``\\n``) for ``record``; ``ValueError`` if malformed."""
    problems = record_envelope_problems(record.type, record.id, record.version, record.data)
    if problems:
        raise ValueError(f"bad record {record.id!r}: {'; '.join(problems)}")
    envelope = {
        "kind": "record",
        "type": record.type,
        "id": record.id,
        "version": record.version,
        "data": record.data,
    }
    return canonical(envelope) + b"\n"


def record_envelope_problems(
    record_type: object, record_id: object, version_: object, data: object
) -> list[str]:
    """What is wrong with a record's envelope fields (empty list if nothing)."""
    problems = []
    if not isinstance(record_type, str) or RECORD_TYPE_RE.fullmatch(record_type) is None:
        problems.append("record type must match ^[a-z][a-z0-9_]{0,63}$")
    if not isinstance(record_id, str) or not 1 <= len(record_id) <= MAX_RECORD_ID_CHARS:
        problems.append(f"record id must be a string of 1..{MAX_RECORD_ID_CHARS} characters")
    if isinstance(version_, bool) or not isinstance(version_, int) or version_ < 0:
        problems.append("record version must be an integer >= 0")
    if not isinstance(data, dict):
        problems.append("record data must be a JSON object")
    return problems


def signed_payload(header_line: bytes, count: int, byte_count: int, sha256_hex: str) -> bytes:
    """Bytes the trailer signature covers: the header line as written, ``\\n``, digest fields."""
    digest_fields = canonical({"count": count, "bytes": byte_count, "sha256": sha256_hex})
    return header_line + b"\n" + digest_fields

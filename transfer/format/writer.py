"""Streaming, atomic batch writer.

``write_batch`` writes exactly one batch file and refuses input that would break a
:class:`~transfer.format.Limits` bound (raising :class:`BatchLimitExceeded`); it never
splits on its own. Split large inputs first with :func:`chunk_records`, one
``write_batch`` call (with its own seq) per chunk.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.jsonutil import canonical
from transfer.format.digest import sidecar_text
from transfer.format.fsutil import create_temp, publish, write_file_atomically
from transfer.format.header import build_header
from transfer.format.keys import SigningKey
from transfer.format.names import batch_filename, check_network_id, sidecar_name, uuid7
from transfer.format.spec import (
    PRODUCER,
    BatchLimitExceeded,
    Limits,
    Record,
    record_line,
    signed_payload,
)

__all__ = [
    "DEFAULT_TTL",
    "HEADER_RESERVE",
    "TRAILER_RESERVE",
    "EncodedRecord",
    "WrittenBatch",
    "chunk_records",
    "write_batch",
]

DEFAULT_TTL = timedelta(days=7)
HEADER_RESERVE = 1024  # upper bound of a header line; every valid header is far shorter
TRAILER_RESERVE = 512  # upper bound of a trailer line, newline included
_SHA256_HEX_RE = re.compile(r"[0-9a-f]{64}")
_WRITE_BUFFER = 1024 * 1024


@dataclass(frozen=True)
class WrittenBatch:
    """A batch that is now durable under its final name, with its sidecar."""

    path: Path
    sidecar: Path
    batch_id: str
    digest: str
    count: int
    bytes: int
    header: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EncodedRecord:
    """A record already turned into its line by :func:`~transfer.format.spec.record_line`.

    An exporter that must size each line to choose its batch passes these to
    :func:`write_batch`, which then writes ``line`` as it is instead of encoding the
    record a second time. Build them only with :meth:`of`.
    """

    id: str
    line: bytes
    type: str

    @classmethod
    def of(cls, record: Record) -> EncodedRecord:
        return cls(record.id, record_line(record), record.type)


def _record_budget(limits: Limits) -> int:
    budget = limits.max_batch_bytes - HEADER_RESERVE - TRAILER_RESERVE
    if budget <= 0:
        raise ValueError(
            f"max_batch_bytes must exceed {HEADER_RESERVE + TRAILER_RESERVE} (header and trailer)"
        )
    return budget


def chunk_records(
    records: Iterable[Record], limits: Limits | None = None
) -> Iterator[list[Record]]:
    """Split ``records`` into lists that each fit one batch under ``limits``.

    Each chunk is held in memory (at most ``max_batch_bytes`` of record lines). A single
    record that can never fit raises :class:`BatchLimitExceeded`.
    """
    limits = limits or Limits()
    budget = _record_budget(limits)
    chunk: list[Record] = []
    used = 0
    for record in records:
        size = len(record_line(record))
        if size - 1 > limits.max_line_bytes or size > budget:
            raise BatchLimitExceeded(f"record {record.id!r} alone is {size} bytes, over the limits")
        if chunk and (len(chunk) >= limits.max_records or used + size > budget):
            yield chunk
            chunk, used = [], 0
        chunk.append(record)
        used += size
    if chunk:
        yield chunk


def _check_arguments(
    source: str, destination: str, prev_digest: str | None, ttl: timedelta
) -> None:
    check_network_id(source, "source")
    check_network_id(destination, "destination")
    if prev_digest is not None and (
        not isinstance(prev_digest, str) or _SHA256_HEX_RE.fullmatch(prev_digest) is None
    ):
        raise ValueError("prev_digest must be None or a lower-case sha256 hex digest")
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")


def _write_body(
    handle: Any,
    header_line: bytes,
    records: Iterable[Record | EncodedRecord],
    limits: Limits,
    key: SigningKey,
) -> tuple[int, int, str]:
    """Write header, records and trailer; return (count, record bytes, file digest)."""
    file_hash = hashlib.sha256()
    records_hash = hashlib.sha256()
    budget = limits.max_batch_bytes - (len(header_line) + 1) - TRAILER_RESERVE
    count = 0
    byte_count = 0

    def emit(data: bytes) -> None:
        file_hash.update(data)
        handle.write(data)

    emit(header_line + b"\n")
    for record in records:
        line = record.line if record.__class__ is EncodedRecord else record_line(record)
        count += 1
        byte_count += len(line)
        if len(line) - 1 > limits.max_line_bytes:
            raise BatchLimitExceeded(
                f"record {count} ({record.id!r}) is {len(line) - 1} bytes, "
                f"over max_line_bytes {limits.max_line_bytes}"
            )
        if count > limits.max_records:
            raise BatchLimitExceeded(f"more than max_records {limits.max_records} records")
        if byte_count > budget:
            raise BatchLimitExceeded(f"records exceed max_batch_bytes {limits.max_batch_bytes}")
        records_hash.update(line)
        emit(line)
    digest = records_hash.hexdigest()
    signature = key.sign(signed_payload(header_line, count, byte_count, digest))
    trailer = {
        "kind": "trailer",
        "count": count,
        "bytes": byte_count,
        "sha256": digest,
        "signature": signature,
    }
    emit(canonical(trailer) + b"\n")
    return count, byte_count, file_hash.hexdigest()


def write_batch(
    directory: Path,
    *,
    stream: str,
    source: str,
    destination: str,
    seq: int,
    prev_digest: str | None,
    signing_key: SigningKey,
    records: Iterable[Record | EncodedRecord],
    ttl: timedelta = DEFAULT_TTL,
    capabilities: Iterable[str] = (),
    limits: Limits | None = None,
    now: datetime | None = None,
    batch_id: str | None = None,
) -> WrittenBatch:
    """Stream ``records`` into a new signed batch file plus sidecar in ``directory``.

    Atomic: written under a hidden temp name, fsynced, renamed, directory fsynced. On any
    error (including one raised by ``records``) nothing appears under the final names.
    """
    limits = limits or Limits()
    now = now or datetime.now(UTC)
    _check_arguments(source, destination, prev_digest, ttl)
    directory = Path(directory)
    batch_id = batch_id or uuid7(now)
    name = batch_filename(stream, source, seq, batch_id)
    final = directory / name
    sidecar = directory / sidecar_name(name)
    for path in (final, sidecar):
        if os.path.lexists(path):
            raise FileExistsError(f"refusing to overwrite existing file {path}")
    header = build_header(
        stream=stream,
        batch_id=batch_id,
        source=source,
        destination=destination,
        seq=seq,
        prev_digest=prev_digest,
        created_at=now,
        not_after=now + ttl,
        producer=PRODUCER,
        key_id=signing_key.key_id,
        capabilities=capabilities,
    )
    header_line = canonical(header)
    if len(header_line) > min(HEADER_RESERVE, limits.max_line_bytes):
        raise BatchLimitExceeded(f"header line is {len(header_line)} bytes, over the limits")
    _record_budget(limits)

    temp, fd = create_temp(final)
    try:
        with os.fdopen(fd, "wb", buffering=_WRITE_BUFFER) as handle:
            count, byte_count, digest = _write_body(
                handle, header_line, records, limits, signing_key
            )
            handle.flush()
            os.fsync(handle.fileno())
        publish(temp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    try:
        write_file_atomically(sidecar, sidecar_text(digest, name))
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(final)
        raise
    # write_file_atomically fsynced the directory, which makes both renames durable.
    return WrittenBatch(final, sidecar, batch_id, digest, count, byte_count, header)

"""Verifying, streaming batch reader.

``open_batch`` checks the name, the file, the header, the trailer and the signature up
front (raising :class:`BatchRejected` with every problem it can find), then
``records()`` yields records while hashing and raises :class:`BatchRejected` at the end
if anything at all was wrong. Callers insert inside a transaction and commit only after
the iteration finished without raising. ``verify_file`` runs the same checks, never raises.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from transfer.format.body import RecordScan, RecordValidator
from transfer.format.digest import file_digest, sidecar_problems
from transfer.format.header import (
    decode_signature,
    header_problems,
    name_mismatches,
    trailer_problems,
)
from transfer.format.lines import LineSource, open_regular_file, parse_object
from transfer.format.names import BatchName, check_network_id, parse_batch_filename
from transfer.format.spec import BatchRejected, Limits, Record, signed_payload

__all__ = [
    "BatchReader",
    "RecordValidator",
    "VerifyReport",
    "file_digest",
    "open_batch",
    "verify_file",
]

_TAIL_READ = 64 * 1024  # first guess at the trailer's length (it is a few hundred bytes)


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify_file`; ``digest`` is the whole-file sha256 when it was read."""

    ok: bool
    reasons: list[str]
    header: dict[str, Any] | None
    count: int
    digest: str | None


class BatchReader:
    """One batch being verified; get it from :func:`open_batch`, iterate ``records()`` once."""

    def __init__(
        self,
        path: Path,
        *,
        expected_destination: str,
        public_keys: Mapping[str, Ed25519PublicKey],
        limits: Limits | None = None,
        now: datetime | None = None,
        validate_record: RecordValidator | None = None,
    ) -> None:
        self.path = Path(path)
        self.name: BatchName | None = None
        self.header: dict[str, Any] | None = None
        self._destination = check_network_id(expected_destination, "expected_destination")
        self._keys = public_keys
        self._limits = limits or Limits()
        self._now = now or datetime.now(UTC)
        if self._now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        self._validate_record = validate_record
        self._name_reasons: list[str] = []
        self._file_reasons: list[str] = []
        self._total_reasons: list[str] = []
        self._body: RecordScan | None = None  # set once the header has been read
        self._end_reasons: list[str] = []
        self._source: LineSource | None = None
        self._header_line: bytes | None = None
        self._header_end = 0
        self._trailer_start: int | None = None
        self._trailer_raw = b""
        self._trailer: dict[str, Any] | None = None
        self._digest: str | None = None
        self._iterated = False

    # -- public ---------------------------------------------------------------------

    @property
    def reasons(self) -> list[str]:
        """Every problem found so far, in check order."""
        body = self._body
        line_reasons = body.reasons if body is not None else []
        overflow = [f"... and {body.overflow} more problems"] if body and body.overflow else []
        return (
            self._name_reasons
            + self._file_reasons
            + self._total_reasons
            + line_reasons
            + overflow
            + self._end_reasons
        )

    @property
    def count(self) -> int:
        """Record lines read so far."""
        return self._body.count if self._body is not None else 0

    @property
    def digest(self) -> str:
        """sha256 of the whole file; available once ``records()`` has finished."""
        if self._digest is None:
            raise RuntimeError("digest is known only after records() has been consumed")
        return self._digest

    def records(self) -> Iterator[Record]:
        """Yield verified records; raise :class:`BatchRejected` at the end if anything failed."""
        if self._iterated:
            raise RuntimeError("records() can be iterated only once")
        self._iterated = True
        try:
            yield from self._scan()  # it stops yielding at the first problem
            self._finish()
        finally:
            self.close()
        if self._failed():
            raise BatchRejected(self.reasons, self.path)

    def close(self) -> None:
        if self._source is not None:
            self._source.handle.close()
            self._source = None

    def __enter__(self) -> BatchReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- checks before the body -----------------------------------------------------

    def _failed(self) -> bool:
        groups = (self._name_reasons, self._file_reasons, self._total_reasons, self._end_reasons)
        return any(groups) or bool(self._body is not None and self._body.reasons)

    def _preflight(self) -> bool:
        """Name, file, header, trailer and signature checks; True if the body can be read."""
        try:
            self.name = parse_batch_filename(self.path.name)
        except ValueError:
            self._name_reasons.append(f"unsafe or malformed file name {self.path.name[:80]!r}")
        if not self._open():
            return False
        self._read_header()
        self._read_trailer()
        self._check_signature()
        return True

    def _open(self) -> bool:
        handle, problem = open_regular_file(self.path)
        if handle is None:
            self._file_reasons.append(problem)
            return False
        size = os.fstat(handle.fileno()).st_size
        self._source = LineSource(handle, size, self._limits.max_line_bytes)
        if size > self._limits.max_batch_bytes:
            self._file_reasons.append(
                f"file is {size} bytes, over the {self._limits.max_batch_bytes}-byte limit"
            )
            return False
        if size == 0:
            self._file_reasons.append("empty file")
            return False
        return True

    def _read_header(self) -> None:
        assert self._source is not None
        raw, length, overlong = self._source.read_line(in_records=False)
        self._header_end = length
        if overlong:
            self._file_reasons.append(f"line 1: longer than {self._limits.max_line_bytes} bytes")
            return
        if not raw.endswith(b"\n"):
            return  # the missing final newline is reported by _read_trailer
        self._header_line = raw[:-1]
        header, error = parse_object(self._header_line, self._limits.max_json_depth)
        if header is None:
            self._file_reasons.append(f"line 1: {error}")
            return
        self.header = header
        self._file_reasons += header_problems(
            header,
            expected_destination=self._destination,
            known_key_ids=self._keys,
            now=self._now,
        )
        if self.name is not None:
            self._name_reasons += name_mismatches(self.name, header)

    def _read_trailer(self) -> None:
        assert self._source is not None
        size = self._source.size
        cap = self._limits.max_line_bytes + 2  # the last line, its newline and the one before
        want = min(cap, _TAIL_READ)
        tail = self._source.read_tail(want)
        newline = tail.rfind(b"\n", 0, len(tail) - 1)
        while newline == -1 and want < cap and len(tail) < size:  # a long last line
            want = min(cap, want * 16)
            tail = self._source.read_tail(want)
            newline = tail.rfind(b"\n", 0, len(tail) - 1)
        if not tail.endswith(b"\n"):
            self._file_reasons.append("file does not end with a newline (truncated?)")
            return
        if newline == -1 and len(tail) < size:
            self._file_reasons.append(f"last line: longer than {self._limits.max_line_bytes} bytes")
            return
        start = size - len(tail) + newline + 1
        if start < self._header_end:
            self._file_reasons.append("missing trailer: nothing follows the header")
            return
        self._trailer_start = start
        self._trailer_raw = tail[newline + 1 :]
        trailer, error = parse_object(self._trailer_raw[:-1], self._limits.max_json_depth)
        if trailer is None:
            self._file_reasons.append(f"last line: {error}")
            return
        if trailer.get("kind") != "trailer":
            self._file_reasons.append("last line: not a trailer (missing trailer or truncated)")
            return
        problems = trailer_problems(trailer)
        self._file_reasons += problems
        if not problems:
            self._trailer = trailer
            if trailer["count"] > self._limits.max_records:
                self._file_reasons.append(
                    f"trailer: count {trailer['count']} exceeds the limit of "
                    f"{self._limits.max_records} records"
                )

    def _check_signature(self) -> None:
        if self.header is None or self._trailer is None or self._header_line is None:
            return
        key_id = self.header.get("key_id")
        public_key = self._keys.get(key_id) if isinstance(key_id, str) else None
        if public_key is None:
            return  # reported as an unknown key id
        trailer = self._trailer
        payload = signed_payload(
            self._header_line, trailer["count"], trailer["bytes"], trailer["sha256"]
        )
        signature = decode_signature(trailer["signature"])
        assert signature is not None  # trailer_problems checked it
        try:
            public_key.verify(signature, payload)
        except InvalidSignature:
            self._file_reasons.append(f"signature does not verify for key {key_id}")

    # -- the body -------------------------------------------------------------------

    def _scan(self, *, quiet: bool = False) -> Iterator[Record]:
        """Every record line, read and hashed: the records that pass their own checks.

        Yields nothing if ``quiet`` or once anything at all is wrong. The caller iterates
        it to the end, then calls :meth:`_finish`.
        """
        source = self._source
        assert source is not None
        end = self._trailer_start if self._trailer_start is not None else source.size
        stream = self.header.get("stream") if self.header is not None else None
        self._body = RecordScan(stream, self._validate_record, self._limits)
        return self._body.records(source, end, quiet=quiet or bool(self.reasons))

    def _drain(self) -> None:
        """Run the remaining checks without yielding anything (no record is built)."""
        for _ in self._scan(quiet=True):
            pass
        self._finish()

    def _finish(self) -> None:
        """Read the trailer line again, compare totals, check the sidecar."""
        source = self._source
        assert source is not None
        end = self._trailer_start
        if end is not None and (source.consumed != end or source.cut_line):  # after _scan()
            self._end_reasons.append("file changed while being read")
        rest = source.read_rest(len(self._trailer_raw) + 1)
        expected_rest = self._trailer_raw if self._trailer_start is not None else b""
        if rest != expected_rest:
            self._end_reasons.append("file changed while being read")
        self._digest = source.file_hash.hexdigest()
        trailer = self._trailer
        if trailer is not None:
            count = self.count
            where = f"line {count + 2} (trailer)"
            if trailer["count"] != count:
                self._total_reasons.append(
                    f"{where}: record count mismatch: trailer says {trailer['count']}, "
                    f"file has {count}"
                )
            if trailer["bytes"] != source.records_bytes:
                self._total_reasons.append(
                    f"{where}: record byte count mismatch: trailer says {trailer['bytes']}, "
                    f"file has {source.records_bytes}"
                )
            if trailer["sha256"] != source.records_hash.hexdigest():
                self._total_reasons.append(f"{where}: record digest mismatch")
        if self._trailer_start is not None:
            self._end_reasons += sidecar_problems(self.path, self._digest)


def open_batch(
    path: Path,
    *,
    expected_destination: str,
    public_keys: Mapping[str, Ed25519PublicKey],
    limits: Limits | None = None,
    now: datetime | None = None,
    validate_record: RecordValidator | None = None,
) -> BatchReader:
    """Open and pre-verify a batch; :class:`BatchRejected` lists every problem found."""
    reader = BatchReader(
        path,
        expected_destination=expected_destination,
        public_keys=public_keys,
        limits=limits,
        now=now,
        validate_record=validate_record,
    )
    try:
        readable = reader._preflight()
        if reader.reasons:
            if readable:
                reader._drain()
            raise BatchRejected(reader.reasons, reader.path)
    except BaseException:
        reader.close()
        raise
    return reader


def verify_file(
    path: Path,
    *,
    expected_destination: str,
    public_keys: Mapping[str, Ed25519PublicKey],
    limits: Limits | None = None,
    now: datetime | None = None,
    validate_record: RecordValidator | None = None,
) -> VerifyReport:
    """Run every check over the whole file and report; never raises for a bad file."""
    reader = BatchReader(
        path,
        expected_destination=expected_destination,
        public_keys=public_keys,
        limits=limits,
        now=now,
        validate_record=validate_record,
    )
    try:
        if reader._preflight():
            reader._drain()
    except OSError as error:
        reader._end_reasons.append(f"read error: {error.strerror or error}")
    finally:
        reader.close()
    return VerifyReport(
        ok=not reader.reasons,
        reasons=reader.reasons,
        header=reader.header,
        count=reader.count,
        digest=reader._digest,
    )

"""What a batch file is (DESIGN §3): its spec, header, body and trailer, lines and strict JSON,
the fast schema and the native line checker, digests, signing keys, names, the reader and
the writer.

Pure: no database, no settings, no network package, nothing else of `transfer/`; anyone
can verify a file with this subpackage alone. Its public API, gathered here:

- names: :func:`batch_filename`, :func:`parse_batch_filename`, :func:`uuid7`, :func:`uuid7s`
- writing: :func:`write_batch`, :func:`chunk_records` (split before writing)
- reading: :func:`open_batch` (streaming, raises :class:`BatchRejected`),
  :func:`verify_file` (reports, never raises), :func:`file_digest`
"""

from __future__ import annotations

from transfer.format.digest import file_digest, sidecar_problems, sidecar_text
from transfer.format.names import (
    STREAMS,
    BatchName,
    batch_filename,
    is_network_id,
    parse_batch_filename,
    sidecar_name,
    uuid7,
    uuid7s,
)
from transfer.format.reader import (
    BatchReader,
    RecordValidator,
    VerifyReport,
    open_batch,
    verify_file,
)
from transfer.format.spec import (
    FORMAT_NAME,
    FORMAT_VERSION,
    KNOWN_CAPABILITIES,
    PRODUCER,
    BatchLimitExceeded,
    BatchRejected,
    Limits,
    Record,
    record_line,
    signed_payload,
)
from transfer.format.writer import DEFAULT_TTL, WrittenBatch, chunk_records, write_batch

__all__ = [
    "DEFAULT_TTL",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "KNOWN_CAPABILITIES",
    "PRODUCER",
    "STREAMS",
    "BatchLimitExceeded",
    "BatchName",
    "BatchReader",
    "BatchRejected",
    "Limits",
    "Record",
    "RecordValidator",
    "VerifyReport",
    "WrittenBatch",
    "batch_filename",
    "chunk_records",
    "file_digest",
    "is_network_id",
    "open_batch",
    "parse_batch_filename",
    "record_line",
    "sidecar_name",
    "sidecar_problems",
    "sidecar_text",
    "signed_payload",
    "uuid7",
    "uuid7s",
    "verify_file",
    "write_batch",
]

"""Helpers for batch-format tests: sample records and a forger for crafted batch files."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.jsonutil import canonical
from transfer.format import Record, signed_payload
from transfer.format.keys import SigningKey

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
SOURCE = "req"
DESTINATION = "resp"


def request_record(n: int = 0) -> Record:
    return Record(
        type="request",
        id=str(uuid.UUID(int=n + 1)),
        version=1,
        data={
            "user_id": f"user{n}",
            "profile_type": "people",
            "query": {"match": {"name": f"smith {n}"}, "size": 10},
            "submitted_at": "2025-06-01T11:00:00Z",
        },
    )


def request_records(count: int) -> list[Record]:
    return [request_record(n) for n in range(count)]


def new_signing_key() -> SigningKey:
    return SigningKey.from_private_key(Ed25519PrivateKey.generate())


def header_of(path: Path) -> dict[str, Any]:
    return json.loads(path.read_bytes().split(b"\n", 1)[0])


def record_lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[1:-2]


def forge(
    path: Path,
    key: SigningKey,
    *,
    header: dict[str, Any] | None = None,
    header_line: bytes | None = None,
    lines: Iterable[bytes] | None = None,
) -> None:
    """Rewrite ``path`` with a correctly signed trailer over the given header and lines.

    Lets a test break exactly one rule while the signature and digests stay valid.
    """
    if header_line is None:
        header_line = canonical(header if header is not None else header_of(path))
    body_lines = list(lines) if lines is not None else record_lines_of(path)
    body = b"".join(line + b"\n" for line in body_lines)
    digest = hashlib.sha256(body).hexdigest()
    signature = key.sign(signed_payload(header_line, len(body_lines), len(body), digest))
    trailer = {
        "kind": "trailer",
        "count": len(body_lines),
        "bytes": len(body),
        "sha256": digest,
        "signature": signature,
    }
    path.with_name(path.name + ".sha256").unlink(missing_ok=True)
    path.write_bytes(header_line + b"\n" + body + canonical(trailer) + b"\n")


def record_line(record_type: str, record_id: str, data: Any, version: int = 1) -> bytes:
    return canonical(
        {"kind": "record", "type": record_type, "id": record_id, "version": version, "data": data}
    )

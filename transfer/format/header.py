"""Batch header and trailer: build them (writer) and check them (reader)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from transfer.format.names import MAX_SEQ, STREAMS, BatchName, is_network_id, is_uuid7
from transfer.format.spec import (
    FORMAT_NAME,
    FORMAT_VERSION,
    HEADER_FIELDS,
    KNOWN_CAPABILITIES,
    SHA256_HEX_RE,
    TRAILER_FIELDS,
    format_time,
    parse_time,
)

__all__ = [
    "build_header",
    "check_capabilities",
    "header_problems",
    "name_mismatches",
    "trailer_problems",
]

_PRODUCER_RE = re.compile(r"ferry/[0-9A-Za-z.+_-]{1,40}")
_KEY_ID_RE = re.compile(r"[0-9a-f]{16}")
_SIGNATURE_BYTES = 64


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_capabilities(capabilities: Iterable[str]) -> list[str]:
    """Sorted, de-duplicated capabilities; ``ValueError`` for one this version does not know."""
    result = sorted(set(capabilities))
    unknown = [name for name in result if name not in KNOWN_CAPABILITIES]
    if unknown:
        raise ValueError(f"unknown capabilities: {', '.join(map(repr, unknown))}")
    return result


def build_header(
    *,
    stream: str,
    batch_id: str,
    source: str,
    destination: str,
    seq: int,
    prev_digest: str | None,
    created_at: datetime,
    not_after: datetime,
    producer: str,
    key_id: str,
    capabilities: Iterable[str],
) -> dict[str, Any]:
    """The header object (line 1) for a new batch."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "kind": "header",
        "stream": stream,
        "batch_id": batch_id,
        "source": source,
        "destination": destination,
        "seq": seq,
        "prev_digest": prev_digest,
        "created_at": format_time(created_at),
        "not_after": format_time(not_after),
        "producer": producer,
        "key_id": key_id,
        "capabilities": check_capabilities(capabilities),
    }


def _format_problems(header: dict[str, Any]) -> list[str]:
    problems = []
    if header.get("format") != FORMAT_NAME:
        problems.append(f"header: unknown format {str(header.get('format'))[:40]!r}")
    version = header.get("format_version")
    if not _is_int(version) or version != FORMAT_VERSION:
        problems.append(f"header: unsupported format_version {str(version)[:20]!r}")
    capabilities = header.get("capabilities")
    if not isinstance(capabilities, list) or not all(isinstance(c, str) for c in capabilities):
        problems.append("header: capabilities must be a list of strings")
    else:
        for name in capabilities:
            if name not in KNOWN_CAPABILITIES:
                problems.append(f"header: unknown capability {name[:40]!r}")
        if len(set(capabilities)) != len(capabilities):
            problems.append("header: duplicate capability")
    return problems


def _field_problems(header: dict[str, Any]) -> list[str]:
    problems = []
    if header.get("stream") not in STREAMS:
        problems.append("header: unknown stream")
    if not is_uuid7(header.get("batch_id")):
        problems.append("header: batch_id is not a UUIDv7")
    for name in ("source", "destination"):
        if not is_network_id(header.get(name)):
            problems.append(f"header: {name} is not a valid network id")
    seq = header.get("seq")
    if not _is_int(seq) or not 1 <= seq <= MAX_SEQ:
        problems.append("header: seq must be an integer >= 1")
    prev = header.get("prev_digest")
    if prev is not None and (not isinstance(prev, str) or SHA256_HEX_RE.fullmatch(prev) is None):
        problems.append("header: prev_digest must be null or a sha256 hex digest")
    producer = header.get("producer")
    if not isinstance(producer, str) or _PRODUCER_RE.fullmatch(producer) is None:
        problems.append("header: producer must look like 'ferry/<version>'")
    key = header.get("key_id")
    if not isinstance(key, str) or _KEY_ID_RE.fullmatch(key) is None:
        problems.append("header: key_id must be 16 hex characters")
    return problems


def _time_problems(header: dict[str, Any], now: datetime) -> list[str]:
    created_at = parse_time(header.get("created_at"))
    not_after = parse_time(header.get("not_after"))
    problems = []
    if created_at is None:
        problems.append("header: created_at is not an RFC 3339 UTC timestamp")
    if not_after is None:
        problems.append("header: not_after is not an RFC 3339 UTC timestamp")
        return problems
    if created_at is not None and not_after <= created_at:
        problems.append("header: not_after is not after created_at")
    if now > not_after:
        problems.append(f"stale: not_after {header['not_after']} has passed")
    return problems


def header_problems(
    header: dict[str, Any],
    *,
    expected_destination: str,
    known_key_ids: Iterable[str],
    now: datetime,
) -> list[str]:
    """Everything wrong with a parsed header line, most fundamental first."""
    problems = []
    if header.get("kind") != "header":
        problems.append("line 1: not a header")
    missing = sorted(HEADER_FIELDS - header.keys())
    unexpected = sorted(header.keys() - HEADER_FIELDS)
    if missing:
        problems.append(f"header: missing fields {', '.join(missing)}")
    if unexpected:
        problems.append(f"header: unexpected fields {', '.join(k[:40] for k in unexpected)}")
    problems += _format_problems(header)
    problems += _field_problems(header)
    destination = header.get("destination")
    if is_network_id(destination) and destination != expected_destination:
        problems.append(
            f"wrong destination: batch is for {destination!r}, this is {expected_destination!r}"
        )
    key = header.get("key_id")
    if isinstance(key, str) and _KEY_ID_RE.fullmatch(key) and key not in set(known_key_ids):
        problems.append(f"unknown signing key id {key}")
    problems += _time_problems(header, now)
    return problems


def name_mismatches(name: BatchName, header: dict[str, Any]) -> list[str]:
    """Fields where the file name and the header disagree (types must match too)."""
    problems = []
    for field, from_name in zip(name._fields, name, strict=True):
        value = header.get(field)
        if type(value) is not type(from_name) or value != from_name:
            problems.append(f"file name {field} does not match the header")
    return problems


def decode_signature(text: object) -> bytes | None:
    """Signature bytes if ``text`` is canonical padded base64 of 64 bytes, else ``None``."""
    if not isinstance(text, str) or not text.isascii():
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != _SIGNATURE_BYTES or base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def trailer_problems(trailer: dict[str, Any]) -> list[str]:
    """Everything wrong with the shape of a parsed trailer line."""
    problems = []
    missing = sorted(TRAILER_FIELDS - trailer.keys())
    unexpected = sorted(trailer.keys() - TRAILER_FIELDS)
    if missing:
        problems.append(f"trailer: missing fields {', '.join(missing)}")
    if unexpected:
        problems.append(f"trailer: unexpected fields {', '.join(k[:40] for k in unexpected)}")
    for name in ("count", "bytes"):
        value = trailer.get(name)
        if name in trailer and (not _is_int(value) or value < 0):
            problems.append(f"trailer: {name} must be an integer >= 0")
    digest = trailer.get("sha256")
    if "sha256" in trailer and (
        not isinstance(digest, str) or SHA256_HEX_RE.fullmatch(digest) is None
    ):
        problems.append("trailer: sha256 must be a lower-case sha256 hex digest")
    if "signature" in trailer and decode_signature(trailer.get("signature")) is None:
        problems.append("trailer: signature must be base64 of a 64-byte Ed25519 signature")
    return problems

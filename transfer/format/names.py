"""Batch file names, network ids, stream names and UUIDv7 batch ids."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from datetime import datetime
from typing import NamedTuple

from shared.records import STREAMS

__all__ = [
    "MAX_SEQ",
    "SIDECAR_SUFFIX",
    "STREAMS",
    "BatchName",
    "batch_filename",
    "check_network_id",
    "is_network_id",
    "is_uuid7",
    "parse_batch_filename",
    "sidecar_name",
    "uuid7",
]

NETWORK_ID_RE = re.compile(r"[a-z][a-z0-9]{0,31}")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SIDECAR_SUFFIX = ".sha256"
MAX_SEQ = 10**18

_BATCH_NAME_RE = re.compile(
    r"(?P<stream>" + "|".join(STREAMS) + r")"
    r"-(?P<source>[a-z][a-z0-9]{0,31})"
    r"-(?P<seq>[0-9]{8,19})"
    r"-(?P<batch_id>" + UUID_RE.pattern + r")"
    r"\.jsonl"
)


class BatchName(NamedTuple):
    """Parsed batch file name."""

    stream: str
    source: str
    seq: int
    batch_id: str


def is_network_id(value: object) -> bool:
    return isinstance(value, str) and NETWORK_ID_RE.fullmatch(value) is not None


def check_network_id(value: object, what: str = "network id") -> str:
    """Return ``value`` if it is a valid network id, else raise ``ValueError``."""
    if not is_network_id(value):
        raise ValueError(f"{what} must match ^[a-z][a-z0-9]{{0,31}}$, got {value!r}")
    return value  # type: ignore[return-value]


def is_uuid7(value: object) -> bool:
    """True for a lower-case, hyphenated RFC 9562 UUID of version 7."""
    if not isinstance(value, str) or UUID_RE.fullmatch(value) is None:
        return False
    parsed = uuid.UUID(value)
    return parsed.version == 7 and parsed.variant == uuid.RFC_4122


def _uuid7_head(now: datetime | None) -> int:
    """A UUIDv7's 48-bit Unix milliseconds, version and variant bits (its random bits 0)."""
    millis = int(now.timestamp() * 1000) if now is not None else time.time_ns() // 1_000_000
    return (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | 0b10 << 62


def _random_bits(bits: int) -> int:
    """74 random bits of a UUIDv7 (from an 80-bit draw) in their places: 12 (rand_a) above
    the variant, 62 (rand_b) below it."""
    return ((bits >> 62) & 0xFFF) << 64 | (bits & ((1 << 62) - 1))


def uuid7(now: datetime | None = None) -> str:
    """A new UUIDv7 string: 48-bit Unix milliseconds, then 74 random bits."""
    return str(uuid.UUID(int=_uuid7_head(now) | _random_bits(secrets.randbits(80))))


def uuid7s(count: int, now: datetime | None = None) -> list[str]:
    """``count`` new UUIDv7 strings of one millisecond, their randomness drawn at once: keys
    a bulk insert appends at the end of an index, where random ones land all over it."""
    head = _uuid7_head(now)
    raw = secrets.token_bytes(10 * count)
    ids = []
    for k in range(0, 10 * count, 10):
        h = f"{head | _random_bits(int.from_bytes(raw[k : k + 10])):032x}"
        ids.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return ids


def batch_filename(stream: str, source: str, seq: int, batch_id: str) -> str:
    """``<stream>-<source>-<seq:08d>-<batch_id>.jsonl``, after validating every part."""
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}")
    check_network_id(source, "source")
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
        raise ValueError(f"seq must be an integer between 1 and {MAX_SEQ}, got {seq!r}")
    if not isinstance(batch_id, str) or UUID_RE.fullmatch(batch_id) is None:
        raise ValueError(f"batch_id must be a lower-case UUID string, got {batch_id!r}")
    return f"{stream}-{source}-{seq:08d}-{batch_id}.jsonl"


def parse_batch_filename(name: str) -> BatchName:
    """Split a batch file name; ``ValueError`` for anything not exactly in the format."""
    if not isinstance(name, str) or len(name) > 255:
        raise ValueError("unsafe batch file name")
    match = _BATCH_NAME_RE.fullmatch(name)
    if match is None:
        raise ValueError(f"unsafe or malformed batch file name {name[:80]!r}")
    seq_text = match["seq"]
    seq = int(seq_text)
    if seq < 1 or seq > MAX_SEQ or f"{seq:08d}" != seq_text:
        raise ValueError(f"bad sequence number in batch file name {name[:80]!r}")
    return BatchName(match["stream"], match["source"], seq, match["batch_id"])


def sidecar_name(batch_name: str) -> str:
    """Name of the ``sha256sum`` sidecar for a batch file."""
    return batch_name + SIDECAR_SUFFIX

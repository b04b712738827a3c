"""The reader's fast paths never accept what the strict path refuses, nor read it differently.

Record lines in the writer's compact form are parsed by orjson and checked by writing them
back (``compact_loads`` / ``compact_record_line``); everything else, and everything wrong,
goes to the strict parser. Here every mutation of real record lines is run through both,
and the block reader's own line splitting is compared with a plain ``split``.
"""

from __future__ import annotations

import copy
import hashlib
import io
import pickle
from typing import Any

import msgspec
import pytest
from test_corpus import realistic_records

import transfer.format.lines
from shared.jsonutil import canonical
from transfer.format import Record, record_line
from transfer.format.lines import (
    OVERLONG,
    UNTERMINATED,
    LineSource,
    compact_record_line,
    parse_record_line,
)
from transfer.format.spec import make_record
from transfer.format.strictjson import (
    NOT_COMPACT,
    StrictJSONError,
    compact_loads,
    strict_loads,
    value_depth_exceeds,
)


def same(a: Any, b: Any) -> bool:
    """Equal *and* of the same JSON types all the way down (1, 1.0 and True differ)."""
    return a == b and canonical(a) == canonical(b)


def strict_or_error(raw: bytes, max_depth: int = 32) -> Any:
    try:
        return strict_loads(raw, max_depth=max_depth)
    except StrictJSONError as error:
        return error


TRICKY = [
    b'{"a":1}',
    b'{"a":1,"a":1}',
    b'{"a":1,"b":{"a":2,"a":2}}',
    b'{"a":1.0}',
    b'{"a":1e16}',
    b'{"a":1E16}',
    b'{"a":-0}',
    b"-0.0",
    b"1.8446744073709552e+19",
    b"18446744073709551615",
    b"18446744073709551616",
    b"-9223372036854775808",
    b"-9223372036854775809",
    b"1e400",
    b"NaN",
    b"[Infinity]",
    b'"\\ud800"',
    b'"\\ud83d\\ude00"',
    '"\U0001f600"'.encode(),
    b'"\\u00e9"',
    '"é"'.encode(),
    b'"\x7f"',
    b'"\x1f"',
    b'"\\u001f"',
    b'"a\\/b"',
    b'"\xff"',
    b"\xef\xbb\xbf{}",
    b" {}",
    b"{} ",
    b"{}\r",
    b"[" * 32 + b"]" * 32,
    b"[" * 33 + b"]" * 33,
    b'["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]',
    b"[[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[],[]]",
    b"true",
    b"null",
    b"",
    b"{",
]


@pytest.mark.parametrize("raw", TRICKY, ids=[repr(raw)[:40] for raw in TRICKY])
def test_compact_loads_agrees_with_strict_loads(raw):
    fast = compact_loads(raw, 32)
    strict = strict_or_error(raw)

    if fast is not NOT_COMPACT:
        assert not isinstance(strict, StrictJSONError), f"fast path took a bad line: {strict}"
        assert same(fast, strict)


def test_compact_loads_takes_what_the_writer_writes():
    for record in realistic_records():
        content = record_line(record)[:-1]
        assert same(compact_loads(content, 32), strict_loads(content, max_depth=32))


def _mutations(content: bytes):
    for offset in range(len(content)):
        for bit in range(8):
            yield content[:offset] + bytes([content[offset] ^ (1 << bit)]) + content[offset + 1 :]
        yield content[:offset] + content[offset + 1 :]
        for extra in (b'"', b"\\", b",", b"{", b"[", b":", b"}", b"1", b"\xc3"):
            yield content[:offset] + extra + content[offset:]


def test_every_mutation_of_real_lines_gets_the_strict_verdict():
    checked = fast_hits = 0
    for record in realistic_records():
        for mutated in _mutations(record_line(record)[:-1]):
            fast = compact_record_line(mutated, 32)
            slow, problems = parse_record_line(mutated, 32)
            checked += 1
            if fast is None:
                continue
            fast_hits += 1
            assert problems == [] and slow is not None, f"fast path took {mutated!r}: {problems}"
            assert (fast.type, fast.id, fast.version) == (slow.type, slow.id, slow.version)
            assert same(fast.data, slow.data), mutated

    assert checked > 10_000 and fast_hits > 100  # both paths were really exercised


def test_value_depth_matches_the_byte_scan():
    for depth in range(1, 40):
        for kind in ("[]", "{}"):
            if kind == "[]":
                raw = b"[" * depth + b"]" * depth
            else:
                raw = b'{"a":' * depth + b"1" + b"}" * depth
            value = strict_loads(raw, max_depth=100)
            for limit in (depth - 1, depth, depth + 1):
                if limit < 0:
                    continue
                with_bytes = isinstance(strict_or_error(raw, limit), StrictJSONError)
                assert value_depth_exceeds(value, limit) is with_bytes, (raw, limit)


# -- the block reader's line splitting ---------------------------------------------------


def _reference(region: bytes, limit: int) -> list[Any]:
    parts = region.split(b"\n")
    tail = parts.pop()
    items: list[Any] = [OVERLONG if len(part) > limit else part for part in parts]
    if tail:
        items.append(OVERLONG if len(tail) > limit else UNTERMINATED)
    return items


LAYOUTS = [
    b"",
    b"\n",
    b"\n\n\n",
    b"a\n",
    b"abc\ndef\n",
    b"abc\ndef",
    b"x" * 10 + b"\n" + b"y" * 3 + b"\n",
    b"x" * 11 + b"\n",
    b"x" * 12 + b"\nshort\n" + b"z" * 25,
    b"short\n" + b"q" * 40 + b"\n\nend\n",
    b"\n".join(b"k" * n for n in range(15)) + b"\n",
    b"unterminated but long " * 3,
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 11, 64])
@pytest.mark.parametrize("limit", [0, 1, 10, 11, 100])
def test_block_reader_splits_lines_like_split(monkeypatch, chunk, limit):
    monkeypatch.setattr(transfer.format.lines, "_CHUNK", chunk)
    for region in LAYOUTS:
        header = b"HEADER\n"
        whole = header + region + b"TRAILER\n"
        source = LineSource(io.BytesIO(whole), len(whole), limit)
        source.read_rest(len(header))  # as if the header line had been read
        end = len(header) + len(region)
        items = [item for block in source.record_lines(end) for item in block]

        assert items == _reference(region, limit), (region, chunk, limit)
        assert source.records_bytes == len(region)
        assert source.records_hash.hexdigest() == hashlib.sha256(region).hexdigest()
        assert source.read_rest(100) == b"TRAILER\n"
        assert source.file_hash.hexdigest() == hashlib.sha256(whole).hexdigest()


def test_block_reader_stops_at_a_short_file(monkeypatch):
    monkeypatch.setattr(transfer.format.lines, "_CHUNK", 4)
    source = LineSource(io.BytesIO(b"one\ntw"), 0, 100)

    items = [item for block in source.record_lines(50) for item in block]

    assert items == [b"one", UNTERMINATED]
    assert source.consumed == 6


def test_make_record_builds_the_same_record_as_the_constructor():
    data = {"a": [1, {"b": None}]}
    made, built = make_record("request", "id-1", 3, data), Record("request", "id-1", 3, data)

    assert made == built and repr(made) == repr(built) and type(made) is Record
    assert repr(made) == f"Record(type='request', id='id-1', version=3, data={data!r})"
    assert msgspec.structs.asdict(made) == dict(type="request", id="id-1", version=3, data=data)
    assert copy.deepcopy(made) == built
    assert pickle.loads(pickle.dumps(made)) == built  # noqa: S301 (our own bytes)
    assert msgspec.structs.replace(made, version=4) == Record("request", "id-1", 4, data)
    assert Record(type="ack", id="x", version=1) == Record("ack", "x", 1, {})
    assert Record("ack", "x", 1).data is not Record("ack", "x", 1).data  # each its own dict
    assert made != Record("request", "id-1", 3, {}) and made != ("request", "id-1", 3, data)
    with pytest.raises(AttributeError):
        made.version = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        hash(made)  # its data is a dict, as with the frozen dataclass it replaces

"""The native line checker (``transfer/format/linecheck.c``) proves only what the Python
checks accept.

Each line the checker proves good must pass the strict parser and ``validate_record``
(``python_accepts``). Lines come from the record samples and generators of the fast-schema
tests, from hand-made hostile lines and from every single-byte change of real lines. The
checker must also prove the lines Ferry's writers produce (else verify gains nothing), and
a batch must get the same report with and without it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fastschema import CID, IDS, RID, SAMPLES, TP, req, request_data, res, result_data
from transfer_helpers import DESTINATION, NOW, forge

from shared.records import validate_record
from transfer.format import Limits, Record, body, native, record_line, write_batch
from transfer.format.lines import parse_record_line

DEPTH = 32

if not native.available():
    # `make install` builds it; CI must have it, so there it fails instead of skipping.
    (pytest.fail if os.environ.get("CI") else pytest.skip)(
        f"{native.LIBRARY.name} is not built (make install)", allow_module_level=True
    )


def proven(stream: str, line: bytes, depth: int = DEPTH) -> bool:
    checker = native.line_checker(stream, depth)
    assert checker is not None
    good, _ = checker(line, 0, 1)
    return good == 1


def python_accepts(stream: str, line: bytes, depth: int = DEPTH) -> bool:
    record, problems = parse_record_line(line, depth)
    return record is not None and not validate_record(stream, record)


def holds(stream: str, line: bytes, depth: int = DEPTH) -> bool:
    """The invariant: proven implies accepted. Returns whether it was proven."""
    result = proven(stream, line, depth)
    if result:
        assert python_accepts(stream, line, depth), line
    return result


def line_of(record: Record) -> bytes:
    return record_line(record)[:-1]


AS_WRITTEN = {"part": 0, "parts": 1}  # a single-part result, as the exporter writes it
REQUEST_LINE = line_of(req())
RESULT_LINE = line_of(res(**AS_WRITTEN))
CORRELATED_REQUEST_LINE = line_of(req(correlation_id=CID, traceparent=TP))
CORRELATED_RESULT_LINE = line_of(res(**AS_WRITTEN, correlation_id=CID, traceparent=TP))


def test_a_library_older_than_its_source_is_not_used(tmp_path, monkeypatch):
    library, source = tmp_path / "_linecheck.so", tmp_path / "linecheck.c"
    monkeypatch.setattr(native, "LIBRARY", library)
    monkeypatch.setattr(native, "SOURCE", source)
    assert not native.built()  # no library
    library.write_bytes(b"")
    source.write_text("")
    os.utime(library, (1_000, 1_000))
    os.utime(source, (2_000, 2_000))
    assert not native.built()  # the source changed since: `make install` is due
    os.utime(library, (3_000, 3_000))
    assert native.built()
    source.unlink()
    assert native.built()  # no source to compare (an installed copy)


def test_only_the_bulk_streams_have_a_checker():
    assert native.line_checker("requests", DEPTH) is not None
    assert native.line_checker("results", DEPTH) is not None
    for stream in ("users", "profile_types", "settings", "acks", "nonsense"):
        assert native.line_checker(stream, DEPTH) is None


@pytest.mark.parametrize(
    "stream, record",
    [
        ("requests", req()),
        ("requests", req(user_id="😀" * 64, query={})),
        ("requests", req(submitted_at="2024-02-29T23:59:59.123456Z")),
        ("requests", req(correlation_id=CID)),
        ("requests", req(correlation_id="A.b_c:d-" + "x" * 120, traceparent=TP)),
        ("results", res(**AS_WRITTEN)),
        ("results", res(**AS_WRITTEN, status="FAILED", hits=[], error='boom \\ "x" \n é')),
        ("results", res(part=0, parts=3, total=None, took_ms=None)),
        ("results", res(**AS_WRITTEN, correlation_id=CID)),
        ("results", res(**AS_WRITTEN, correlation_id=CID, traceparent=TP)),
    ],
)
def test_it_proves_what_the_writers_write(stream, record):
    assert validate_record(stream, record) == []
    assert holds(stream, line_of(record))


@pytest.mark.parametrize("name", list(SAMPLES))
def test_samples_it_proves_are_accepted(name):
    stream, record, _ = SAMPLES[name]
    if stream in ("requests", "results"):
        holds(stream, line_of(record))
        holds("results", line_of(record))  # on the other stream too


def _swap(line: bytes, old: bytes, new: bytes) -> bytes:
    assert old in line
    return line.replace(old, new, 1)


Q = b'"query":{"query":{"match":{"name":"Zo\xc3\xab"}},"size":10}'
HOSTILE_REQUESTS = {
    "duplicate key": _swap(REQUEST_LINE, Q, b'"query":{"size":1,"size":10}'),
    "duplicate envelope key": _swap(REQUEST_LINE, b'"version":1}', b'"version":1,"version":1}'),
    "duplicate data key": _swap(REQUEST_LINE, b'"user_id":"u-1"', b'"user_id":"u-1","user_id":"x"'),
    "lone high surrogate": _swap(REQUEST_LINE, b"Zo\xc3\xab", b"\\ud800"),
    "lone low surrogate": _swap(REQUEST_LINE, b"Zo\xc3\xab", b"\\udc00"),
    "reversed pair": _swap(REQUEST_LINE, b"Zo\xc3\xab", b"\\udc00\\ud800"),
    "surrogate pair": _swap(REQUEST_LINE, b"Zo\xc3\xab", b"\\ud83d\\ude00"),
    "escaped key": _swap(REQUEST_LINE, b'"size":10', b'"\\u0073ize":10'),
    "overlong utf-8": _swap(REQUEST_LINE, b"Zo\xc3\xab", b"\xc0\xaf"),
    "encoded surrogate": _swap(REQUEST_LINE, b"Zo\xc3\xab", b"\xed\xa0\x80"),
    "beyond U+10FFFF": _swap(REQUEST_LINE, b"Zo\xc3\xab", b"\xf4\x90\x80\x80"),
    "truncated utf-8": _swap(REQUEST_LINE, b"Zo\xc3\xab", b"\xe2\x82"),
    "stray continuation": _swap(REQUEST_LINE, b"Zo\xc3\xab", b"\x80"),
    "0xff": _swap(REQUEST_LINE, b"Zo\xc3\xab", b"\xff"),
    "control character": _swap(REQUEST_LINE, b"Zo\xc3\xab", b"a\x01"),
    "bad escape": _swap(REQUEST_LINE, b"Zo\xc3\xab", b"\\x41"),
    "short \\u": _swap(REQUEST_LINE, b"Zo\xc3\xab", b"\\u12"),
    "NUL escape": _swap(REQUEST_LINE, b"Zo\xc3\xab", b"\\u0000"),
    "NaN": _swap(REQUEST_LINE, b'"size":10', b'"size":NaN'),
    "Infinity": _swap(REQUEST_LINE, b'"size":10', b'"size":-Infinity'),
    "1e400": _swap(REQUEST_LINE, b'"size":10', b'"size":1e400'),
    "-1e400": _swap(REQUEST_LINE, b'"size":10', b'"size":-1e400'),
    "9e300": _swap(REQUEST_LINE, b'"size":10', b'"size":9e300'),
    "1e-400": _swap(REQUEST_LINE, b'"size":10', b'"size":1e-400'),
    "2**64": _swap(REQUEST_LINE, b'"size":10', b'"size":18446744073709551616'),
    "2**64 - 1": _swap(REQUEST_LINE, b'"size":10', b'"size":18446744073709551615'),
    "-(2**63) - 1": _swap(REQUEST_LINE, b'"size":10', b'"size":-9223372036854775809'),
    "18 digits": _swap(REQUEST_LINE, b'"size":10', b'"size":-999999999999999999'),
    "leading zero": _swap(REQUEST_LINE, b'"size":10', b'"size":010'),
    "bare minus": _swap(REQUEST_LINE, b'"size":10', b'"size":-'),
    "bare dot": _swap(REQUEST_LINE, b'"size":10', b'"size":1.'),
    "float": _swap(REQUEST_LINE, b'"size":10', b'"size":-0.5E+2'),
    "true": _swap(REQUEST_LINE, b'"size":10', b'"size":true'),
    "tru": _swap(REQUEST_LINE, b'"size":10', b'"size":tru'),
    "whitespace": _swap(REQUEST_LINE, b'"size":10', b'"size": 10'),
    "trailing comma": _swap(REQUEST_LINE, b'"size":10', b'"size":10,'),
    "trailing bytes": REQUEST_LINE + b" ",
    "two values": REQUEST_LINE + REQUEST_LINE,
    "empty": b"",
    "unknown data key": _swap(REQUEST_LINE, b'"user_id":"u-1"', b'"user_id":"u-1","x":1'),
    "unknown envelope key": _swap(REQUEST_LINE, b'"version":1}', b'"version":1,"x":1}'),
    "keys out of order": _swap(
        REQUEST_LINE, b'"kind":"record","type":"request"', b'"type":"request","kind":"record"'
    ),
    "offset": _swap(REQUEST_LINE, b'"2025-06-01T11:00:00Z"', b'"2025-06-01T11:00:00+00:00"'),
    "feb 29 2025": _swap(REQUEST_LINE, b'"2025-06-01T11:00:00Z"', b'"2025-02-29T11:00:00Z"'),
    "feb 29 2100": _swap(REQUEST_LINE, b'"2025-06-01T11:00:00Z"', b'"2100-02-29T11:00:00Z"'),
    "feb 29 2000": _swap(REQUEST_LINE, b'"2025-06-01T11:00:00Z"', b'"2000-02-29T11:00:00Z"'),
    "april 31": _swap(REQUEST_LINE, b'"2025-06-01T11:00:00Z"', b'"2025-04-31T11:00:00Z"'),
    "hour 24": _swap(REQUEST_LINE, b'"2025-06-01T11:00:00Z"', b'"2025-06-01T24:00:00Z"'),
    "second 60": _swap(REQUEST_LINE, b'"2025-06-01T11:00:00Z"', b'"2025-06-01T23:59:60Z"'),
    "year 0": _swap(REQUEST_LINE, b'"2025-06-01T11:00:00Z"', b'"0000-06-01T11:00:00Z"'),
    "year 1": _swap(REQUEST_LINE, b'"2025-06-01T11:00:00Z"', b'"0001-01-01T00:00:00Z"'),
    "7 fraction digits": _swap(
        REQUEST_LINE, b'"2025-06-01T11:00:00Z"', b'"2025-06-01T11:00:00.1234567Z"'
    ),
    "empty fraction": _swap(REQUEST_LINE, b'"2025-06-01T11:00:00Z"', b'"2025-06-01T11:00:00.Z"'),
    "lower-case z": _swap(REQUEST_LINE, b'"2025-06-01T11:00:00Z"', b'"2025-06-01T11:00:00z"'),
    "user 65": _swap(REQUEST_LINE, b'"u-1"', b'"' + b"a" * 65 + b'"'),
    "user 64 escaped": _swap(REQUEST_LINE, b'"u-1"', b'"' + b"\\n" * 64 + b'"'),
    "user 65 escaped": _swap(REQUEST_LINE, b'"u-1"', b'"' + b"\\n" * 65 + b'"'),
    "user empty": _swap(REQUEST_LINE, b'"u-1"', b'""'),
    "user number": _swap(REQUEST_LINE, b'"u-1"', b"1"),
    "profile upper": _swap(REQUEST_LINE, b'"people"', b'"People"'),
    "profile 65": _swap(REQUEST_LINE, b'"people"', b'"' + b"a" * 65 + b'"'),
    "profile empty": _swap(REQUEST_LINE, b'"people"', b'""'),
    "id upper": _swap(REQUEST_LINE, RID.encode(), RID.upper().encode()),
    "id short": _swap(REQUEST_LINE, RID.encode(), RID[:-1].encode()),
    "version negative": _swap(REQUEST_LINE, b'"version":1}', b'"version":-1}'),
    "version string": _swap(REQUEST_LINE, b'"version":1}', b'"version":"1"}'),
    "version float": _swap(REQUEST_LINE, b'"version":1}', b'"version":1.0}'),
    "query array": _swap(REQUEST_LINE, Q, b'"query":[]'),
    "query null": _swap(REQUEST_LINE, Q, b'"query":null'),
    "kind header": _swap(REQUEST_LINE, b'"kind":"record"', b'"kind":"header"'),
    "correlation escaped": _swap(CORRELATED_REQUEST_LINE, CID.encode(), b"\\u0041" + b"a" * 31),
    "correlation slash": _swap(CORRELATED_REQUEST_LINE, CID.encode(), b"a/b"),
    "correlation empty": _swap(CORRELATED_REQUEST_LINE, CID.encode(), b""),
    "correlation 129": _swap(CORRELATED_REQUEST_LINE, CID.encode(), b"x" * 129),
    "correlation null": _swap(CORRELATED_REQUEST_LINE, b'"' + CID.encode() + b'"', b"null"),
    "correlation twice": _swap(
        CORRELATED_REQUEST_LINE,
        b'"correlation_id":"',
        b'"correlation_id":"a","correlation_id":"',
    ),
    "correlation last": _swap(
        REQUEST_LINE,
        b'"user_id":"u-1"',
        b'"user_id":"u-1","correlation_id":"' + CID.encode() + b'"',
    ),
    "traceparent upper": _swap(CORRELATED_REQUEST_LINE, TP.encode(), TP.upper().encode()),
    "traceparent version 01": _swap(CORRELATED_REQUEST_LINE, b'"00-', b'"01-'),
    "traceparent longer": _swap(CORRELATED_REQUEST_LINE, TP.encode(), TP.encode() + b"-00"),
    "traceparent first": _swap(
        REQUEST_LINE, b'{"data":{', b'{"data":{"traceparent":"' + TP.encode() + b'",'
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE_REQUESTS))
def test_hostile_request_lines(name):
    line = HOSTILE_REQUESTS[name]
    was_proven = holds("requests", line)
    if not python_accepts("requests", line):
        assert not was_proven


def test_hostile_lines_that_are_fine_are_still_proven():
    for name in ("surrogate pair", "NUL escape", "1e-400", "18 digits", "float", "true"):
        assert proven("requests", HOSTILE_REQUESTS[name]), name
    for name in ("feb 29 2000", "year 1", "user 64 escaped"):
        assert proven("requests", HOSTILE_REQUESTS[name]), name
    assert proven("requests", CORRELATED_REQUEST_LINE)
    assert proven("results", CORRELATED_RESULT_LINE)


def nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.mark.parametrize("depth", [3, 4, 5, 8, 32])
def test_nesting_up_to_the_limit(depth):
    """The query object is the third level: its contents may go ``depth - 3`` deeper."""
    for inner in range(1, depth + 1):
        line = _swap(REQUEST_LINE, Q, b'"query":{"size":' + nested(inner) + b"}")
        was_proven = holds("requests", line, depth)
        assert was_proven == (3 + inner <= depth)
        assert python_accepts("requests", line, depth) == was_proven


def test_very_deep_lines_are_left_to_python_whatever_the_limit():
    line = _swap(REQUEST_LINE, Q, b'"query":{"size":' + nested(200) + b"}")
    assert not proven("requests", line, depth=1_000)  # its own cap: MAX_NESTING
    assert python_accepts("requests", line, depth=1_000)
    assert not proven("requests", line, depth=2**32 + 500)  # a huge limit, truncated


def test_objects_with_many_keys_are_left_to_python():
    many = {f"k{i}": i for i in range(65)}
    line = line_of(req(query=many))
    assert not proven("requests", line)
    assert python_accepts("requests", line)


RESULT_CHANGES = {
    "part 1": (b'"part":0', b'"part":1'),
    "parts 0": (b'"parts":1', b'"parts":0'),
    "parts 01": (b'"parts":1', b'"parts":01'),
    "no parts": (b',"part":0,"parts":1', b""),
    "status lower": (b'"DONE"', b'"done"'),
    "total negative": (b'"total":2', b'"total":-1'),
    "total true": (b'"total":2', b'"total":true'),
    "total null": (b'"total":2', b'"total":null'),
    "took float": (b'"took_ms":12', b'"took_ms":1.5'),
    "hits scalar": (b'"hits":[', b'"hits":[1,'),
    "hits nested array": (b'"hits":[', b'"hits":[[],'),
    "hits object": (b'"hits":[', b'"hits":{"a":['),
    "error number": (b'"error":null', b'"error":1'),
    "error text": (b'"error":null', b'"error":"\\"why\\" \\u00e9"'),
    "error lone surrogate": (b'"error":null', b'"error":"\\udfff"'),
    "time": (b'"2025-06-01T11:00:01.250Z"', b'"soon"'),
}


@pytest.mark.parametrize("name", list(RESULT_CHANGES))
def test_hostile_result_lines(name):
    old, new = RESULT_CHANGES[name]
    line = _swap(RESULT_LINE, old, new)
    was_proven = holds("results", line)
    if not python_accepts("results", line):
        assert not was_proven
    assert not proven("requests", line)


@pytest.mark.parametrize(
    "stream, line",
    [
        ("requests", REQUEST_LINE),
        ("results", RESULT_LINE),
        ("requests", CORRELATED_REQUEST_LINE),
        ("results", CORRELATED_RESULT_LINE),
    ],
)
def test_every_single_byte_change(stream, line):
    assert proven(stream, line)
    replacements = b'\x00\x01\n "\\,:[]{}0-9aeEZ.\x7f\x80\xbf\xc3\xed\xf4\xff'
    changed = 0
    for position in range(len(line)):
        for byte in replacements:
            if line[position] == byte:
                continue
            mutated = line[:position] + bytes([byte]) + line[position + 1 :]
            if b"\n" in mutated:
                continue  # a line never holds one
            changed += holds(stream, mutated)
    assert changed > 0  # some changes stay valid (digits in a string, say) and are proven


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["request", "result"]), record_id=IDS, data=st.data())
def test_generated_records(kind, record_id, data):
    stream, fields = (
        ("requests", request_data()) if kind == "request" else ("results", result_data())
    )
    record = Record(kind, record_id, 1, data.draw(fields))
    try:
        line = line_of(record)
    except ValueError:
        return  # not even an envelope record_line writes
    holds(stream, line)


@settings(max_examples=300, deadline=None)
@given(
    value=st.recursive(
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(-(2**70), 2**70),
            st.floats(allow_nan=False, allow_infinity=False),
            st.text(),
        ),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    )
)
def test_generated_queries(value):
    """Written by the standard library: big integers, long floats, escapes and all."""
    for ensure_ascii in (False, True):
        raw = json.dumps({"q": value}, separators=(",", ":"), ensure_ascii=ensure_ascii)
        holds("requests", _swap(REQUEST_LINE, Q, b'"query":' + raw.encode()))


# -- the checker over many lines, and in a batch --------------------------------------------


def test_it_counts_lines_and_says_where_it_stopped():
    checker = native.line_checker("requests", DEPTH)
    bad = HOSTILE_REQUESTS["duplicate key"]
    lines = [REQUEST_LINE, REQUEST_LINE, bad, REQUEST_LINE]
    joined = b"\n".join(lines)

    assert checker(joined, 0, 10) == (2, 2 * (len(REQUEST_LINE) + 1))
    assert checker(joined, 0, 1) == (1, len(REQUEST_LINE) + 1)
    after_bad = 2 * (len(REQUEST_LINE) + 1) + len(bad) + 1
    assert checker(joined, after_bad, 10) == (1, len(joined) + 1)
    assert checker(b"", 0, 10) == (0, 0)


def _batch(tmp_path, signing_key, lines: list[bytes]):
    written = write_batch(
        tmp_path,
        stream="requests",
        source="req",
        destination=DESTINATION,
        seq=1,
        prev_digest=None,
        signing_key=signing_key,
        records=[req()],
        now=NOW,
    )
    forge(written.path, signing_key, lines=lines)
    return written.path


@pytest.mark.parametrize(
    "lines",
    [
        [REQUEST_LINE] * 3,
        [REQUEST_LINE, HOSTILE_REQUESTS["duplicate key"], REQUEST_LINE],
        [HOSTILE_REQUESTS[name] for name in HOSTILE_REQUESTS] * 2,
        [REQUEST_LINE] * 70 + [HOSTILE_REQUESTS["NaN"]] + [REQUEST_LINE] * 70,
        [HOSTILE_REQUESTS["offset"]] * 150,
        [REQUEST_LINE] * 150 + [HOSTILE_REQUESTS["user 65"]] * 150,
    ],
    ids=["good", "one bad", "all hostile", "bad in the middle", "unproven", "over 100 reasons"],
)
@pytest.mark.parametrize("max_records", [None, 100])
def test_a_batch_gets_the_same_report_with_or_without_it(
    tmp_path, signing_key, verify, monkeypatch, lines, max_records
):
    path = _batch(tmp_path, signing_key, lines)
    limits = Limits(max_records=max_records) if max_records else Limits()

    with_it = verify(path, limits=limits)
    monkeypatch.setattr(body, "line_checker", lambda *_: None)
    without = verify(path, limits=limits)

    assert (with_it.ok, with_it.reasons, with_it.count) == (
        without.ok,
        without.reasons,
        without.count,
    )
    assert with_it.count == len(lines)


def test_verify_uses_it(tmp_path, signing_key, verify, monkeypatch):
    calls: list[Any] = []
    real = native.line_checker

    def spy(*args):
        checker = real(*args)

        def counted(*call):
            calls.append(call[1:])
            return checker(*call)

        return counted

    monkeypatch.setattr(body, "line_checker", spy)
    report = verify(_batch(tmp_path, signing_key, [REQUEST_LINE] * 5))

    assert report.ok and calls == [(0, 5)]

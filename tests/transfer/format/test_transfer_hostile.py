"""Hostile content under a valid signature: every bad line is named, nothing gets through."""

from __future__ import annotations

from datetime import timedelta

import pytest
from transfer_helpers import NOW, forge, record_line, request_record

from transfer.format import BatchRejected, Limits, open_batch

REQUEST_ID = "00000000-0000-0000-0000-000000000009"


@pytest.fixture
def batch_with(write, signing_key):
    """``batch_with(line)``: a valid batch whose second record line is replaced by ``line``."""

    def _batch_with(*lines: bytes):
        path = write().path
        good = canonical_record(request_record(5))
        forge(path, signing_key, lines=[good, *lines, good])
        return path

    return _batch_with


def canonical_record(record) -> bytes:
    return record_line(record.type, record.id, record.data, record.version)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            b'{"data":{"a":1,"a":2},"id":"x","kind":"record","type":"request","version":1}',
            "line 3: duplicate key 'a'",
        ),
        (
            b'{"data":{"a":NaN},"id":"x","kind":"record","type":"request","version":1}',
            "line 3: NaN is not allowed",
        ),
        (
            b'{"data":{"a":-Infinity},"id":"x","kind":"record","type":"request","version":1}',
            "line 3: -Infinity is not allowed",
        ),
        (
            b'{"data":{"a":1e400},"id":"x","kind":"record","type":"request","version":1}',
            "line 3: number 1e400 is out of range",
        ),
        (
            b'{"data":{"a":123456789012345678901234},"id":"x","kind":"record",'
            b'"type":"request","version":1}',
            "line 3: integer is out of the 64-bit range",
        ),
        (
            b'{"data":{"a":"\xff"},"id":"x","kind":"record","type":"request","version":1}',
            "line 3: invalid UTF-8 at offset 14",
        ),
        (
            b'{"data":{"a":"\\ud800"},"id":"x","kind":"record","type":"request","version":1}',
            "line 3: invalid \\u escape (lone surrogate)",
        ),
        (b"[1,2,3]", "line 3: not a JSON object"),
        (b"", "line 3: invalid JSON at column 1: Expecting value"),
        (b'{"kind":"record"', "line 3: invalid JSON at column 17: Expecting ',' delimiter"),
        (b'{"kind":"blob"}', "line 3: unknown line kind 'blob'"),
        (
            b'{"data":{},"id":"x","kind":"record","type":"request"}',
            "line 3: record must have exactly the fields kind, type, id, version, data",
        ),
        (
            b'{"data":[],"id":"","kind":"record","type":"Request","version":true}',
            "line 3: record type must match ^[a-z][a-z0-9_]{0,63}$",
        ),
    ],
)
def test_bad_record_line_is_named_precisely(batch_with, rejected, line, reason):
    path = batch_with(line)

    reasons = rejected(path)

    assert reason in reasons


def test_deep_nesting_is_refused_before_parsing(batch_with, rejected):
    data: object = "leaf"
    for _ in range(40):
        data = {"x": data}
    path = batch_with(record_line("request", REQUEST_ID, data))

    assert "line 3: JSON nested deeper than 32 levels" in rejected(path)


def test_pathological_nesting_is_refused_cheaply(batch_with, rejected):
    path = batch_with(b"[" * 200_000 + b"]" * 200_000)

    assert "line 3: JSON nested deeper than 32 levels" in rejected(path)


def test_brackets_inside_strings_do_not_count_as_nesting(write, read, signing_key):
    record = request_record(1)
    record.data["query"] = {"match": {"name": "[[[[{{{{" * 20 + '\\"]]'}}
    path = write(records=[record]).path

    assert read(path) == [record]


def test_over_long_line_is_refused(batch_with, rejected):
    long_line = record_line("request", REQUEST_ID, {"blob": "x" * 5000})
    path = batch_with(long_line)

    reasons = rejected(path, limits=Limits(max_line_bytes=1000))

    assert "line 3: longer than 1000 bytes" in reasons


def test_over_long_header_and_trailer_are_refused(write, rejected):
    path = write().path

    reasons = rejected(path, limits=Limits(max_line_bytes=100))

    assert "line 1: longer than 100 bytes" in reasons
    assert "last line: longer than 100 bytes" in reasons


def test_file_over_the_batch_size_limit_is_refused_unread(write, rejected):
    path = write().path
    size = path.stat().st_size

    reasons = rejected(path, limits=Limits(max_batch_bytes=size - 1))

    assert reasons == [f"file is {size} bytes, over the {size - 1}-byte limit"]


def test_more_records_than_allowed_is_refused(write, rejected):
    path = write().path

    reasons = rejected(path, limits=Limits(max_records=2))

    assert "trailer: count 3 exceeds the limit of 2 records" in reasons
    assert "line 4: more than 2 records" in reasons


def test_record_schema_is_checked(batch_with, rejected):
    bad_request = record_line("request", REQUEST_ID, {"user_id": "u", "profile_type": "people"})
    wrong_type = record_line("user", "u1", {})
    path = batch_with(bad_request, wrong_type)

    reasons = rejected(path)

    assert "line 3: request data.query: Field required" in reasons
    assert "line 3: request data.submitted_at: Field required" in reasons
    assert "line 4: record type 'user' is not allowed on stream 'requests'" in reasons


def test_a_crashing_validator_still_rejects(write, rejected):
    def broken(stream, record):
        raise ZeroDivisionError

    path = write().path

    reasons = rejected(path, validate_record=broken)

    assert reasons[0] == "line 2: record validator failed: ZeroDivisionError"


def test_many_bad_lines_are_capped(batch_with, rejected):
    path = batch_with(*[b"{}"] * 300)

    reasons = rejected(path)

    assert len(reasons) == 101
    assert reasons[-1] == "... and 200 more problems"


def test_verify_file_reports_every_failure_at_once(write, verify):
    written = write(destination="elsewhere")
    data = bytearray(written.path.read_bytes())
    record_start = data.index(b"\n") + 1
    data[record_start + 20] ^= 0x01
    written.path.write_bytes(bytes(data))
    stale = NOW + timedelta(days=30)

    report = verify(written.path, now=stale)

    assert not report.ok
    assert report.count == 3
    assert report.header is not None and report.header["destination"] == "elsewhere"
    assert report.reasons[0] == "wrong destination: batch is for 'elsewhere', this is 'resp'"
    assert report.reasons[1].startswith("stale: not_after ")
    assert "line 5 (trailer): record digest mismatch" in report.reasons
    assert "sidecar: sha256 does not match the file" in report.reasons
    assert any(reason.startswith("line 2: ") for reason in report.reasons)


def test_verify_file_reports_a_good_file(write, verify):
    written = write()

    report = verify(written.path)

    assert report.ok and report.reasons == []
    assert report.count == 3
    assert report.digest == written.digest
    assert report.header == written.header


def test_open_batch_collects_all_reasons_when_the_header_is_bad(write, public_keys):
    written = write(destination="elsewhere")
    data = bytearray(written.path.read_bytes())
    data[data.index(b"\n") + 20] ^= 0x01
    written.path.write_bytes(bytes(data))

    with pytest.raises(BatchRejected) as caught:
        open_batch(written.path, expected_destination="resp", public_keys=public_keys, now=NOW)

    assert "wrong destination: batch is for 'elsewhere', this is 'resp'" in caught.value.reasons
    assert "line 5 (trailer): record digest mismatch" in caught.value.reasons

"""The run decoder (``transfer.format.fastpath``) never accepts what the strict path refuses.

First, what msgspec itself does with hostile JSON, found by experiment: each is a reason
for one of the fast path's checks (the round trip through ``orjson.dumps``, the nesting
scan). Then the run decoder on hostile lines, on lines that try to borrow bytes from their
neighbours, and on every small mutation of real lines, next to the strict path's verdict.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any, TypedDict

import msgspec
import orjson
import pytest
from test_corpus import realistic_records
from transfer_helpers import DESTINATION, NOW, forge, record_lines_of, request_records

import transfer.format.body
import transfer.format.lines
from shared.jsonutil import canonical
from shared.records import validate_record
from transfer.format import Record, open_batch, record_line, verify_file, write_batch
from transfer.format.fastpath import generic_decoder, nesting_may_exceed
from transfer.format.fastschema import run_decoder
from transfer.format.lines import parse_record_line
from transfer.format.strictjson import StrictJSONError, strict_loads

GOOD_ID = "0190a5da-c967-74bb-8cce-b302099a8057"


def request_line(**data_changes: Any) -> bytes:
    data = {
        "user_id": "u-1",
        "profile_type": "people",
        "query": {"match": {"name": "x"}, "size": 12345},
        "submitted_at": "2025-06-01T11:00:00Z",
    } | data_changes
    return record_line(Record("request", GOOD_ID, 1, data))[:-1]


GOOD = request_line()
TYPED = run_decoder("requests", validate_record, 32)[0]
GENERIC = generic_decoder(32)


def strict_verdict(line: bytes, stream: str = "requests") -> tuple[Record | None, list[str]]:
    """What the strict path makes of one record line, with ``validate_record``."""
    record, problems = parse_record_line(line, 32)
    if record is None:
        return None, problems
    problems = validate_record(stream, record)
    return (None if problems else record), problems


# -- msgspec by experiment ---------------------------------------------------------------


class _Pair(TypedDict):
    a: int


def test_msgspec_keeps_the_last_of_duplicate_keys_so_the_round_trip_is_needed():
    assert msgspec.json.decode(b'{"a":1,"a":2}') == {"a": 2}
    assert msgspec.json.decode(b'{"a":1,"a":2}', type=_Pair) == {"a": 2}
    assert msgspec.json.decode(b'{"q":{"b":1,"b":1}}') == {"q": {"b": 1}}


def test_msgspec_drops_keys_a_typed_dict_does_not_know_and_the_round_trip_sees_it():
    raw = b'{"a":1,"b":2}'
    decoded = msgspec.json.decode(raw, type=_Pair)

    assert decoded == {"a": 1} and orjson.dumps(decoded) != raw


@pytest.mark.parametrize("number", [2**64, -(2**63) - 1, 10**30])
def test_msgspec_keeps_integers_beyond_64_bits_and_orjson_refuses_to_write_them(number):
    raw = str(number).encode()

    assert msgspec.json.decode(raw) == number
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(number)


@pytest.mark.parametrize("number", [2**64 - 1, -(2**63)])
def test_the_64_bit_extremes_survive_the_round_trip(number):
    raw = str(number).encode()

    assert orjson.dumps(msgspec.json.decode(raw)) == raw


@pytest.mark.parametrize(
    "raw",
    [
        b"NaN",
        b"[Infinity]",
        b"-Infinity",
        b"1e400",
        b'"\xff"',
        b'"\xed\xa0\x80"',  # an encoded surrogate
        b'"\\ud800"',
        b'"\\udc00x"',
        b'"\\ud800\\u0041"',
        b'"\x01"',
        b'{"a":1}{"b":2}',
    ],
)
def test_msgspec_refuses_what_json_and_utf8_do_not_allow(raw):
    with pytest.raises(msgspec.DecodeError):
        msgspec.json.decode(raw)


def test_msgspec_has_no_nesting_limit_of_ours_so_the_nesting_scan_is_needed():
    deep = b'{"a":' * 100 + b"1" + b"}" * 100

    assert msgspec.json.decode(deep) is not None
    assert nesting_may_exceed(deep, 32) and not nesting_may_exceed(deep, 100)


def test_msgspec_counts_string_lengths_in_characters_as_pydantic_does():
    limited = Annotated[str, msgspec.Meta(max_length=64)]

    assert msgspec.json.decode(msgspec.json.encode("\U0001f600" * 64), type=limited)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(msgspec.json.encode("\U0001f600" * 65), type=limited)


# -- the run decoder on hostile lines ----------------------------------------------------


def _swap(old: bytes, new: bytes, line: bytes = GOOD) -> bytes:
    assert old in line
    return line.replace(old, new, 1)


HOSTILE = {
    "dup-envelope": _swap(b'"kind":"record"', b'"kind":"record","kind":"record"'),
    "dup-version": _swap(b'"version":1', b'"version":1,"version":1'),
    "dup-data": _swap(b'"data":{', b'"data":{"user_id":"u-1",'),
    "dup-in-query": _swap(b'{"name":"x"}', b'{"name":"x","name":"x"}'),
    "dup-escaped-key": _swap(b'{"name":"x"}', b'{"name":"x","\\u006eame":"x"}'),
    "nan": _swap(b"12345", b"NaN"),
    "infinity": _swap(b"12345", b"Infinity"),
    "overflow": _swap(b"12345", b"1e400"),
    "int-2^64": _swap(b"12345", b"18446744073709551616"),
    "int-below-i64": _swap(b"12345", b"-9223372036854775809"),
    "bad-utf8": _swap(b'"u-1"', b'"u-\xff"'),
    "encoded-surrogate": _swap(b'"u-1"', b'"u-\xed\xa0\x80"'),
    "lone-surrogate": _swap(b'"u-1"', b'"u-\\ud800"'),
    "too-deep": _swap(b'"size":12345', b'"size":' + b"[" * 30 + b"]" * 30),
    "extra-envelope-key": _swap(b'"version":1', b'"version":1,"x":1'),
    "missing-version": _swap(b',"version":1', b""),
    "header-kind": _swap(b'"kind":"record"', b'"kind":"header"'),
    "version-negative": _swap(b'"version":1', b'"version":-1'),
    "version-bool": _swap(b'"version":1', b'"version":true'),
    "version-float": _swap(b'"version":1', b'"version":1.0'),
    "data-array": _swap(b'"data":{', b'"data":[{').replace(b',"id"', b'],"id"', 1),
    "type-bad": _swap(b'"type":"request"', b'"type":"Request"'),
    "id-empty": _swap(GOOD_ID.encode(), b""),
    "id-long": _swap(GOOD_ID.encode(), b"x" * 257),
    "trailing-garbage": GOOD + b"x",
    "two-objects": GOOD + b"," + GOOD,
    "empty": b"",
}
SCHEMA_ONLY = {  # sound JSON and envelope: refused by the typed schema, kept by the generic
    "extra-data-key": _swap(b'"user_id"', b'"x":1,"user_id"'),
    "user-id-empty": request_line(user_id=""),
    "user-id-number": request_line(user_id=7),
    "profile-upper": request_line(profile_type="People"),
    "profile-newline": request_line(profile_type="people\n"),
    "naive-time": request_line(submitted_at="2025-06-01T11:00:00"),
    "not-a-time": request_line(submitted_at="yesterday"),
    "query-list": request_line(query=[1]),
    "id-upper": _swap(GOOD_ID.encode(), GOOD_ID.upper().encode()),
    "id-not-uuid": _swap(GOOD_ID.encode(), b"x" * 36),
    "type-user": _swap(b'"type":"request"', b'"type":"user"'),
}


@pytest.mark.parametrize("name", list(HOSTILE))
@pytest.mark.parametrize("decoder", [TYPED, GENERIC], ids=["typed", "generic"])
def test_hostile_lines_are_left_to_the_strict_path(decoder, name):
    bad = HOSTILE[name]

    assert decoder([bad]) is None
    assert decoder([GOOD, bad, GOOD]) is None
    assert strict_verdict(bad)[0] is None  # and the strict path refuses it too


@pytest.mark.parametrize("name", list(SCHEMA_ONLY))
def test_schema_problems_are_left_to_validate_record(name):
    bad = SCHEMA_ONLY[name]

    assert TYPED([GOOD, bad]) is None
    assert strict_verdict(bad)[1]  # validate_record refuses it and says why


def test_good_lines_are_taken_and_read_as_the_strict_path_reads_them():
    lines = [record_line(r)[:-1] for r in realistic_records() if r.type == "request"]
    lines += [request_line(user_id="\U0001f600" * 64, submitted_at="2025-06-01T11:00:00+02:00")]
    expected = [strict_verdict(line)[0] for line in lines]

    assert None not in expected
    for decoder in (TYPED, GENERIC):
        records = decoder(lines)
        assert records is not None and list(records) == expected


def test_a_line_cannot_borrow_bytes_from_its_neighbour():
    """Two lines, each broken alone, that join into a valid array of two records."""
    second = record_line(request_records(1)[0])[:-1]
    first_half, second_half = second.split(b'"query":{', 1)
    line_a = GOOD + b"," + first_half + b'"query":{"q":[{}'
    line_b = b"{}]," + second_half
    joined = b"[" + line_a + b"," + line_b + b"]"
    as_array = msgspec.json.decode(joined)
    assert len(as_array) == 2 and orjson.dumps(as_array) == joined  # two sound records

    for decoder in (TYPED, GENERIC):
        assert decoder([line_a, line_b]) is None
    assert strict_verdict(line_a)[0] is None and strict_verdict(line_b)[0] is None


# -- every small mutation of real lines ---------------------------------------------------


def _mutations(content: bytes):
    for offset in range(len(content)):
        for bit in range(8):
            yield content[:offset] + bytes([content[offset] ^ (1 << bit)]) + content[offset + 1 :]
        yield content[:offset] + content[offset + 1 :]
        for extra in (b'"', b"\\", b",", b"{", b"[", b":", b"}", b"1", b"\xc3", b" "):
            yield content[:offset] + extra + content[offset:]


@pytest.mark.parametrize("decoder", [TYPED, GENERIC], ids=["typed", "generic"])
def test_every_mutation_of_a_real_line_gets_the_strict_verdict(decoder):
    typed = decoder is TYPED
    checked = taken = 0
    for record in realistic_records():
        if record.type != "request":
            continue
        for mutated in _mutations(record_line(record)[:-1]):
            records = decoder([GOOD, mutated])
            checked += 1
            if records is None:
                continue
            taken += 1
            fast = list(records)[1]
            slow, problems = parse_record_line(mutated, 32)
            assert slow is not None, (mutated, problems)
            assert canonical(fast.data) == canonical(slow.data) and fast == slow, mutated
            if typed:
                assert validate_record("requests", slow) == [], mutated

    assert checked > 10_000 and taken > 100  # both answers were really given


# -- the nesting scan --------------------------------------------------------------------


NESTED = (
    [b"[" * depth + b"]" * depth for depth in range(40)]
    + [b'{"a":' * depth + b"1" + b"}" * depth for depth in range(40)]
    + [b'["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]', b"[[],[],[],[],[],[],[],[],[],[]]"]
)


@pytest.mark.parametrize("limit", [0, 1, 5, 32])
def test_the_nesting_scan_never_misses_a_line_nested_too_deep(limit):
    for line in NESTED:
        try:
            strict_loads(line, max_depth=limit)
        except StrictJSONError as error:
            if "nested deeper" in str(error):
                assert nesting_may_exceed(line, limit), line
                assert nesting_may_exceed(b"\n".join([b"[]", line, b"{}"]), limit), line


def test_shallow_lines_do_not_add_up_across_a_run():
    shallow = [b'{"a":{"b":[1]}}'] * 100

    assert not nesting_may_exceed(b"\n".join(shallow), 3)
    assert nesting_may_exceed(b"\n".join(shallow), 2)


# -- the reader uses it ------------------------------------------------------------------


def write_requests(directory: Any, key: Any, records: list[Record]) -> Any:
    return write_batch(
        directory,
        stream="requests",
        source="req",
        destination=DESTINATION,
        seq=1,
        prev_digest=None,
        signing_key=key,
        records=records,
        now=NOW,
    )


def test_a_clean_batch_is_read_by_the_fast_path_alone(
    tmp_path, signing_key, public_keys, monkeypatch
):
    records = request_records(300)
    written = write_requests(tmp_path, signing_key, records)

    def refuse(*_args: Any) -> None:
        raise AssertionError("a clean line took the strict path")

    monkeypatch.setattr(transfer.format.body, "compact_record_line", refuse)
    monkeypatch.setattr(transfer.format.body, "parse_record_line", refuse)
    reader = open_batch(
        written.path,
        expected_destination=DESTINATION,
        public_keys=public_keys,
        now=NOW,
        validate_record=validate_record,
    )

    assert list(reader.records()) == records


def test_an_abandoned_reader_leaves_no_hashing_thread(
    tmp_path, signing_key, public_keys, monkeypatch
):
    monkeypatch.setattr(transfer.format.lines, "_CHUNK", 4096)
    written = write_requests(tmp_path, signing_key, request_records(500))
    reader = open_batch(
        written.path, expected_destination=DESTINATION, public_keys=public_keys, now=NOW
    )
    records = reader.records()
    first = [next(records) for _ in range(3)]
    assert any(t.name == "ferry-hash" for t in threading.enumerate())

    records.close()

    assert first == request_records(3)
    assert not any(t.name == "ferry-hash" for t in threading.enumerate())


def test_runs_fall_back_around_a_bad_line_and_name_it(tmp_path, signing_key, public_keys):
    records = request_records(200)
    written = write_requests(tmp_path, signing_key, records)
    lines = record_lines_of(written.path)
    lines[150] = lines[150].replace(b'"size":10', b'"size":10,"size":10')
    forge(written.path, signing_key, lines=lines)

    report = verify_file(
        written.path,
        expected_destination=DESTINATION,
        public_keys=public_keys,
        now=NOW,
        validate_record=validate_record,
    )

    assert report.reasons == ["line 152: duplicate key 'size'"]
    assert report.count == 200


@pytest.mark.parametrize("length", [10, 70_000, 2_000_000])
def test_the_trailer_is_found_behind_a_last_line_of_any_allowed_length(
    tmp_path, signing_key, public_keys, length
):
    written = write_requests(tmp_path, signing_key, [request_records(1)[0]])
    lines = record_lines_of(written.path)
    long_line = record_line(Record("request", GOOD_ID, 1, {"pad": "x" * length}))[:-1]
    forge(written.path, signing_key, lines=[*lines, long_line])
    without_trailer = written.path.read_bytes().rsplit(b"\n", 2)[0] + b"\n"

    report = verify_file(
        written.path, expected_destination=DESTINATION, public_keys=public_keys, now=NOW
    )
    written.path.write_bytes(without_trailer)
    truncated = verify_file(
        written.path, expected_destination=DESTINATION, public_keys=public_keys, now=NOW
    )

    assert report.ok and report.count == 2
    assert truncated.reasons[0] == "last line: not a trailer (missing trailer or truncated)"

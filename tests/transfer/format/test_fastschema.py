"""The fast schema (``transfer.format.fastschema``) and ``shared.records.validate_record`` agree.

For every record type, valid and invalid samples go through a whole batch read with
``validate_record``: the verdict and the reasons must be ``validate_record``'s own. The
typed run decoder must take the typical valid records (else the fast path is idle) and
never a record ``validate_record`` refuses; generated records probe the edges.
"""

from __future__ import annotations

import hashlib
import inspect
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, TypeAdapter, ValidationError
from transfer_helpers import DESTINATION, NOW, forge

from shared.jsonutil import canonical
from shared.records import RequestData, ResultData, Timestamp, _timestamp_input, validate_record
from transfer.format import Record, record_line, verify_file, write_batch
from transfer.format.fastschema import RequestFields, ResultFields, canonical_uuids, run_decoder
from transfer.format.keys import SigningKey

MODELS_FINGERPRINT = "d77c8f08519956d3bc0696bc1d1a2a44242b7dfd73dca49096bb23f7bbdbd3f1"
RID = "0190a5da-c967-74bb-8cce-b302099a8057"
BCRYPT = "$2b$12$" + "a" * 53
REQUEST = {
    "user_id": "u-1",
    "profile_type": "people",
    "query": {"query": {"match": {"name": "Zoë"}}, "size": 10},
    "submitted_at": "2025-06-01T11:00:00Z",
}
RESULT = {
    "status": "DONE",
    "total": 2,
    "hits": [{"_id": "a", "_score": 1.5, "_source": {"n": 1}}, {"_id": "b", "_score": 1e16}],
    "error": None,
    "executed_at": "2025-06-01T11:00:01.250Z",
    "took_ms": 12,
}
USER = {
    "username": "ann",
    "password_hash": BCRYPT,
    "role": "user",
    "profile_type": "people",
    "active": True,
}
PROFILE = {
    "name": "people",
    "index": "people-*",
    "fields": {"name": "text", "age": "integer"},
    "return_fields": ["name"],
    "max_size": 100,
    "rate_limits": {"minute": 1, "hour": 2, "day": 3},
}
ACK = {"stream": "results", "through_seq": 41, "missing": [39], "rejected": []}
CID = "0af7651916cd43dd8448eb211c80319c"  # a correlation id as the API's edge makes them
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"  # W3C's example traceparent


def req(record_id: str = RID, /, **changes: Any) -> Record:
    return Record("request", record_id, 1, REQUEST | changes)


def res(record_id: str = RID, /, **changes: Any) -> Record:
    return Record("result", record_id, 1, RESULT | changes)


def dropped(record: Record, key: str) -> Record:
    data = {name: value for name, value in record.data.items() if name != key}
    return Record(record.type, record.id, record.version, data)


FAILED = {"status": "FAILED", "total": None, "hits": [], "error": "boom", "took_ms": None}
# name: (stream, record, whether the typed fast path is expected to take it)
SAMPLES: dict[str, tuple[str, Record, bool]] = {
    "request": ("requests", req(), True),
    "request-offset": ("requests", req(submitted_at="2025-06-01T11:00:00+02:00"), True),
    "request-astral-64": ("requests", req(user_id="😀" * 64), True),
    "request-unix-time": ("requests", req(submitted_at="1700000000"), True),
    "request-cancelled": ("requests", req(cancelled=True), True),
    "request-not-cancelled": ("requests", req(cancelled=False), True),
    "request-cancelled-int": ("requests", req(cancelled=1), False),
    "request-correlated": ("requests", req(correlation_id=CID, traceparent=TP), True),
    "request-correlation-128": ("requests", req(correlation_id="A.b_c:d-" + "x" * 120), True),
    "request-correlation-129": ("requests", req(correlation_id="x" * 129), False),
    "request-correlation-empty": ("requests", req(correlation_id=""), False),
    "request-correlation-space": ("requests", req(correlation_id="a b"), False),
    "request-correlation-newline": ("requests", req(correlation_id=CID + "\n"), False),
    "request-correlation-accent": ("requests", req(correlation_id="é"), False),
    "request-correlation-int": ("requests", req(correlation_id=5), False),
    "request-correlation-null": ("requests", req(correlation_id=None), False),
    "request-traceparent": ("requests", req(traceparent=TP), True),
    "request-traceparent-upper": ("requests", req(traceparent=TP.upper()), False),
    "request-traceparent-version": ("requests", req(traceparent="01" + TP[2:]), False),
    "request-traceparent-short": ("requests", req(traceparent=TP[:-1]), False),
    "request-traceparent-newline": ("requests", req(traceparent=TP + "\n"), False),
    "request-traceparent-longer": ("requests", req(traceparent=TP + "-x"), False),
    "request-traceparent-null": ("requests", req(traceparent=None), False),
    "request-user-65": ("requests", req(user_id="😀" * 65), False),
    "request-user-empty": ("requests", req(user_id=""), False),
    "request-user-int": ("requests", req(user_id=5), False),
    "request-profile-bad": ("requests", req(profile_type="A b"), False),
    "request-profile-65": ("requests", req(profile_type="a" * 65), False),
    "request-query-list": ("requests", req(query=[]), False),
    "request-naive": ("requests", req(submitted_at="2025-06-01T11:00:00"), False),
    "request-feb-30": ("requests", req(submitted_at="2025-02-30T11:00:00Z"), False),
    "request-time-int": ("requests", req(submitted_at=1700000000), False),
    "request-extra": ("requests", req(x=1), False),
    "request-missing": ("requests", dropped(req(), "query"), False),
    "request-id-upper": ("requests", req(RID.upper()), False),
    "request-id-braces": ("requests", req("{" + RID[1:-1] + "}"), False),
    "request-id-short": ("requests", req("abc"), False),
    "request-on-results": ("results", req(), False),
    "result": ("results", res(), True),
    "result-failed": ("results", res(**FAILED), True),
    "result-part-0": ("results", res(part=0, parts=3), True),
    "result-correlated": ("results", res(correlation_id=CID, traceparent=TP), True),
    "result-correlation-bad": ("results", res(correlation_id="a/b"), False),
    "result-traceparent-bad": ("results", res(traceparent=TP.replace("-01", "-1")), False),
    "result-part-1": ("results", res(part=1, parts=3), False),
    "result-part-3-of-3": ("results", res(part=3, parts=3), False),
    "result-parts-0": ("results", res(parts=0), False),
    "result-part-bool": ("results", res(part=False), False),
    "result-status": ("results", res(status="done"), False),
    "result-total-negative": ("results", res(total=-1), False),
    "result-total-bool": ("results", res(total=True), False),
    "result-took-float": ("results", res(took_ms=1.5), False),
    "result-hits-scalars": ("results", res(hits=[1]), False),
    "result-error-int": ("results", res(error=1), False),
    "result-no-took": ("results", dropped(res(), "took_ms"), False),
    "result-time": ("results", res(executed_at="soon"), False),
    "result-id": ("results", res("r-1"), False),
    "user": ("users", Record("user", "ann", 1, USER), False),
    "user-limits": ("users", Record("user", "ann", 1, USER | {"rate_limits": {"day": 5}}), False),
    "user-password": ("users", Record("user", "ann", 1, USER | {"password_hash": "pw"}), False),
    "user-role": ("users", Record("user", "ann", 1, USER | {"role": "root"}), False),
    "profile_type": ("profile_types", Record("profile_type", "people", 1, PROFILE), False),
    "profile_type-id": ("profile_types", Record("profile_type", "other", 1, PROFILE), False),
    "profile_type-return": (
        "profile_types",
        Record("profile_type", "people", 1, PROFILE | {"return_fields": ["x"]}),
        False,
    ),
    "setting": ("settings", Record("setting", "a.b", 1, {"key": "a.b", "value": [1, None]}), False),
    "setting-id": ("settings", Record("setting", "a.c", 1, {"key": "a.b", "value": 1}), False),
    "ack": ("requests", Record("ack", "results", 41, ACK), False),
    "ack-on-acks": ("acks", Record("ack", "results", 41, ACK), False),
    "ack-repeated": ("results", Record("ack", "results", 41, ACK | {"missing": [2, 2]}), False),
    "ack-stream": ("requests", Record("ack", "results", 41, ACK | {"stream": "x"}), False),
}


def read_one(directory: Path, key: SigningKey, keys: dict[str, Any], stream: str, line: bytes):
    written = write_batch(
        directory,
        stream=stream,
        source="req",
        destination=DESTINATION,
        seq=1,
        prev_digest=None,
        signing_key=key,
        records=[Record("request", RID, 1, REQUEST)],
        now=NOW,
    )
    forge(written.path, key, lines=[line])
    return verify_file(
        written.path,
        expected_destination=DESTINATION,
        public_keys=keys,
        now=NOW,
        validate_record=validate_record,
    )


@pytest.mark.parametrize("name", list(SAMPLES))
def test_a_batch_gets_validate_records_verdict(tmp_path, signing_key, public_keys, name):
    stream, record, _ = SAMPLES[name]
    expected = validate_record(stream, record)

    report = read_one(tmp_path, signing_key, public_keys, stream, record_line(record)[:-1])

    assert report.reasons == [f"line 2: {problem}" for problem in expected]
    assert report.ok is (not expected) and report.count == 1


@pytest.mark.parametrize("name", list(SAMPLES))
def test_the_typed_fast_path_takes_only_what_validate_record_takes(name):
    stream, record, taken = SAMPLES[name]
    decoder, checked = run_decoder(stream, validate_record, 32)
    line = record_line(record)[:-1]

    records = decoder([line])

    if checked and records is not None:
        assert validate_record(stream, record) == [] and list(records) == [record]
    assert taken == (checked and records is not None)


def test_every_sample_type_is_covered():
    types = {record.type for _, record, _ in SAMPLES.values()}
    valid = {record.type for s, record, _ in SAMPLES.values() if not validate_record(s, record)}
    invalid = {record.type for s, record, _ in SAMPLES.values() if validate_record(s, record)}

    assert (
        types == valid == invalid == {"request", "result", "user", "profile_type", "setting", "ack"}
    )


def models_fingerprint() -> str:
    """The source and JSON schema of what ``transfer.format.fastschema`` restates."""
    parts = [inspect.getsource(item) for item in (RequestData, ResultData, _timestamp_input)]
    parts += [canonical(model.model_json_schema()).decode() for model in (RequestData, ResultData)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def test_the_models_the_fast_schema_restates_are_unchanged():
    """A tripwire: ``shared.records`` changed. Make ``transfer.format.fastschema`` say the same
    (and these samples test it), then put the new fingerprint here."""
    assert models_fingerprint() == MODELS_FINGERPRINT


def test_the_typed_schemas_name_the_models_fields():
    def required(model: Any) -> set[str]:
        return {name for name, field in model.model_fields.items() if field.is_required()}

    for fields, model in ((RequestFields, RequestData), (ResultFields, ResultData)):
        assert set(typing.get_type_hints(fields)) == set(model.model_fields)
        assert fields.__required_keys__ == required(model)


# -- generated records ---------------------------------------------------------------------

TEXT = st.one_of(
    st.sampled_from(
        ["", "a", "people", "A", "a b", "a\n", "é", "😀", "-", "_x", "a" * 64, "a" * 65]
    ),
    st.text(max_size=70),
)
TIMES = st.one_of(
    st.sampled_from(
        [
            "2025-06-01T11:00:00Z",
            "2025-06-01t11:00:00z",
            "2025-06-01 11:00:00Z",
            "2025-06-01T11:00Z",
            "2025-06-01T11:00:00.1234567Z",
            "2025-06-01T11:00:00,5Z",
            "2025-06-01T11:00:00+24:00",
            "2025-06-01T11:00:00-00:00",
            "2025-06-01T24:00:00Z",
            "2025-06-01T23:59:60Z",
            "0000-01-01T00:00:00Z",
            "2024-02-29T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "1700000000",
            "1700000000.5",
            "2025-06-01",
            "",
        ]
    ),
    st.datetimes(timezones=st.one_of(st.none(), st.timezones())).map(lambda t: t.isoformat()),
    st.text(alphabet="0123456789-:TZ+. tz", max_size=30),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
NUMBERS = st.one_of(st.none(), st.booleans(), st.integers(-2, 2**64 - 1), st.floats(-1, 3), TEXT)
CORRELATION_IDS = st.one_of(
    st.sampled_from([CID, "x" * 128, "x" * 129, "a\n", "a b", "", None, 7]),
    st.text(alphabet="AZaz09._:-/ \n", max_size=130),
)
TRACEPARENTS = st.one_of(
    st.sampled_from([TP, TP.upper(), TP + "\n", "01" + TP[2:], TP[:-1], None, 1]),
    st.text(alphabet="0f-a\n", min_size=54, max_size=56),
    st.builds(
        "00-{}-{}-{}".format,
        st.text(alphabet="0123456789abcdefA", min_size=31, max_size=33),
        st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
        st.text(alphabet="0123456789abcdef", min_size=2, max_size=2),
    ),
)


def _maybe(draw: st.DrawFn, data: dict[str, Any], name: str, values: st.SearchStrategy) -> None:
    choice = draw(st.sampled_from(["keep", "keep", "change", "drop"]))
    if choice == "change":
        data[name] = draw(values)
    elif choice == "drop":
        data.pop(name, None)


@st.composite
def request_data(draw: st.DrawFn) -> dict[str, Any]:
    data = dict(REQUEST)
    _maybe(draw, data, "user_id", TEXT)
    _maybe(draw, data, "profile_type", TEXT)
    _maybe(draw, data, "query", JSON)
    _maybe(draw, data, "submitted_at", TIMES)
    _maybe(draw, data, "correlation_id", CORRELATION_IDS)
    _maybe(draw, data, "traceparent", TRACEPARENTS)
    if draw(st.booleans()):
        data[draw(TEXT)] = draw(JSON)
    return data


@st.composite
def result_data(draw: st.DrawFn) -> dict[str, Any]:
    data = dict(RESULT)
    _maybe(draw, data, "status", st.sampled_from(["DONE", "FAILED", "done", None, 1]))
    _maybe(draw, data, "total", NUMBERS)
    _maybe(draw, data, "hits", st.lists(JSON, max_size=3))
    _maybe(draw, data, "error", st.one_of(st.none(), TEXT, st.integers(-5, 5)))
    _maybe(draw, data, "executed_at", TIMES)
    _maybe(draw, data, "took_ms", NUMBERS)
    _maybe(draw, data, "part", NUMBERS)
    _maybe(draw, data, "parts", NUMBERS)
    _maybe(draw, data, "correlation_id", CORRELATION_IDS)
    _maybe(draw, data, "traceparent", TRACEPARENTS)
    return data


IDS = st.one_of(
    st.just(RID), st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()), TEXT.filter(bool)
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["request", "result"]), record_id=IDS, data=st.data())
def test_generated_records_get_validate_records_verdict(kind, record_id, data):
    stream, fields = (
        ("requests", request_data()) if kind == "request" else ("results", result_data())
    )
    record = Record(kind, record_id, 1, data.draw(fields))
    decoder, checked = run_decoder(stream, validate_record, 32)
    good = record_line(Record(kind, RID, 1, REQUEST if kind == "request" else RESULT))[:-1]

    records = decoder([good, record_line(record)[:-1], good])

    assert checked
    if records is not None:
        assert validate_record(stream, record) == [], record
        assert list(records)[1] == record


# -- the run checks against what they stand for ---------------------------------------------

UUID_LIKE = st.text(alphabet="0123456789abcdefABCDEF-{}xé", min_size=36, max_size=36)


@settings(max_examples=300, deadline=None)
@given(ids=st.lists(st.one_of(st.uuids().map(str), UUID_LIKE), min_size=1, max_size=5))
def test_canonical_uuids_is_the_models_regex_on_each_id(ids):
    from shared.records import _CANONICAL_UUID_RE

    assert canonical_uuids(ids) == all(_CANONICAL_UUID_RE.fullmatch(i) for i in ids)


@settings(max_examples=300, deadline=None)
@given(text=TIMES)
def test_aware_datetime_on_a_string_is_the_models_timestamp(text):
    def verdict(adapter: TypeAdapter) -> bool:
        try:
            adapter.validate_python(text)
        except ValidationError:
            return False
        return True

    assert verdict(TypeAdapter(AwareDatetime)) == verdict(TypeAdapter(Timestamp))

"""Record schemas that cross the gap, and the per-stream record check."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.records import (
    STREAMS,
    AckData,
    ProfileTypeData,
    RateLimits,
    RequestData,
    ResultData,
    SettingData,
    UserData,
    validate_record,
)

REQUEST_ID = "0190a5da-c967-74bb-8cce-b302099a8057"
BCRYPT = "$2b$12$" + "a" * 53


@dataclass(frozen=True)
class Rec:
    type: str
    id: str
    version: int = 1
    data: dict[str, Any] = field(default_factory=dict)


def request_data(**changes: Any) -> dict[str, Any]:
    return {
        "user_id": "u1",
        "profile_type": "people",
        "query": {"match": {"name": "smith"}},
        "submitted_at": "2025-06-01T11:00:00Z",
    } | changes


def result_data(**changes: Any) -> dict[str, Any]:
    return {
        "status": "DONE",
        "total": 2,
        "hits": [{"name": "a"}, {"name": "b"}],
        "error": None,
        "executed_at": "2025-06-01T11:30:00+00:00",
        "took_ms": 5,
    } | changes


def user_data(**changes: Any) -> dict[str, Any]:
    return {
        "username": "alice.smith@example",
        "password_hash": BCRYPT,
        "role": "user",
        "profile_type": "people",
        "active": True,
        "rate_limits": {"minute": 5, "hour": None, "day": 100},
    } | changes


def profile_type_data(**changes: Any) -> dict[str, Any]:
    return {
        "name": "people",
        "index": "people-v1",
        "fields": {"name": "text", "age": "integer", "born": "date", "@id": "keyword"},
        "return_fields": ["name", "age"],
        "max_size": 100,
        "rate_limits": {"minute": 10, "hour": 100, "day": 1000},
    } | changes


def ack_data(**changes: Any) -> dict[str, Any]:
    return {"stream": "requests", "through_seq": 4, "missing": [6, 7], "rejected": []} | changes


GOOD = [
    ("requests", Rec("request", REQUEST_ID, data=request_data())),
    ("results", Rec("result", REQUEST_ID, data=result_data())),
    ("results", Rec("result", REQUEST_ID, data=result_data(part=1, parts=3, total=None))),
    ("users", Rec("user", "42", data=user_data())),
    ("users", Rec("user", "42", data=user_data(rate_limits=None, role="admin"))),
    ("profile_types", Rec("profile_type", "people", data=profile_type_data())),
    ("settings", Rec("setting", "grace.minutes", data={"key": "grace.minutes", "value": 5})),
    ("settings", Rec("setting", "banner", data={"key": "banner", "value": {"text": "hi"}})),
]


@pytest.mark.parametrize(("stream", "record"), GOOD)
def test_good_records_pass(stream, record):
    assert validate_record(stream, record) == []


@pytest.mark.parametrize("stream", STREAMS)
def test_ack_is_allowed_on_every_stream(stream):
    assert validate_record(stream, Rec("ack", "requests", 4, ack_data())) == []


@pytest.mark.parametrize(
    ("stream", "record", "problem"),
    [
        (
            "requests",
            Rec("result", REQUEST_ID, data=result_data()),
            "record type 'result' is not allowed on stream 'requests'",
        ),
        ("acks", Rec("user", "1", data=user_data()), "not allowed on stream 'acks'"),
        ("nope", Rec("user", "1", data=user_data()), "unknown stream 'nope'"),
        ("requests", Rec("request", "not-a-uuid", data=request_data()), "request UUID"),
        ("requests", Rec("request", REQUEST_ID.upper(), data=request_data()), "request UUID"),
        ("requests", Rec("request", REQUEST_ID, data=request_data(extra=1)), "data.extra"),
        ("requests", Rec("request", REQUEST_ID, data=request_data(query=[])), "data.query"),
        (
            "requests",
            Rec("request", REQUEST_ID, data=request_data(submitted_at="2025-06-01T11:00:00")),
            "data.submitted_at",
        ),
        (
            "requests",
            Rec("request", REQUEST_ID, data=request_data(submitted_at=1700000000)),
            "data.submitted_at",
        ),
        ("results", Rec("result", REQUEST_ID, data=result_data(status="OK")), "data.status"),
        ("results", Rec("result", REQUEST_ID, data=result_data(total=-1)), "data.total"),
        ("results", Rec("result", REQUEST_ID, data=result_data(total="2")), "data.total"),
        ("results", Rec("result", REQUEST_ID, data=result_data(part=2, parts=2)), "part 2"),
        ("results", Rec("result", REQUEST_ID, data=result_data(hits=[1])), "data.hits.0"),
        ("users", Rec("user", "1", data=user_data(password_hash="hunter2")), "plaintext"),
        (
            "users",
            Rec("user", "1", data=user_data(password_hash="$2b$12$tooshort")),
            "data.password_hash",
        ),
        ("users", Rec("user", "1", data=user_data(username="bob smith")), "data.username"),
        ("users", Rec("user", "1", data=user_data(username="b" * 65)), "data.username"),
        ("users", Rec("user", "1", data=user_data(role="root")), "data.role"),
        ("users", Rec("user", "1", data=user_data(active="yes")), "data.active"),
        ("users", Rec("user", "1", data=user_data(active=1)), "data.active"),
        (
            "users",
            Rec("user", "1", data=user_data(rate_limits={"minute": True})),
            "data.rate_limits.minute",
        ),
        (
            "profile_types",
            Rec("profile_type", "people", data=profile_type_data(return_fields=["secret"])),
            "return_fields not in fields: secret",
        ),
        (
            "profile_types",
            Rec("profile_type", "other", data=profile_type_data()),
            "profile_type id must equal data.name",
        ),
        (
            "profile_types",
            Rec("profile_type", "People", data=profile_type_data(name="People")),
            "data.name",
        ),
        (
            "profile_types",
            Rec("profile_type", "people", data=profile_type_data(max_size=10_001)),
            "data.max_size",
        ),
        (
            "profile_types",
            Rec("profile_type", "people", data=profile_type_data(fields={"a": "geo_point"})),
            "data.fields.a",
        ),
        (
            "profile_types",
            Rec("profile_type", "people", data=profile_type_data(rate_limits={"minute": 1})),
            "data.rate_limits.hour",
        ),
        (
            "settings",
            Rec("setting", "a", data={"key": "b", "value": 1}),
            "setting id must equal data.key",
        ),
        ("acks", Rec("ack", "x", data=ack_data(stream="other")), "data.stream"),
        ("acks", Rec("ack", "x", data=ack_data(through_seq=-1)), "data.through_seq"),
        ("acks", Rec("ack", "x", data=ack_data(missing=[3, 3])), "must be unique"),
        ("acks", Rec("ack", "x", data=ack_data(missing=[0])), "data.missing.0"),
    ],
)
def test_bad_records_are_refused(stream, record, problem):
    problems = validate_record(stream, record)

    assert problems
    assert any(problem in found for found in problems), problems


def test_problems_never_echo_a_plaintext_password():
    problems = validate_record("users", Rec("user", "1", data=user_data(password_hash="s3cret!")))

    assert problems == [
        "user data.password_hash: Value error, "
        "must be a bcrypt hash ($2b$...), never a plaintext password"
    ]
    assert not any("s3cret" in problem for problem in problems)
    assert "s3cret" not in repr(UserData.model_construct(password_hash="s3cret!"))


def test_many_problems_are_capped():
    problems = validate_record(
        "results", Rec("result", REQUEST_ID, data={f"x{i}": i for i in range(30)})
    )

    assert len(problems) == 11
    assert problems[-1].endswith("more problems")


def test_models_build_wire_data_that_validates():
    request = RequestData(
        user_id="u1",
        profile_type="people",
        query={"all": []},
        submitted_at=datetime(2025, 6, 1, 11, tzinfo=UTC),
    ).model_dump(mode="json")
    result = ResultData(
        status="FAILED",
        total=None,
        hits=[],
        error="timeout",
        executed_at=datetime(2025, 6, 1, 11, tzinfo=UTC),
        took_ms=None,
    ).model_dump(mode="json")
    ack = AckData(stream="results", through_seq=0, missing=[], rejected=["x.jsonl"]).model_dump()

    assert validate_record("requests", Rec("request", REQUEST_ID, data=request)) == []
    assert validate_record("results", Rec("result", REQUEST_ID, data=result)) == []
    assert validate_record("results", Rec("ack", "results", data=ack)) == []
    assert result["part"] == 0 and result["parts"] == 1


def test_naive_datetimes_from_python_are_taken_as_utc():
    data = RequestData(
        user_id="u1",
        profile_type="people",
        query={},
        submitted_at=datetime(2025, 6, 1, 11),  # naive, as SQLite returns them
    )

    assert data.submitted_at == datetime(2025, 6, 1, 11, tzinfo=UTC)


def test_models_refuse_extra_fields_and_are_exported():
    with pytest.raises(ValidationError):
        SettingData(key="a", value=1, other=2)
    with pytest.raises(ValidationError):
        RateLimits(minute=1, hour=1)
    assert ProfileTypeData.model_validate(profile_type_data()).rate_limits.day == 1000

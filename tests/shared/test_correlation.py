"""A request's correlation id and trace context as records carry them, and how they are
chosen and logged (`shared.correlation`, `shared.records`)."""

from __future__ import annotations

import logging
import re

import pytest
from structlog.contextvars import bound_contextvars

from shared import correlation
from shared.records import validate_record
from transfer.format import Record

RID = "0190a5da-c967-74bb-8cce-b302099a8057"
CID = "0af7651916cd43dd8448eb211c80319c"
TP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
REQUEST = {
    "user_id": "u-1",
    "profile_type": "people",
    "query": {"query": {"all": []}},
    "submitted_at": "2025-06-01T11:00:00Z",
}
RESULT = {
    "status": "DONE",
    "total": 0,
    "hits": [],
    "error": None,
    "executed_at": "2025-06-01T11:00:01Z",
    "took_ms": 3,
}


def request_problems(**data) -> list[str]:
    return validate_record("requests", Record("request", RID, 1, REQUEST | data))


def result_problems(**data) -> list[str]:
    return validate_record("results", Record("result", RID, 1, RESULT | data))


def test_records_from_before_the_fields_are_still_valid():
    assert request_problems() == []
    assert result_problems() == []


@pytest.mark.parametrize("problems", [request_problems, result_problems])
def test_a_correlation_id_is_1_to_128_letters_digits_and_dot_underscore_colon_hyphen(problems):
    for good in (CID, "a", "A.b_c:d-9", "x" * 128):
        assert problems(correlation_id=good) == [], good
    for bad in ("", "x" * 129, "a b", "a/b", "é", "a\n", "\n", 5, True, ["a"]):
        found = problems(correlation_id=bad)
        assert found and all("data.correlation_id" in p for p in found), (bad, found)


@pytest.mark.parametrize("problems", [request_problems, result_problems])
def test_a_traceparent_is_a_w3c_version_00_trace_context(problems):
    assert problems(traceparent=TP) == []
    for bad in (
        TP.upper(),
        "01" + TP[2:],  # another version: its form is not known here
        TP[:-1],
        TP + "-00",
        TP + "\n",
        TP.replace("-", "_"),
        "00-" + "g" * 32 + TP[35:],
        "",
        1,
    ):
        found = problems(traceparent=bad)
        assert found and all("data.traceparent" in p for p in found), (bad, found)


def test_both_fields_together_with_a_cancellation():
    assert request_problems(correlation_id=CID, traceparent=TP, cancelled=True) == []


def test_the_id_of_the_http_call_is_the_correlation_id_of_what_it_submits():
    with bound_contextvars(request_id="client-chosen:id_1.2"):
        assert correlation.for_submission() == "client-chosen:id_1.2"


def test_outside_a_call_or_with_an_unusable_id_a_fresh_one_is_made():
    made = {correlation.for_submission() for _ in range(3)}
    assert len(made) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", m) for m in made)
    for unusable in ("x" * 129, "a b", 7):
        with bound_contextvars(request_id=unusable):
            fresh = correlation.for_submission()
        assert re.fullmatch(r"[0-9a-f]{32}", fresh), unusable
        assert request_problems(correlation_id=fresh) == []


def test_requests_are_logged_in_lines_of_a_bounded_number_each(caplog):
    caplog.set_level(logging.INFO, logger=correlation.log.name)
    pairs = [(f"r{i}", f"c{i}") for i in range(250)]
    pairs[7] = ("r7", None)  # a request from before correlation ids

    correlation.log_requests("exported in b.jsonl", pairs, batch_id="b")

    lines = [r for r in caplog.records if r.name == correlation.log.name]
    assert [r.getMessage() for r in lines] == [
        "exported in b.jsonl: requests 1-100 of 250",
        "exported in b.jsonl: requests 101-200 of 250",
        "exported in b.jsonl: requests 201-250 of 250",
    ]
    assert [r.count for r in lines] == [100, 100, 50] and {r.of for r in lines} == {250}
    named = [cid for r in lines for cid in r.correlation_ids]
    assert named == [cid for _, cid in pairs if cid is not None]
    assert lines[0].ferry_request_ids == ["r7"]  # named by its own id instead
    assert not hasattr(lines[1], "ferry_request_ids")
    assert {r.batch_id for r in lines} == {"b"}


def test_a_few_requests_make_one_line_and_none_make_none(caplog):
    caplog.set_level(logging.INFO, logger=correlation.log.name)
    correlation.log_requests("requests imported", [])
    correlation.log_requests("requests imported", [("r1", "c1")])
    correlation.log_requests("requests imported", [("r1", "c1"), ("r2", "c2")])
    lines = [r for r in caplog.records if r.name == correlation.log.name]
    assert [r.getMessage() for r in lines] == [
        "requests imported: 1 request",
        "requests imported: 2 requests",
    ]
    assert lines[1].correlation_ids == ["c1", "c2"]


def test_nothing_is_built_when_the_level_is_off(caplog):
    caplog.set_level(logging.WARNING, logger=correlation.log.name)
    correlation.log_requests("requests imported", [("r1", "c1")])
    assert not [r for r in caplog.records if r.name == correlation.log.name]


def test_a_step_bound_to_a_request_names_it_on_every_line():
    from structlog.contextvars import get_contextvars

    with correlation.bound_to_request(RID, CID):
        assert get_contextvars().items() >= {"ferry_request_id": RID, "correlation_id": CID}.items()
    assert "correlation_id" not in get_contextvars()

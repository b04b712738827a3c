"""Batch file names and UUIDv7 batch ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from transfer.format import STREAMS, batch_filename, parse_batch_filename, uuid7
from transfer.format.names import is_network_id, is_uuid7

BATCH_ID = "01890a5d-ac96-774b-bcce-b302099a8057"


@pytest.mark.parametrize("stream", STREAMS)
def test_file_name_round_trips(stream):
    name = batch_filename(stream, "resp", 42, BATCH_ID)

    assert name == f"{stream}-resp-00000042-{BATCH_ID}.jsonl"
    assert parse_batch_filename(name) == (stream, "resp", 42, BATCH_ID)
    assert parse_batch_filename(name).seq == 42


def test_large_sequence_numbers_are_not_truncated():
    name = batch_filename("acks", "req", 1_234_567_890, BATCH_ID)

    assert parse_batch_filename(name).seq == 1_234_567_890


@pytest.mark.parametrize(
    "name",
    [
        "",
        "requests.jsonl",
        f"../requests-req-00000001-{BATCH_ID}.jsonl",
        f"requests-req-00000001-{BATCH_ID}.jsonl/",
        f"requests-req/x-00000001-{BATCH_ID}.jsonl",
        f"requests-req-00000001-{BATCH_ID}.jsonl.sha256",
        f"requests-req-00000001-{BATCH_ID}.jsonl\n",
        f" requests-req-00000001-{BATCH_ID}.jsonl",
        f"requests-req-000000001-{BATCH_ID}.jsonl",
        f"requests-req-00000000-{BATCH_ID}.jsonl",
        f"requests-req-0000001-{BATCH_ID}.jsonl",
        f"requests-req-0000000\u0661-{BATCH_ID}.jsonl",
        f"requests-1req-00000001-{BATCH_ID}.jsonl",
        f"requests-{'a' * 33}-00000001-{BATCH_ID}.jsonl",
        f"requests-req-00000001-{BATCH_ID.upper()}.jsonl",
        "requests-req-00000001-..jsonl",
        f"request-req-00000001-{BATCH_ID}.jsonl",
        "x" * 300,
    ],
)
def test_unsafe_or_malformed_names_are_refused(name):
    with pytest.raises(ValueError):
        parse_batch_filename(name)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("nope", "req", 1, BATCH_ID), "unknown stream"),
        (("requests", "../x", 1, BATCH_ID), "source"),
        (("requests", "req", 0, BATCH_ID), "seq"),
        (("requests", "req", True, BATCH_ID), "seq"),
        (("requests", "req", 1, "../../etc/passwd"), "batch_id"),
    ],
)
def test_batch_filename_validates_its_parts(arguments, message):
    with pytest.raises(ValueError, match=message):
        batch_filename(*arguments)


def test_network_ids():
    assert is_network_id("req") and is_network_id("a" + "0" * 31)
    assert not any(
        is_network_id(value) for value in ("", "1req", "Req", "re-q", "a" * 33, None, "réq")
    )


def test_uuid7_has_version_variant_and_time_order():
    moment = datetime(2025, 6, 1, tzinfo=UTC)
    first = uuid7(moment)
    later = uuid7(moment + timedelta(milliseconds=2))

    parsed = uuid.UUID(first)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert is_uuid7(first)
    assert int(first.replace("-", "")[:12], 16) == int(moment.timestamp() * 1000)
    assert first < later
    assert uuid7() != uuid7()


def test_is_uuid7_refuses_other_uuids():
    assert not is_uuid7(str(uuid.uuid4()))
    assert not is_uuid7(BATCH_ID.upper())
    assert not is_uuid7(7)

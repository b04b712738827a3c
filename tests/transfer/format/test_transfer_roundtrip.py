"""Writing a batch and reading it back."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest
from transfer_helpers import DESTINATION, NOW, SOURCE, request_record, request_records

from shared.records import validate_record
from transfer.format import (
    FORMAT_VERSION,
    Limits,
    Record,
    chunk_records,
    file_digest,
    open_batch,
    parse_batch_filename,
)


def test_records_read_back_identical(write, read):
    records = request_records(25)
    written = write(records=records)

    assert read(written.path) == records
    assert written.count == 25


def test_sidecar_is_accepted_by_sha256sum(write):
    written = write()

    result = subprocess.run(
        ["sha256sum", "-c", written.sidecar.name],
        cwd=written.path.parent,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert f"{written.path.name}: OK" in result.stdout
    assert written.sidecar.read_text() == f"{written.digest}  {written.path.name}\n"


def test_digest_is_sha256_of_whole_file(write, public_keys):
    written = write()

    assert written.digest == file_digest(written.path)
    with open_batch(
        written.path, expected_destination=DESTINATION, public_keys=public_keys, now=NOW
    ) as batch:
        list(batch.records())
    assert batch.digest == written.digest


def test_file_name_and_header_describe_the_batch(write, signing_key):
    written = write(seq=7, prev_digest="ab" * 32, ttl=timedelta(hours=2), capabilities=["acks"])

    stream, source, seq, batch_id = parse_batch_filename(written.path.name)
    header = json.loads(written.path.read_bytes().split(b"\n", 1)[0])
    assert (stream, source, seq, batch_id) == ("requests", SOURCE, 7, written.batch_id)
    assert header == written.header
    assert header["format"] == "ferry-batch"
    assert header["format_version"] == FORMAT_VERSION
    assert header["destination"] == DESTINATION
    assert header["prev_digest"] == "ab" * 32
    assert header["created_at"] == "2025-06-01T12:00:00Z"
    assert header["not_after"] == "2025-06-01T14:00:00Z"
    assert header["key_id"] == signing_key.key_id
    assert header["capabilities"] == ["acks"]
    assert header["producer"].startswith("ferry/")
    assert written.path.name.startswith("requests-req-00000007-")


def test_header_is_available_before_iterating(write, public_keys):
    written = write()

    with open_batch(
        written.path, expected_destination=DESTINATION, public_keys=public_keys, now=NOW
    ) as batch:
        assert batch.header == written.header


def test_empty_batch_round_trips(write, read):
    written = write(records=[])

    assert read(written.path) == []


def test_ack_records_ride_in_any_stream(write, read):
    ack = Record(
        "ack", "results", 3, {"stream": "results", "through_seq": 3, "missing": [], "rejected": []}
    )
    records = [ack, request_record(1)]
    written = write(records=records, capabilities=("acks",))

    assert read(written.path) == records


def test_unicode_and_nested_data_survive(write, read):
    record = Record(
        "result",
        "00000000-0000-0000-0000-000000000001",
        2,
        {
            "status": "DONE",
            "total": 1,
            "hits": [{"name": "Zoë \u2603 \U0001f600", "nested": {"list": [1, 2.5, None, True]}}],
            "error": None,
            "executed_at": "2025-06-01T11:30:00Z",
            "took_ms": 12,
        },
    )
    written = write(stream="results", records=[record])

    assert read(written.path) == [record]


def test_chunked_large_result_set_is_split_and_reads_back(write, read, outbox):
    limits = Limits(max_batch_bytes=4096, max_records=5)
    records = request_records(23)

    chunks = list(chunk_records(records, limits))
    paths = [
        write(records=chunk, seq=seq, limits=limits).path
        for seq, chunk in enumerate(chunks, start=1)
    ]

    assert len(chunks) >= 5
    assert all(len(chunk) <= 5 for chunk in chunks)
    assert all(path.stat().st_size <= 4096 for path in paths)
    read_back = [record for path in paths for record in read(path, limits=limits)]
    assert read_back == records


def test_records_can_only_be_iterated_once(write, public_keys):
    written = write()
    batch = open_batch(
        written.path,
        expected_destination=DESTINATION,
        public_keys=public_keys,
        now=NOW,
        validate_record=validate_record,
    )
    list(batch.records())

    with pytest.raises(RuntimeError):
        list(batch.records())
